"""2-D convolution (NumPy reference): NHWC activations, HWIO kernels, im2col + BLAS.

Forward:          cols (N·oh·ow, kh·kw·C) @ w (kh·kw·C, F).
Backward-filter:  colsᵀ @ dy.
Backward-data:    dy @ wᵀ gives one value per (output pixel, kernel offset, channel); "col2im" adds them
                  back onto the input with one strided slice per kernel offset.

The sliding-window helpers here are shared with max-pooling (pool.py); the window geometry is the
contract's (``gpucnn.contract.shapes.window_layout``).
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from gpucnn.contract.conv import (check_conv2d_backward_data, check_conv2d_backward_filter,
                                  check_conv2d_forward)

from .activations import apply_activation_


def sliding_windows(x, geometry, pad_value):
    """A read-only view (N, oh, ow, kh, kw, C) of every window of ``x`` (padded with ``pad_value``)."""
    g = geometry
    if g.pad_top or g.pad_bottom or g.pad_left or g.pad_right:
        padded = np.full(g.padded_shape(x.shape), pad_value, dtype=x.dtype)
        padded[:, g.pad_top:g.pad_top + x.shape[1], g.pad_left:g.pad_left + x.shape[2]] = x
        x = padded
    (kh, kw), (sh, sw) = g.window, g.strides
    sn, s_h, s_w, sc = x.strides
    return as_strided(x, shape=(x.shape[0], g.out_h, g.out_w, kh, kw, x.shape[3]),
                      strides=(sn, s_h * sh, s_w * sw, s_h, s_w, sc), writeable=False)


def fold_windows(per_offset, x_shape, geometry, dtype):
    """Add per-window values back onto the input: the adjoint of :func:`sliding_windows`.

    ``per_offset(i, j)`` gives the (N, oh, ow, C) values of kernel offset (i, j) of every window. One
    strided slice per offset never hits the same input twice, so overlapping windows accumulate correctly
    with plain ``+=``.
    """
    g = geometry
    (kh, kw), (sh, sw) = g.window, g.strides
    dx = np.zeros(g.padded_shape(x_shape), dtype=dtype)
    span_h, span_w = (g.out_h - 1) * sh + 1, (g.out_w - 1) * sw + 1
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + span_h:sh, j:j + span_w:sw] += per_offset(i, j)
    return crop_padding(dx, x_shape, g)


def crop_padding(padded, x_shape, geometry):
    """The part of a gradient w.r.t. the padded input that belongs to the input itself."""
    if padded.shape == tuple(x_shape):
        return padded
    g = geometry
    return np.ascontiguousarray(padded[:, g.pad_top:g.pad_top + x_shape[1], g.pad_left:g.pad_left + x_shape[2]])


def _im2col(x, geometry):
    """Every window of ``x`` as one row: (N·oh·ow, kh·kw·C), in HWIO order to match ``w.reshape(-1, F)``."""
    windows = sliding_windows(x, geometry, 0)
    return windows.reshape(-1, windows.shape[3] * windows.shape[4] * windows.shape[5])


def conv2d_forward(x, w, b, strides, padding, activation="linear", alpha=0.2):
    """y = act(conv(x, w) + b): x (N, H, W, C), w (kh, kw, C, F), b (F,) or None -> (N, oh, ow, F)."""
    geometry = check_conv2d_forward(x, w, b, strides, padding, activation)
    filters = w.shape[3]
    y = _im2col(x, geometry) @ w.reshape(-1, filters)
    if b is not None:
        y += b
    apply_activation_(y, activation, alpha)
    return y.reshape(x.shape[0], geometry.out_h, geometry.out_w, filters)


def conv2d_backward_data(dy, w, x_shape, strides, padding):
    """dx (x_shape) of y = conv(x, w), from dy (N, oh, ow, F)."""
    x_shape, geometry = check_conv2d_backward_data(dy, w, x_shape, strides, padding)
    kh, kw, channels, filters = w.shape
    dcols = (dy.reshape(-1, filters) @ w.reshape(-1, filters).T).reshape(
        dy.shape[0], geometry.out_h, geometry.out_w, kh, kw, channels)
    return fold_windows(lambda i, j: dcols[:, :, :, i, j], x_shape, geometry, dcols.dtype)


def conv2d_backward_filter(x, dy, kernel_size, strides, padding):
    """dw (kh, kw, C, F) of y = conv(x, w), from the input x and dy (N, oh, ow, F)."""
    geometry = check_conv2d_backward_filter(x, dy, kernel_size, strides, padding)
    filters = dy.shape[-1]
    dw = _im2col(x, geometry).T @ dy.reshape(-1, filters)
    return dw.reshape(*geometry.window, x.shape[3], filters)

