// 2-D convolution on tensor cores: the three passes of conv_operands.cuh through gemm_tile_tc
// (tensor_core.cuh).  Entry points <op>_<tf32|bf16>_<BM>x<BN>, same parameters and meaning as conv.cu's.
#include "conv_operands.cuh"
#include "tensor_core.cuh"

#define CONV_TC_ENTRY(op, name, P, BM, BN, WARPS_M, WARPS_N)                                                 \
    extern "C" __global__ void op##_##name##_##BM##x##BN(CONV_PARAMS) {                                      \
        op##_gemm(in0, in1, CONV_GEOMETRY, TensorCoreGemm<P, BM, BN, WARPS_M, WARPS_N>{CONV_EPILOGUE});      \
    }

FOR_EACH_TC_TILE(CONV_TC_ENTRY, conv2d_forward, tf32, Tf32)
FOR_EACH_TC_TILE(CONV_TC_ENTRY, conv2d_backward_data, tf32, Tf32)
FOR_EACH_TC_TILE(CONV_TC_ENTRY, conv2d_backward_filter, tf32, Tf32)
FOR_EACH_TC_TILE(CONV_TC_ENTRY, conv2d_forward, bf16, Bf16)
FOR_EACH_TC_TILE(CONV_TC_ENTRY, conv2d_backward_data, bf16, Bf16)
FOR_EACH_TC_TILE(CONV_TC_ENTRY, conv2d_backward_filter, bf16, Bf16)

extern "C" __global__ void split_k_reduce(const float* partial, int splits, long long count, int N,
                                          const float* bias, float* out, int activation, float alpha) {
    split_k_reduce_body(partial, splits, count, N, bias, out, activation, alpha);
}
