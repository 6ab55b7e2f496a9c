// Dense GEMMs on tensor cores: the operands of gemm.cu (dense_gemm) through gemm_tile_tc (tensor_core.cuh).
// Entry points gemm_<nn|nt|tn>_<tf32|bf16>_<BM>x<BN>, same parameters and meaning as gemm.cu's.
#include "tensor_core.cuh"

#define GEMM_TC_ENTRY(op, A_TRANSPOSED, B_TRANSPOSED, name, P, BM, BN, WARPS_M, WARPS_N)                    \
    extern "C" __global__ void gemm_##op##_##name##_##BM##x##BN(GEMM_PARAMS) {                              \
        dense_gemm<A_TRANSPOSED, B_TRANSPOSED>(a, b, M, N, K,                                               \
                                               TensorCoreGemm<P, BM, BN, WARPS_M, WARPS_N>{GEMM_EPILOGUE}); \
    }

FOR_EACH_TC_TILE(GEMM_TC_ENTRY, nn, false, false, tf32, Tf32)
FOR_EACH_TC_TILE(GEMM_TC_ENTRY, nt, false, true, tf32, Tf32)
FOR_EACH_TC_TILE(GEMM_TC_ENTRY, tn, true, false, tf32, Tf32)
FOR_EACH_TC_TILE(GEMM_TC_ENTRY, nn, false, false, bf16, Bf16)
FOR_EACH_TC_TILE(GEMM_TC_ENTRY, nt, false, true, bf16, Bf16)
FOR_EACH_TC_TILE(GEMM_TC_ENTRY, tn, true, false, bf16, Bf16)

extern "C" __global__ void split_k_reduce(const float* partial, int splits, long long count, int N,
                                          const float* bias, float* out, int activation, float alpha) {
    split_k_reduce_body(partial, splits, count, N, bias, out, activation, alpha);
}
