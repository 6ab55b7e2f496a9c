// Kernels for the warp collectives, atomics, barrier variants, dynamic shared memory and the watchdog.

// Per thread i (lane l) of full warps, with v = values[i]:
//   scan[i]   inclusive prefix sum of v within aligned segments of 8 lanes (__shfl_up_sync, width 8)
//   total[i]  sum of v over the warp (__shfl_xor_sync butterfly)
//   down[i]   v of lane l + 5 if that lane is in the warp, else v (__shfl_down_sync)
//   bcast[i]  v of lane 3 (__shfl_sync)
//   votes[i]  __ballot_sync of v > 0, then __any_sync / __all_sync of v > 0 in bits 32 and 33
extern "C" __global__ void warp_ops(const float* values, float* scan, float* total, float* down, float* bcast,
                                    unsigned long long* votes) {
    const unsigned int full = 0xffffffffu;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float v = values[i];
    float s = v;
    for (int d = 1; d < 8; d *= 2) {
        const float other = __shfl_up_sync(full, s, d, 8);
        if ((threadIdx.x & 7) >= d) s += other;
    }
    scan[i] = s;
    float t = v;
    for (int m = 16; m > 0; m /= 2) t += __shfl_xor_sync(full, t, m);
    total[i] = t;
    down[i] = __shfl_down_sync(full, v, 5);
    bcast[i] = __shfl_sync(full, v, 3);
    __syncwarp();
    const unsigned long long ballot = __ballot_sync(full, v > 0.0f);
    votes[i] = ballot | (unsigned long long)__any_sync(full, v > 0.0f) << 32 |
               (unsigned long long)__all_sync(full, v > 0.0f) << 33;
}

// Global histogram and extrema of int keys, and a float sum, through atomics from many blocks.
extern "C" __global__ void atomics(const int* keys, int n, int* histogram, int* extrema, float* sum,
                                   unsigned int* cas_count) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicAdd(&histogram[keys[i]], 1);
    atomicMin(&extrema[0], keys[i]);
    atomicMax(&extrema[1], keys[i]);
    atomicAdd(sum, (float)keys[i]);
    // Increment through a compare-and-swap loop, the building block of custom atomics.
    unsigned int old = *cas_count, assumed;
    do {
        assumed = old;
        old = atomicCAS(cas_count, assumed, assumed + 1);
    } while (old != assumed);
}

// counts[block] = number of positive values in the block; flags[block] = any | all << 1.
extern "C" __global__ void barrier_votes(const float* values, int* counts, int* flags) {
    const float v = values[blockIdx.x * blockDim.x + threadIdx.x];
    const int count = __syncthreads_count(v > 0.0f);
    const int any = __syncthreads_or(v > 0.0f);
    const int all = __syncthreads_and(v > 0.0f);
    if (threadIdx.x == 0) {
        counts[blockIdx.x] = count;
        flags[blockIdx.x] = any | all << 1;
    }
}

// Reverses each block's slice of `data` through dynamic shared memory (shared_mem = blockDim.x floats).
extern "C" __global__ void reverse_blocks(float* data) {
    extern __shared__ float staging[];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    staging[threadIdx.x] = data[i];
    __syncthreads();
    data[i] = staging[blockDim.x - 1 - threadIdx.x];
}

// Bugs the watchdog must turn into errors instead of hangs.
extern "C" __global__ void early_exit_before_barrier(int first_exiting_thread) {
    if ((int)threadIdx.x >= first_exiting_thread) return;
    __syncthreads();
}

extern "C" __global__ void lane_exits_before_shuffle(int exiting_lane, float* out) {
    if ((int)threadIdx.x == exiting_lane) return;
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.0f, 1);
}

extern "C" __global__ void trap_in_block(int bad_block) {
    if ((int)blockIdx.x == bad_block && threadIdx.x == 0) __trap();
    __syncthreads();
}

// Threads from `first_exiting_thread` on exit; the others record __activemask after a __syncwarp over it.
extern "C" __global__ void active_lanes(int first_exiting_thread, unsigned int* masks) {
    if ((int)threadIdx.x >= first_exiting_thread) return;
    __syncwarp(__activemask());
    masks[threadIdx.x] = __activemask();
}
