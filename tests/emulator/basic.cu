// Small kernels that exercise the emulator's built-ins; each test compares them with NumPy.
#define TILE 16

// Tiled transpose through a padded shared-memory tile: needs __syncthreads between the two phases.
extern "C" __global__ void transpose(const float* __restrict__ in, float* __restrict__ out, int rows, int cols) {
    __shared__ float tile[TILE][TILE + 1];
    int x = blockIdx.x * TILE + threadIdx.x;
    int y = blockIdx.y * TILE + threadIdx.y;
    if (x < cols && y < rows) tile[threadIdx.y][threadIdx.x] = in[(long long)y * cols + x];
    __syncthreads();
    x = blockIdx.y * TILE + threadIdx.x;
    y = blockIdx.x * TILE + threadIdx.y;
    if (x < rows && y < cols) out[(long long)y * rows + x] = tile[threadIdx.x][threadIdx.y];
}

// One partial sum per block: tree reduction in static shared memory (blockDim.x must be 256).
extern "C" __global__ void block_sums(const float* in, float* out, long long n) {
    __shared__ float partial[256];
    const unsigned int t = threadIdx.x;
    const long long i = (long long)blockIdx.x * blockDim.x + t;
    partial[t] = i < n ? in[i] : 0.0f;
    __syncthreads();
    #pragma unroll
    for (unsigned int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (t < stride) partial[t] += partial[t + stride];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = partial[0];
}

// y = a * x + b over a 3-D grid of 3-D blocks, to check every index built-in.
extern "C" __global__ void affine_3d(const double* x, double* y, double a, float b, unsigned int n) {
    const unsigned int threads = blockDim.x * blockDim.y * blockDim.z;
    const unsigned int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned int i = block * threads + threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    if (i < n) y[i] = a * __ldg(&x[i]) + b;
}
