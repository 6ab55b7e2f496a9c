"""Launchers of the max-pooling kernels (``kernels/pool.py``).

Same names and signatures as ``gpucnn.reference.pool``; see docs/architecture.md for the argmax and
tie rules.
"""
import numpy as np

from gpucnn.cuda import runtime
from gpucnn.cuda._numba_launch import check_shape, launch_grid_stride
from gpucnn.kernels import pool
from gpucnn.reference.conv import window_layout


def geometry_args(geometry):
    """The window geometry as the kernels take it: (pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)."""
    (pool_h, pool_w), (stride_h, stride_w) = geometry.window, geometry.strides
    return tuple(np.int64(v) for v in (pool_h, pool_w, stride_h, stride_w, geometry.pad_top,
                                       geometry.pad_left))


def max_pool_forward(x, pool_size, strides, padding):
    """(y, argmax): the window maxima and the int32 index r·pw + c of each winner in its window."""
    runtime.check_array("x", x, ndim=4)
    geometry = window_layout(x.shape, pool_size, strides, padding, window_name="pool_size")
    xp = runtime.xp()
    shape = (x.shape[0], geometry.out_h, geometry.out_w, x.shape[3])
    y = xp.empty(shape, dtype=np.float32)
    argmax = xp.empty(shape, dtype=np.int32)
    launch_grid_stride(pool.max_pool_forward, y.size, x, y, argmax, *geometry_args(geometry))
    return y, argmax


def max_pool_backward(dy, argmax, x_shape, pool_size, strides, padding):
    """dx (x_shape): each input gathers dy from the windows whose argmax points at it."""
    x_shape = tuple(int(s) for s in x_shape)
    runtime.check_array("dy", dy, ndim=4)
    runtime.check_array("argmax", argmax, ndim=4, dtype=np.int32)
    geometry = window_layout(x_shape, pool_size, strides, padding, window_name="pool_size")
    pooled = (x_shape[0], geometry.out_h, geometry.out_w, x_shape[3])
    check_shape("dy", dy, pooled, f"(the pooled shape of x_shape {x_shape})")
    check_shape("argmax", argmax, pooled, f"(the pooled shape of x_shape {x_shape})")
    dx = runtime.xp().empty(x_shape, dtype=np.float32)
    launch_grid_stride(pool.max_pool_backward, dx.size, dy, argmax, dx, *geometry_args(geometry))
    return dx
