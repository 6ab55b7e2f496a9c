"""Convolution launchers (kernels/conv.cu): implicit GEMMs over NHWC activations and HWIO kernels.

Same names, signatures and semantics as ``gpucnn.reference.conv``; the tile and split-K choice is the
GEMM one of :mod:`gpucnn.cuda.dense`, except for the backward-data of inputs with at most
``NARROW_CHANNELS`` channels, whose GEMM is too narrow for any tile (``conv2d_backward_data_narrow``).
"""
import numpy as np

from gpucnn.cuda import runtime
from gpucnn.cuda.dense import THREADS, check_gemm_size, launch_gemm, sm_count
from gpucnn.reference.activations import check_activation
from gpucnn.reference.shapes import (
    normalize_padding,
    normalize_tuple,
    prod,
    window_geometry,
)

NARROW_CHANNELS = 4  # NARROW_CHANNELS in kernels/conv.cu


def _geometry(x_shape, kernel_size, filters, strides, padding):
    """The 13 geometry ints every conv2d_* kernel takes, after checking that the window fits."""
    strides = normalize_tuple(strides, 2, "strides")
    padding = normalize_padding(padding)
    batch, height, width, channels = x_shape
    out_h, out_w, pad_top, pad_left = window_geometry(height, width, kernel_size, strides, padding)
    if out_h == 0 or out_w == 0:
        raise ValueError(f"The kernel_size {kernel_size} does not fit in the {height}x{width} input with "
                         f"padding='valid'. Fix: use padding='same' or a smaller kernel_size.")
    return (batch, height, width, channels, out_h, out_w, filters, *kernel_size, *strides, pad_top, pad_left)


def _check_input(name, array):
    runtime.check_array(name, array, ndim=4)
    if 0 in array.shape:
        raise ValueError(f"Argument `{name}` must not be empty, got shape {tuple(array.shape)}.")


def _check_kernel(w, channels):
    _check_input("w", w)
    if w.shape[2] != channels:
        raise ValueError(f"Argument `w` has {w.shape[2]} input channels but the input has {channels}. "
                         f"Fix: use a kernel of shape (kh, kw, {channels}, filters).")


def _check_output_grad(dy, geometry):
    _check_input("dy", dy)
    batch, _, _, _, out_h, out_w, filters = geometry[:7]
    if tuple(dy.shape) != (batch, out_h, out_w, filters):
        raise ValueError(f"Argument `dy` must have the output shape {(batch, out_h, out_w, filters)}, "
                         f"got {tuple(dy.shape)}.")


def _gemm_sizes(geometry):
    """Pixel counts of x and y and the tap count, which the kernels index with int32."""
    batch, height, width, channels, out_h, out_w, filters, kh, kw = geometry[:9]
    return batch * height * width, batch * out_h * out_w, kh * kw * channels, kh * kw * filters


def conv2d_forward(x, w, b, strides, padding, activation="linear", alpha=0.2):
    """y = act(conv(x, w) + b): x (N, H, W, C), w (kh, kw, C, F), b (F,) or None -> (N, oh, ow, F)."""
    check_activation(activation)
    _check_input("x", x)
    _check_kernel(w, x.shape[3])
    kh, kw, _, filters = w.shape
    if b is not None:
        runtime.check_array("b", b, ndim=1)
        if b.shape != (filters,):
            raise ValueError(f"Argument `b` must have shape ({filters},), got {tuple(b.shape)}.")
    geometry = _geometry(x.shape, (kh, kw), filters, strides, padding)
    _, out_pixels, taps, _ = _gemm_sizes(geometry)
    check_gemm_size(max(prod(x.shape[:3]), out_pixels), filters, taps, "conv2d_forward")
    y = runtime.xp().empty((x.shape[0], geometry[4], geometry[5], filters), dtype=np.float32)
    return launch_gemm("conv.cu", "conv2d_forward", x, w, geometry, out_pixels, filters, taps, y,
                       b, activation, alpha)


def conv2d_backward_data(dy, w, x_shape, strides, padding):
    """dx (x_shape) of y = conv(x, w), from dy (N, oh, ow, F)."""
    x_shape = tuple(x_shape)
    if len(x_shape) != 4 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in x_shape):
        raise ValueError(f"Argument `x_shape` must be 4 positive ints (N, H, W, C), got {x_shape!r}.")
    x_shape = tuple(int(s) for s in x_shape)
    _check_kernel(w, x_shape[3])
    kh, kw, channels, filters = w.shape
    geometry = _geometry(x_shape, (kh, kw), filters, strides, padding)
    _check_output_grad(dy, geometry)
    in_pixels, out_pixels, _, grad_taps = _gemm_sizes(geometry)
    check_gemm_size(max(in_pixels, out_pixels), channels, grad_taps, "conv2d_backward_data")
    dx = runtime.xp().empty(x_shape, dtype=np.float32)
    if channels <= NARROW_CHANNELS:  # one warp per input pixel, a grid-stride loop over the rest
        warps = THREADS // 32
        kernel = runtime.cuda_c_function("conv.cu", "conv2d_backward_data_narrow")
        kernel((min(runtime.blocks_for(in_pixels, warps), 16 * sm_count()),), (THREADS,),
               (dy, w, dx, *(np.int32(v) for v in geometry)))
        return dx
    return launch_gemm("conv.cu", "conv2d_backward_data", dy, w, geometry, in_pixels, channels, grad_taps, dx)


def conv2d_backward_filter(x, dy, kernel_size, strides, padding):
    """dw (kh, kw, C, F) of y = conv(x, w), from the input x and dy (N, oh, ow, F)."""
    kernel_size = normalize_tuple(kernel_size, 2, "kernel_size")
    _check_input("x", x)
    runtime.check_array("dy", dy, ndim=4)
    filters = dy.shape[3]
    geometry = _geometry(x.shape, kernel_size, filters, strides, padding)
    _check_output_grad(dy, geometry)
    in_pixels, out_pixels, taps, _ = _gemm_sizes(geometry)
    check_gemm_size(max(taps, in_pixels), filters, out_pixels, "conv2d_backward_filter")
    dw = runtime.xp().empty((*kernel_size, x.shape[3], filters), dtype=np.float32)
    return launch_gemm("conv.cu", "conv2d_backward_filter", x, dy, geometry, taps, filters, out_pixels, dw)
