// 2-D convolution on CUDA cores: the three passes of conv_operands.cuh through the FP32 GEMM of common.cuh.
// Each entry point exists once per tile shape (BM×BN, the launcher picks one per problem size).
#include "conv_operands.cuh"

constexpr int CONV_BK = 8;

template <int BM, int BN, int TM, int TN>
using ConvGemm = CudaCoreGemm<BM, BN, CONV_BK, TM, TN>;

template <int BM, int BN, int TM, int TN>
__device__ void conv2d_forward_tile(CONV_PARAMS) {
    conv2d_forward_gemm(in0, in1, CONV_GEOMETRY, ConvGemm<BM, BN, TM, TN>{CONV_EPILOGUE});
}

template <int BM, int BN, int TM, int TN>
__device__ void conv2d_backward_data_tile(CONV_PARAMS) {
    conv2d_backward_data_gemm(in0, in1, CONV_GEOMETRY, ConvGemm<BM, BN, TM, TN>{CONV_EPILOGUE});
}

template <int BM, int BN, int TM, int TN>
__device__ void conv2d_backward_filter_tile(CONV_PARAMS) {
    conv2d_backward_filter_gemm(in0, in1, CONV_GEOMETRY, ConvGemm<BM, BN, TM, TN>{CONV_EPILOGUE});
}

// Entry points: <op>_<BM>x<BN>.  Tiles: 128x128 (8×8 per thread) for large problems, 64x64 (4×4) when
// 128×128 tiles would leave SMs idle, 128x32 for few output columns, 32x128 for few rows; 256 threads each.
#define CONV_ARGS                                                                                          \
    in0, in1, bias, out, batch, height, width, channels, out_height, out_width, filters, kernel_h, kernel_w, \
        stride_h, stride_w, pad_top, pad_left, activation, alpha, k_tiles_per_split

extern "C" __global__ void conv2d_forward_128x128(CONV_PARAMS) { conv2d_forward_tile<128, 128, 8, 8>(CONV_ARGS); }
extern "C" __global__ void conv2d_forward_64x64(CONV_PARAMS) { conv2d_forward_tile<64, 64, 4, 4>(CONV_ARGS); }
extern "C" __global__ void conv2d_forward_128x32(CONV_PARAMS) { conv2d_forward_tile<128, 32, 4, 4>(CONV_ARGS); }
extern "C" __global__ void conv2d_forward_32x128(CONV_PARAMS) { conv2d_forward_tile<32, 128, 4, 4>(CONV_ARGS); }

extern "C" __global__ void conv2d_backward_data_128x128(CONV_PARAMS) { conv2d_backward_data_tile<128, 128, 8, 8>(CONV_ARGS); }
extern "C" __global__ void conv2d_backward_data_64x64(CONV_PARAMS) { conv2d_backward_data_tile<64, 64, 4, 4>(CONV_ARGS); }
extern "C" __global__ void conv2d_backward_data_128x32(CONV_PARAMS) { conv2d_backward_data_tile<128, 32, 4, 4>(CONV_ARGS); }
extern "C" __global__ void conv2d_backward_data_32x128(CONV_PARAMS) { conv2d_backward_data_tile<32, 128, 4, 4>(CONV_ARGS); }

extern "C" __global__ void conv2d_backward_filter_128x128(CONV_PARAMS) { conv2d_backward_filter_tile<128, 128, 8, 8>(CONV_ARGS); }
extern "C" __global__ void conv2d_backward_filter_64x64(CONV_PARAMS) { conv2d_backward_filter_tile<64, 64, 4, 4>(CONV_ARGS); }
extern "C" __global__ void conv2d_backward_filter_128x32(CONV_PARAMS) { conv2d_backward_filter_tile<128, 32, 4, 4>(CONV_ARGS); }
extern "C" __global__ void conv2d_backward_filter_32x128(CONV_PARAMS) { conv2d_backward_filter_tile<32, 128, 4, 4>(CONV_ARGS); }

extern "C" __global__ void split_k_reduce(const float* partial, int splits, long long count, int N,
                                          const float* bias, float* out, int activation, float alpha) {
    split_k_reduce_body(partial, splits, count, N, bias, out, activation, alpha);
}
