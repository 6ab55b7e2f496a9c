"""Launchers of the max-pooling kernels (``kernels/pool.py``).

Same names and signatures as ``gpucnn.reference.pool``; see docs/architecture.md for the argmax and
tie rules.
"""
import numpy as np

from gpucnn.contract.pool import check_max_pool_backward, check_max_pool_forward
from gpucnn.cuda import runtime
from gpucnn.cuda._numba_launch import launch_grid_stride
from gpucnn.kernels import pool


def geometry_args(geometry):
    """The window geometry as the kernels take it: (pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)."""
    (pool_h, pool_w), (stride_h, stride_w) = geometry.window, geometry.strides
    return tuple(np.int64(v) for v in (pool_h, pool_w, stride_h, stride_w, geometry.pad_top,
                                       geometry.pad_left))


def max_pool_forward(x, pool_size, strides, padding):
    """(y, argmax): the window maxima and the int32 index r·pw + c of each winner in its window."""
    runtime.check_array("x", x)
    geometry = check_max_pool_forward(x, pool_size, strides, padding)
    xp = runtime.xp()
    shape = (x.shape[0], geometry.out_h, geometry.out_w, x.shape[3])
    y = xp.empty(shape, dtype=np.float32)
    argmax = xp.empty(shape, dtype=np.int32)
    launch_grid_stride(pool.max_pool_forward, y.size, x, y, argmax, *geometry_args(geometry))
    return y, argmax


def max_pool_backward(dy, argmax, x_shape, pool_size, strides, padding):
    """dx (x_shape): each input gathers dy from the windows whose argmax points at it."""
    runtime.check_array("dy", dy)
    runtime.check_array("argmax", argmax, dtype=np.int32)
    x_shape, geometry = check_max_pool_backward(dy, argmax, x_shape, pool_size, strides, padding)
    dx = runtime.xp().empty(x_shape, dtype=np.float32)
    launch_grid_stride(pool.max_pool_backward, dx.size, dy, argmax, dx, *geometry_args(geometry))
    return dx
