"""Launchers of zero padding (``kernels/padding.py``); same names and signatures as
``gpucnn.reference.padding``.  Both directions are the kernel's shifted copy."""
import numpy as np

from gpucnn.cuda import runtime
from gpucnn.cuda._numba_launch import launch_grid_stride
from gpucnn.kernels import padding as kernels
from gpucnn.reference.padding import normalize_zero_padding


def zero_padding2d_forward(x, padding):
    """``x`` (N, H, W, C) with zero rows on top/bottom and zero columns on left/right."""
    runtime.check_array("x", x, ndim=4)
    (top, bottom), (left, right) = normalize_zero_padding(padding)
    n, h, w, c = x.shape
    y = runtime.xp().empty((n, top + h + bottom, left + w + right, c), dtype=np.float32)
    launch_grid_stride(kernels.shifted_copy, y.size, x, y, np.int64(-top), np.int64(-left))
    return y


def zero_padding2d_backward(dy, padding):
    """dx: ``dy`` cropped to the input's rows and columns."""
    runtime.check_array("dy", dy, ndim=4)
    (top, bottom), (left, right) = normalize_zero_padding(padding)
    n, h, w, c = dy.shape
    if h <= top + bottom or w <= left + right:
        raise ValueError(f"Argument `dy` must be larger than the padding {padding!r} in height and width, "
                         f"got shape {tuple(dy.shape)}.")
    dx = runtime.xp().empty((n, h - top - bottom, w - left - right, c), dtype=np.float32)
    launch_grid_stride(kernels.shifted_copy, dx.size, dy, dx, np.int64(top), np.int64(left))
    return dx
