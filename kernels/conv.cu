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

// 128x128 tiles need 143-155 registers a thread, which leaves room for one 256-thread block (8 warps) per
// SM.  The _2blocks variant asks ptxas for two (at most 128 registers: more warps to hide latency); only
// backward-filter fits without spilling (forward and backward-data spill at 128).  A candidate tile, not
// the default: profiling/bench_conv.py times it beside the default choice.
extern "C" __global__ void __launch_bounds__(256, 2) conv2d_backward_filter_128x128_2blocks(CONV_PARAMS) {
    conv2d_backward_filter_tile<128, 128, 8, 8>(CONV_ARGS);
}

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

// dx of a convolution with at most NARROW_CHANNELS input channels (a network's first layer: 1 or 3).  As a
// GEMM its N is the channel count, and the narrowest tile (32 columns) would waste 31/32 of its work on
// one channel; here one warp computes one input pixel's channels instead: the lanes walk the filters of
// every output position whose window holds the pixel (coalesced dy and w reads) and a shuffle tree adds
// the lanes' sums, in a fixed order (deterministic).
constexpr int NARROW_CHANNELS = 4;

extern "C" __global__ void conv2d_backward_data_narrow(const float* dy, const float* w, float* dx, int batch,
                                                       int height, int width, int channels, int out_height,
                                                       int out_width, int filters, int kernel_h, int kernel_w,
                                                       int stride_h, int stride_w, int pad_top, int pad_left) {
    const int lane = threadIdx.x % 32, warps = blockDim.x / 32;
    const long long pixels = (long long)batch * height * width;
    for (long long p = (long long)blockIdx.x * warps + threadIdx.x / 32; p < pixels;
         p += (long long)gridDim.x * warps) {
        const int iw = (int)(p % width), ih = (int)(p / width % height);
        const long long n = p / ((long long)width * height);
        float acc[NARROW_CHANNELS] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int r = 0; r < kernel_h; ++r) {
            int oh = ih + pad_top - r;
            if (oh < 0 || oh % stride_h) continue;
            oh /= stride_h;
            if (oh >= out_height) continue;
            for (int s = 0; s < kernel_w; ++s) {
                int ow = iw + pad_left - s;
                if (ow < 0 || ow % stride_w) continue;
                ow /= stride_w;
                if (ow >= out_width) continue;
                const float* dy_row = dy + ((n * out_height + oh) * out_width + ow) * filters;
                const float* w_tap = w + (long long)(r * kernel_w + s) * channels * filters;
                for (int f = lane; f < filters; f += 32) {
                    const float g = dy_row[f];
                    #pragma unroll
                    for (int c = 0; c < NARROW_CHANNELS; ++c)
                        if (c < channels) acc[c] = fmaf(g, w_tap[(long long)c * filters + f], acc[c]);
                }
            }
        }
        #pragma unroll
        for (int c = 0; c < NARROW_CHANNELS; ++c)
            for (int offset = 16; offset > 0; offset /= 2) acc[c] += __shfl_down_sync(0xffffffffu, acc[c], offset);
        #pragma unroll  // a fixed bound keeps acc in registers (a run-time index would put it in local memory)
        for (int c = 0; c < NARROW_CHANNELS; ++c)
            if (lane == 0 && c < channels) dx[p * channels + c] = acc[c];
    }
}

extern "C" __global__ void split_k_reduce(const float* partial, int splits, long long count, int N,
                                          const float* bias, float* out, int activation, float alpha) {
    split_k_reduce_body(partial, splits, count, N, bias, out, activation, alpha);
}
