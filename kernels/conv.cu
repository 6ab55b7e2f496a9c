// 2-D convolution as implicit GEMMs over NHWC activations and HWIO kernels (TensorFlow padding arithmetic,
// see gpucnn/contract/shapes.py).  Nothing is unrolled into an im2col buffer: the operands of the shared
// GEMM in common.cuh gather their elements straight from the tensors.
//
//   forward          y  (N·OH·OW × F)     = windows(x) (N·OH·OW × KH·KW·C) · w (KH·KW·C × F)
//   backward-data    dx (N·H·W × C)       = windows(dy) (N·H·W × KH·KW·F) · wᵀ-per-tap (KH·KW·F × C)
//   backward-filter  dw (KH·KW·C × F)     = windows(x)ᵀ (KH·KW·C × N·OH·OW) · dy (N·OH·OW × F)
//
// A "tap" is one (kernel row r, kernel column s, channel) triple; the channel is innermost, as in memory.
// Every entry point has the same parameter list, so one launcher serves them all; each exists once per
// tile shape (BM×BN, the launcher picks one per problem size).
#include "common.cuh"

struct ConvGeometry {
    int batch, height, width, channels;  // x: (batch, height, width, channels)
    int out_height, out_width, filters;  // y: (batch, out_height, out_width, filters)
    int kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
};

// Windows of x: element (output pixel p, tap t) is x[n, oh·sh - pad_top + r, ow·sw - pad_left + s, c], or 0
// in the padding.  The offset splits into a pixel part and a tap part, so each is computed only once.
struct ImageWindows {
    const float* x;
    ConvGeometry g;

    struct Pixel { long long offset; int h0, w0; bool inside; };
    struct Tap { long long offset; int r, s; bool inside; };

    __device__ Pixel pixel(int p) const {
        const int plane = g.out_height * g.out_width;
        const int n = p / plane, oh = (p % plane) / g.out_width, ow = p % g.out_width;
        const int h0 = oh * g.stride_h - g.pad_top, w0 = ow * g.stride_w - g.pad_left;
        return {(((long long)n * g.height + h0) * g.width + w0) * g.channels, h0, w0,
                p < g.batch * plane};
    }
    __device__ Tap tap(int t) const {
        const int c = t % g.channels, rs = t / g.channels, r = rs / g.kernel_w, s = rs % g.kernel_w;
        return {((long long)r * g.width + s) * g.channels + c, r, s, r < g.kernel_h};
    }
    __device__ float load(const Pixel& p, const Tap& t) const {
        const bool inside = p.inside && t.inside && (unsigned)(p.h0 + t.r) < (unsigned)g.height &&
                            (unsigned)(p.w0 + t.s) < (unsigned)g.width;
        return inside ? x[p.offset + t.offset] : 0.0f;
    }
};

// A operand of the forward pass: rows are output pixels, k runs over taps (channels contiguous).
struct WindowsByTap {
    static constexpr bool k_contiguous = true;
    ImageWindows windows;
    using Fixed = ImageWindows::Pixel;
    using Moving = ImageWindows::Tap;
    __device__ Fixed fixed(int i) const { return windows.pixel(i); }
    __device__ Moving moving(int k) const { return windows.tap(k); }
    __device__ float load(const Fixed& f, const Moving& m) const { return windows.load(f, m); }
};

// A operand of backward-filter: rows are taps (channels contiguous), k runs over output pixels.
struct WindowsByPixel {
    static constexpr bool k_contiguous = false;
    ImageWindows windows;
    using Fixed = ImageWindows::Tap;
    using Moving = ImageWindows::Pixel;
    __device__ Fixed fixed(int i) const { return windows.tap(i); }
    __device__ Moving moving(int k) const { return windows.pixel(k); }
    __device__ float load(const Fixed& f, const Moving& m) const { return windows.load(m, f); }
};

// A operand of backward-data, the gather formulation: row = input pixel (n, ih, iw), k = (r, s, f).  Input
// row ih is tap r of output row oh exactly when ih + pad_top - r = oh·sh with 0 <= oh < OH; every other
// (pixel, tap) pair contributes 0.
struct OutputGradWindows {
    static constexpr bool k_contiguous = true;
    const float* dy;
    ConvGeometry g;

    struct Fixed { long long offset; int h, w; bool inside; };  // h, w: input position + padding
    struct Moving { int r, s, f; bool inside; };

