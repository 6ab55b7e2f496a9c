// Kernels with a deliberately planted bug next to their correct twin, to prove the sanitizer builds catch it.

// out[i] = in[i + shift]: with shift = 1 the last thread reads one element past the end of `in`.
extern "C" __global__ void copy_shifted(const float* in, float* out, int n, int shift) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i + shift];
}

// Tree reduction of one block of 64 values in shared memory.  SYNC_AFTER_STORE = false removes the
// __syncthreads between the stores of the inputs and the first reads of other threads' values.
template <bool SYNC_AFTER_STORE>
__device__ void reduce_64(const float* in, float* out) {
    __shared__ float partial[64];
    const unsigned int t = threadIdx.x;
    partial[t] = in[t];
    if (SYNC_AFTER_STORE) __syncthreads();
    for (unsigned int stride = 32; stride > 0; stride /= 2) {
        if (t < stride) partial[t] += partial[t + stride];
        __syncthreads();
    }
    if (t == 0) out[0] = partial[0];
}

extern "C" __global__ void reduce_64_correct(const float* in, float* out) { reduce_64<true>(in, out); }
extern "C" __global__ void reduce_64_missing_sync(const float* in, float* out) { reduce_64<false>(in, out); }
