"""Launchers of the average-pooling kernels (``kernels/avgpool.py``).

Same names and signatures as ``gpucnn.reference.avgpool``.  Global average pooling launches the same
kernels with one window covering each whole image.
"""
import numpy as np

from gpucnn.contract.avgpool import (
    check_average_pool_backward,
    check_average_pool_forward,
    check_global_average_pool_backward,
    check_global_average_pool_forward,
)
from gpucnn.cuda import runtime
from gpucnn.cuda._numba_launch import launch_grid_stride
from gpucnn.cuda.pool import geometry_args
from gpucnn.kernels import avgpool


def average_pool_forward(x, pool_size, strides, padding):
    """y (N, oh, ow, C): each window's mean over its positions inside ``x``."""
    runtime.check_array("x", x)
    geometry = check_average_pool_forward(x, pool_size, strides, padding)
    y = runtime.xp().empty((x.shape[0], geometry.out_h, geometry.out_w, x.shape[3]), dtype=np.float32)
    launch_grid_stride(avgpool.average_pool_forward, y.size, x, y, *geometry_args(geometry))
    return y


def average_pool_backward(dy, x_shape, pool_size, strides, padding):
    """dx (x_shape): each input gathers dy / count from the windows that contain it."""
    runtime.check_array("dy", dy)
    x_shape, geometry = check_average_pool_backward(dy, x_shape, pool_size, strides, padding)
    dx = runtime.xp().empty(x_shape, dtype=np.float32)
    launch_grid_stride(avgpool.average_pool_backward, dx.size, dy, dx, *geometry_args(geometry))
    return dx


def global_average_pool_forward(x):
    """y (N, C): the mean of each image's channel over height and width."""
    runtime.check_array("x", x)
    check_global_average_pool_forward(x)
    image = x.shape[1:3]
    return average_pool_forward(x, image, image, "valid").reshape(x.shape[0], x.shape[3])


def global_average_pool_backward(dy, x_shape):
    """dx (x_shape): dy / (H·W) at every position of its image and channel."""
    runtime.check_array("dy", dy)
    x_shape = check_global_average_pool_backward(dy, x_shape)
    n, h, w, c = x_shape
    return average_pool_backward(dy.reshape(n, 1, 1, c), x_shape, (h, w), (h, w), "valid")