    __device__ Fixed fixed(int p) const {
        const int plane = g.height * g.width;
        const int n = p / plane, ih = (p % plane) / g.width, iw = p % g.width;
        return {(long long)n * g.out_height * g.out_width * g.filters, ih + g.pad_top, iw + g.pad_left,
                p < g.batch * plane};
    }
    __device__ Moving moving(int k) const {
        const int f = k % g.filters, rs = k / g.filters;
        return {rs / g.kernel_w, rs % g.kernel_w, f, rs < g.kernel_h * g.kernel_w};
    }
    __device__ float load(const Fixed& p, const Moving& t) const {
        int oh = p.h - t.r, ow = p.w - t.s;
        if (!(p.inside && t.inside) || oh < 0 || ow < 0) return 0.0f;
        if (g.stride_h != 1) {  // uniform branch: stride-1 layers skip the divisions
            if (oh % g.stride_h) return 0.0f;
            oh /= g.stride_h;
        }
        if (g.stride_w != 1) {
            if (ow % g.stride_w) return 0.0f;
            ow /= g.stride_w;
        }
        if (oh >= g.out_height || ow >= g.out_width) return 0.0f;
        return dy[p.offset + ((long long)oh * g.out_width + ow) * g.filters + t.f];
    }
};

// B operand of backward-data: element (k = (tap, f), c) = w[tap, c, f], i.e. each tap's C×F slice of the
// HWIO kernel transposed.  f is innermost in memory, so k is the contiguous index.
struct TransposedKernel {
    static constexpr bool k_contiguous = true;
    const float* w;
    ConvGeometry g;

    struct Fixed { long long offset; bool inside; };
    struct Moving { long long offset; bool inside; };
    __device__ Fixed fixed(int c) const { return {(long long)c * g.filters, c < g.channels}; }
    __device__ Moving moving(int k) const {
        const int tap = k / g.filters, f = k % g.filters;
        return {(long long)tap * g.channels * g.filters + f, tap < g.kernel_h * g.kernel_w};
    }
    __device__ float load(const Fixed& c, const Moving& k) const {
        return (c.inside && k.inside) ? w[c.offset + k.offset] : 0.0f;
    }
};

constexpr int CONV_BK = 8;

// in0, in1: (x, w) forward, (dy, w) backward-data, (x, dy) backward-filter.  out is the result, or the
// split-K workspace (then bias is zeros and activation linear; split_k_reduce applies the epilogue).
template <int BM, int BN, int TM, int TN>
__device__ void conv2d_forward_tile(const float* in0, const float* in1, const float* bias, float* out,
                                    const ConvGeometry& g, int activation, float alpha, int k_tiles_per_split) {
    const WindowsByTap a{{in0, g}};
    const int taps = g.kernel_h * g.kernel_w * g.channels;
    const MatrixOperand<false> b{in1, g.filters, taps, 1, g.filters};
    gemm_tile<BM, BN, CONV_BK, TM, TN>(a, b, g.batch * g.out_height * g.out_width, g.filters, taps,
                                       k_tiles_per_split, bias, out, activation, alpha);
}

template <int BM, int BN, int TM, int TN>
__device__ void conv2d_backward_data_tile(const float* in0, const float* in1, const float* bias, float* out,
                                          const ConvGeometry& g, int activation, float alpha,
                                          int k_tiles_per_split) {
    const OutputGradWindows a{in0, g};
    const TransposedKernel b{in1, g};
    gemm_tile<BM, BN, CONV_BK, TM, TN>(a, b, g.batch * g.height * g.width, g.channels,
                                       g.kernel_h * g.kernel_w * g.filters, k_tiles_per_split, bias, out,
                                       activation, alpha);
}

template <int BM, int BN, int TM, int TN>
__device__ void conv2d_backward_filter_tile(const float* in0, const float* in1, const float* bias, float* out,
                                            const ConvGeometry& g, int activation, float alpha,
                                            int k_tiles_per_split) {
    const WindowsByPixel a{{in0, g}};
    const int pixels = g.batch * g.out_height * g.out_width;
    const MatrixOperand<false> b{in1, g.filters, pixels, 1, g.filters};
    gemm_tile<BM, BN, CONV_BK, TM, TN>(a, b, g.kernel_h * g.kernel_w * g.channels, g.filters, pixels,
                                       k_tiles_per_split, bias, out, activation, alpha);
}

// Entry points: <op>_<BM>x<BN>.  Tiles: 128x128 (8×8 per thread) for large problems, 64x64 (4×4) when
// 128×128 tiles would leave SMs idle, 128x32 for few output columns, 32x128 for few rows; 256 threads each.
#define CONV_PARAMS                                                                                        \
    const float *in0, const float *in1, const float *bias, float *out, int batch, int height, int width,    \
        int channels, int out_height, int out_width, int filters, int kernel_h, int kernel_w, int stride_h, \
        int stride_w, int pad_top, int pad_left, int activation, float alpha, int k_tiles_per_split
#define CONV_ARGS                                                                                          \
    in0, in1, bias, out,                                                                                   \
        ConvGeometry{batch, height, width, channels, out_height, out_width, filters, kernel_h, kernel_w,    \
                     stride_h, stride_w, pad_top, pad_left},                                               \
        activation, alpha, k_tiles_per_split

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
