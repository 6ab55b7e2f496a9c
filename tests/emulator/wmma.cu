// nvcuda::wmma kernels for the emulator's tests: one warp multiplies one tile, and planted bugs (selected by
// `bug`) that the emulator must report.
#include <mma.h>
#include <cuda_bf16.h>

using namespace nvcuda;

enum Bug { NONE = 0, LANE_SKIPS_MMA = 1, MISALIGNED_POINTER = 2, UNCONVERTED_TF32 = 3, LANES_DISAGREE_ON_LDM = 4 };

// d (16×16, row-major or col-major by `store_col_major`) = a (16×8) · b (8×16) + c, TF32.  a is read with
// leading dimension lda (row-major), b column-major with ldb (element (k, n) at b[n·ldb + k]).
extern "C" __global__ void tf32_tile(const float* a, const float* b, const float* c, float* d, int lda, int ldb,
                                     int store_col_major, int bug) {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    const int lane = threadIdx.x % 32;
    wmma::load_matrix_sync(fa, bug == MISALIGNED_POINTER ? a + 1 : a,
                           bug == LANES_DISAGREE_ON_LDM && lane == 3 ? lda + 4 : lda);
    wmma::load_matrix_sync(fb, b, ldb);
    wmma::load_matrix_sync(acc, c, 16, wmma::mem_row_major);
    if (bug != UNCONVERTED_TF32) {
        for (int i = 0; i < fa.num_elements; ++i) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
    }
    for (int i = 0; i < fb.num_elements; ++i) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
    if (!(bug == LANE_SKIPS_MMA && lane == 5)) wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(d, acc, 16, store_col_major ? wmma::mem_col_major : wmma::mem_row_major);
}

// d (16×16 row-major) = a (16×16) · b (16×16), both row-major floats, through bfloat16 in shared memory;
// fill_fragment zeroes the accumulator.
extern "C" __global__ void bf16_tile(const float* a, const float* b, float* d) {
    __shared__ __align__(32) __nv_bfloat16 a_bf16[16 * 16];
    __shared__ __align__(32) __nv_bfloat16 b_bf16[16 * 16];
    for (int i = threadIdx.x; i < 256; i += 32) {
        a_bf16[i] = __float2bfloat16(a[i]);
        b_bf16[i] = b[i];  // the implicit conversion rounds the same way
    }
    __syncwarp();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    wmma::load_matrix_sync(fa, a_bf16, 16);
    wmma::load_matrix_sync(fb, b_bf16, 16);
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(d, acc, 16, wmma::mem_row_major);
}

// The fragment element type round trip: out[i] = float(bf16(in[i])), and tf32[i] = __float_to_tf32(in[i]).
extern "C" __global__ void conversions(const float* in, float* bf16, float* tf32, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        bf16[i] = __bfloat162float(__float2bfloat16(in[i]));
        tf32[i] = wmma::__float_to_tf32(in[i]);
    }
}
