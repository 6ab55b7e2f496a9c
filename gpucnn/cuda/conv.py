"""Convolution launchers (kernels/conv.cu): implicit GEMMs over NHWC activations and HWIO kernels.

Same names, signatures and semantics as ``gpucnn.reference.conv``, with the same argument checks
(``gpucnn.contract.conv``); the tile and split-K choice is the GEMM one of :mod:`gpucnn.cuda.gemm`.
``precision=None`` means the global setting of gpucnn.config ('highest': FP32 kernels of conv.cu; 'high' /
'medium': TF32 / BF16 tensor-core kernels of conv_tc.cu).  At 'highest', the backward-data of inputs with
at most ``NARROW_CHANNELS`` channels, whose GEMM is too narrow for any tile, runs
``conv2d_backward_data_narrow`` instead; that kernel is FP32 CUDA-core code, so the tensor-core precisions
keep their GEMM and the rounding that ``gpucnn.reference.conv`` emulates.
"""
import numpy as np

from gpucnn import config
from gpucnn.contract.conv import check_conv2d_backward_data, check_conv2d_backward_filter, check_conv2d_forward
from gpucnn.contract.shapes import prod
from gpucnn.cuda import runtime
from gpucnn.cuda.gemm import THREADS, check_gemm_size, check_operands, launch_gemm, sm_count

NARROW_CHANNELS = 4  # NARROW_CHANNELS in kernels/conv.cu


def _kernel_args(x_shape, filters, geometry):
    """The 13 geometry ints every conv2d_* kernel takes."""
    return (*x_shape, geometry.out_h, geometry.out_w, filters, *geometry.window, *geometry.strides,
            geometry.pad_top, geometry.pad_left)


def _gemm_sizes(args):
    """Pixel counts of x and y and the tap count, which the kernels index with int32."""
    batch, height, width, channels, out_h, out_w, filters, kh, kw = args[:9]
    return batch * height * width, batch * out_h * out_w, kh * kw * channels, kh * kw * filters


def conv2d_forward(x, w, b, strides, padding, activation="linear", alpha=0.2, precision=None):
    """y = act(conv(x, w) + b): x (N, H, W, C), w (kh, kw, C, F), b (F,) or None -> (N, oh, ow, F)."""
    check_operands(x=x, w=w, b=b)
    geometry = check_conv2d_forward(x, w, b, strides, padding, activation, precision)
    filters = w.shape[3]
    args = _kernel_args(x.shape, filters, geometry)
    _, out_pixels, taps, _ = _gemm_sizes(args)
    check_gemm_size(max(prod(x.shape[:3]), out_pixels), filters, taps, "conv2d_forward")
    y = runtime.xp().empty((x.shape[0], geometry.out_h, geometry.out_w, filters), dtype=np.float32)
    return launch_gemm("conv.cu", "conv2d_forward", x, w, args, out_pixels, filters, taps, y,
                       b, activation, alpha, precision)


def conv2d_backward_data(dy, w, x_shape, strides, padding, precision=None):
    """dx (x_shape) of y = conv(x, w), from dy (N, oh, ow, F)."""
    check_operands(dy=dy, w=w)
    x_shape, geometry = check_conv2d_backward_data(dy, w, x_shape, strides, padding, precision)
    channels, filters = w.shape[2:]
    args = _kernel_args(x_shape, filters, geometry)
    in_pixels, out_pixels, _, grad_taps = _gemm_sizes(args)
    check_gemm_size(max(in_pixels, out_pixels), channels, grad_taps, "conv2d_backward_data")
    dx = runtime.xp().empty(x_shape, dtype=np.float32)
    precision = config.resolve_precision(precision)
    if channels <= NARROW_CHANNELS and precision == "highest":  # one warp per input pixel, grid-stride
        warps = THREADS // 32
        kernel = runtime.cuda_c_function("conv.cu", "conv2d_backward_data_narrow")
        kernel((min(runtime.blocks_for(in_pixels, warps), 16 * sm_count()),), (THREADS,),
               (dy, w, dx, *(np.int32(v) for v in args)))
        return dx
    return launch_gemm("conv.cu", "conv2d_backward_data", dy, w, args, in_pixels, channels, grad_taps, dx,
                       precision=precision)


def conv2d_backward_filter(x, dy, kernel_size, strides, padding, precision=None):
    """dw (kh, kw, C, F) of y = conv(x, w), from the input x and dy (N, oh, ow, F)."""
    check_operands(x=x, dy=dy)
    geometry = check_conv2d_backward_filter(x, dy, kernel_size, strides, padding, precision)
    filters = dy.shape[3]
    args = _kernel_args(x.shape, filters, geometry)
    in_pixels, out_pixels, taps, _ = _gemm_sizes(args)
    check_gemm_size(max(taps, in_pixels), filters, out_pixels, "conv2d_backward_filter")
    dw = runtime.xp().empty((*geometry.window, x.shape[3], filters), dtype=np.float32)
    return launch_gemm("conv.cu", "conv2d_backward_filter", x, dy, args, taps, filters, out_pixels, dw,
                       precision=precision)
