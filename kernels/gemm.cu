// Tiled SGEMM for Dense: out (M×N, row-major) = act(op(A) · op(B) + bias), with op = transpose or not.
//   forward          y  = x · w        gemm_nn   (x: batch×in, w: in×units)
//   backward-data    dx = dy · wᵀ      gemm_nt
//   backward-weights dw = xᵀ · dy      gemm_tn   (K = batch: the launcher splits it, see split_k_reduce)
// The tiling, register blocking, epilogue and the operands (dense_gemm) are the shared ones of common.cuh.
#include "common.cuh"

constexpr int GEMM_BK = 8;

template <int BM, int BN, int TM, int TN, bool A_TRANSPOSED, bool B_TRANSPOSED>
__device__ void gemm(GEMM_PARAMS) {
    dense_gemm<A_TRANSPOSED, B_TRANSPOSED>(a, b, M, N, K, CudaCoreGemm<BM, BN, GEMM_BK, TM, TN>{GEMM_EPILOGUE});
}

// Entry points: gemm_<nn|nt|tn>_<BM>x<BN>, the same four tile shapes as conv.cu.
#define GEMM_ARGS a, b, bias, out, M, N, K, activation, alpha, k_tiles_per_split

extern "C" __global__ void gemm_nn_128x128(GEMM_PARAMS) { gemm<128, 128, 8, 8, false, false>(GEMM_ARGS); }
extern "C" __global__ void gemm_nn_64x64(GEMM_PARAMS) { gemm<64, 64, 4, 4, false, false>(GEMM_ARGS); }
extern "C" __global__ void gemm_nn_128x32(GEMM_PARAMS) { gemm<128, 32, 4, 4, false, false>(GEMM_ARGS); }
extern "C" __global__ void gemm_nn_32x128(GEMM_PARAMS) { gemm<32, 128, 4, 4, false, false>(GEMM_ARGS); }

extern "C" __global__ void gemm_nt_128x128(GEMM_PARAMS) { gemm<128, 128, 8, 8, false, true>(GEMM_ARGS); }
extern "C" __global__ void gemm_nt_64x64(GEMM_PARAMS) { gemm<64, 64, 4, 4, false, true>(GEMM_ARGS); }
extern "C" __global__ void gemm_nt_128x32(GEMM_PARAMS) { gemm<128, 32, 4, 4, false, true>(GEMM_ARGS); }
extern "C" __global__ void gemm_nt_32x128(GEMM_PARAMS) { gemm<32, 128, 4, 4, false, true>(GEMM_ARGS); }

extern "C" __global__ void gemm_tn_128x128(GEMM_PARAMS) { gemm<128, 128, 8, 8, true, false>(GEMM_ARGS); }
extern "C" __global__ void gemm_tn_64x64(GEMM_PARAMS) { gemm<64, 64, 4, 4, true, false>(GEMM_ARGS); }
extern "C" __global__ void gemm_tn_128x32(GEMM_PARAMS) { gemm<128, 32, 4, 4, true, false>(GEMM_ARGS); }
extern "C" __global__ void gemm_tn_32x128(GEMM_PARAMS) { gemm<32, 128, 4, 4, true, false>(GEMM_ARGS); }

extern "C" __global__ void split_k_reduce(const float* partial, int splits, long long count, int N,
                                          const float* bias, float* out, int activation, float alpha) {
    split_k_reduce_body(partial, splits, count, N, bias, out, activation, alpha);
}
