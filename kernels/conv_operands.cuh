// The operands of the three convolution passes as implicit GEMMs over NHWC activations and HWIO kernels
// (TensorFlow padding arithmetic, see gpucnn/contract/shapes.py), shared by conv.cu (CUDA cores) and
// conv_tc.cu (tensor cores).  Nothing is unrolled into an im2col buffer: the operands gather their elements
// straight from the tensors.
//
//   forward          y  (N·OH·OW × F)     = windows(x) (N·OH·OW × KH·KW·C) · w (KH·KW·C × F)
//   backward-data    dx (N·H·W × C)       = windows(dy) (N·H·W × KH·KW·F) · wᵀ-per-tap (KH·KW·F × C)
//   backward-filter  dw (KH·KW·C × F)     = windows(x)ᵀ (KH·KW·C × N·OH·OW) · dy (N·OH·OW × F)
//
// A "tap" is one (kernel row r, kernel column s, channel) triple; the channel is innermost, as in memory.
#pragma once

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

// The problem builders: each hands its pass's operands and sizes to gemm(a, b, M, N, K) (a CudaCoreGemm or
// a TensorCoreGemm, which carries the epilogue).  in0, in1: (x, w) forward, (dy, w) backward-data, (x, dy)
// backward-filter.
template <class Gemm>
__device__ void conv2d_forward_gemm(const float* in0, const float* in1, const ConvGeometry& g, const Gemm& gemm) {
    const WindowsByTap a{{in0, g}};
    const int taps = g.kernel_h * g.kernel_w * g.channels;
    const MatrixOperand<false> b{in1, g.filters, taps, 1, g.filters};
    gemm(a, b, g.batch * g.out_height * g.out_width, g.filters, taps);
}

template <class Gemm>
__device__ void conv2d_backward_data_gemm(const float* in0, const float* in1, const ConvGeometry& g,
                                          const Gemm& gemm) {
    const OutputGradWindows a{in0, g};
    const TransposedKernel b{in1, g};
    gemm(a, b, g.batch * g.height * g.width, g.channels, g.kernel_h * g.kernel_w * g.filters);
}

template <class Gemm>
__device__ void conv2d_backward_filter_gemm(const float* in0, const float* in1, const ConvGeometry& g,
                                            const Gemm& gemm) {
    const WindowsByPixel a{{in0, g}};
    const int pixels = g.batch * g.out_height * g.out_width;
    const MatrixOperand<false> b{in1, g.filters, pixels, 1, g.filters};
    gemm(a, b, g.kernel_h * g.kernel_w * g.channels, g.filters, pixels);
}

// Every conv entry point has this parameter list, so one launcher serves them all.  out is the result, or
// the split-K workspace (then bias is zeros and activation linear; split_k_reduce applies the epilogue).
#define CONV_PARAMS                                                                                        \
    const float *in0, const float *in1, const float *bias, float *out, int batch, int height, int width,    \
        int channels, int out_height, int out_width, int filters, int kernel_h, int kernel_w, int stride_h, \
        int stride_w, int pad_top, int pad_left, int activation, float alpha, int k_tiles_per_split
#define CONV_GEOMETRY                                                                                      \
    ConvGeometry{batch, height, width, channels, out_height, out_width, filters, kernel_h, kernel_w, stride_h, \
                 stride_w, pad_top, pad_left}
#define CONV_EPILOGUE bias, out, activation, alpha, k_tiles_per_split
