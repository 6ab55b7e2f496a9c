"""Launchers of zero padding (``kernels/padding.py``); same names and signatures as
``gpucnn.reference.padding``.  Both directions are the kernel's shifted copy."""
import numpy as np

from gpucnn.contract.padding import check_zero_padding2d_backward, check_zero_padding2d_forward
from gpucnn.cuda import runtime
from gpucnn.cuda._numba_launch import launch_grid_stride
from gpucnn.kernels import padding as kernels


def zero_padding2d_forward(x, padding):
    """``x`` (N, H, W, C) with zero rows on top/bottom and zero columns on left/right."""
    runtime.check_array("x", x)
    (top, bottom), (left, right) = check_zero_padding2d_forward(x, padding)
    n, h, w, c = x.shape
    y = runtime.xp().empty((n, top + h + bottom, left + w + right, c), dtype=np.float32)
    launch_grid_stride(kernels.shifted_copy, y.size, x, y, np.int64(-top), np.int64(-left))
    return y


def zero_padding2d_backward(dy, padding):
    """dx: ``dy`` cropped to the input's rows and columns."""
    runtime.check_array("dy", dy)
    (top, bottom), (left, right) = check_zero_padding2d_backward(dy, padding)
    n, h, w, c = dy.shape
    dx = runtime.xp().empty((n, h - top - bottom, w - left - right, c), dtype=np.float32)
    launch_grid_stride(kernels.shifted_copy, dx.size, dy, dx, np.int64(top), np.int64(left))
    return dx
