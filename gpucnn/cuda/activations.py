"""Launchers of the activation, softmax and bias kernels (``kernels/elementwise.py``, ``kernels/reduce.py``).

Same names and signatures as ``gpucnn.reference.activations``; see docs/architecture.md.
"""
import numpy as np

from gpucnn.contract.activations import check_alpha, check_bias_add, check_bias_backward, check_gradient, check_softmax
from gpucnn.cuda import runtime
from gpucnn.cuda._numba_launch import column_sums, flat, launch_grid_stride
from gpucnn.kernels import elementwise, reduce


def _map(kernel, x, alpha=0.0):
    runtime.check_array("x", x)
    y = runtime.xp().empty_like(x)
    launch_grid_stride(kernel, x.size, flat(x), flat(y), np.float32(alpha))
    return y


def _gradient(kernel, dy, y, alpha=0.0):
    runtime.check_array("dy", dy)
    runtime.check_array("y", y)
    check_gradient(dy, y)
    dx = runtime.xp().empty_like(dy)
    launch_grid_stride(kernel, dy.size, flat(dy), flat(y), flat(dx), np.float32(alpha))
    return dx


def relu_forward(x):
    return _map(elementwise.relu_forward, x)


def relu_backward(dy, y):
    return _gradient(elementwise.relu_backward, dy, y)


def leaky_relu_forward(x, alpha):
    check_alpha(alpha)
    return _map(elementwise.leaky_relu_forward, x, alpha)


def leaky_relu_backward(dy, y, alpha):
    check_alpha(alpha)
    return _gradient(elementwise.leaky_relu_backward, dy, y, alpha)


def sigmoid_forward(x):
    return _map(elementwise.sigmoid_forward, x)


def sigmoid_backward(dy, y):
    return _gradient(elementwise.sigmoid_backward, dy, y)


def tanh_forward(x):
    return _map(elementwise.tanh_forward, x)


def tanh_backward(dy, y):
    return _gradient(elementwise.tanh_backward, dy, y)


def _rows(x):
    return x.size // x.shape[-1] if x.shape[-1] else 0


def softmax_forward(x):
    runtime.check_array("x", x)
    check_softmax("x", x)
    y = runtime.xp().empty_like(x)
    launch_grid_stride(reduce.softmax_forward, _rows(x), flat(x), flat(y), np.int64(x.shape[-1]))
    return y


def softmax_backward(dy, y):
    runtime.check_array("dy", dy)
    runtime.check_array("y", y)
    check_softmax("dy", dy)
    check_gradient(dy, y)
    dx = runtime.xp().empty_like(dy)
    launch_grid_stride(reduce.softmax_backward, _rows(dy), flat(dy), flat(y), flat(dx),
                       np.int64(dy.shape[-1]))
    return dx


def bias_add(x, b):
    runtime.check_array("x", x)
    runtime.check_array("b", b)
    check_bias_add(x, b)
    y = runtime.xp().empty_like(x)
    launch_grid_stride(elementwise.bias_add, x.size, flat(x), b, b, flat(y))
    return y


def bias_backward(dy):
    """db: sums of dy over every axis but the last, as a deterministic two-pass reduction."""
    runtime.check_array("dy", dy)
    check_bias_backward(dy)
    return column_sums(flat(dy), dy.shape[-1])
