"""Activations, bias add and bias gradient (NumPy reference).

Every function computes in the dtype of its input (float32 in the library, float64 in gradient checks).
Backward functions take the saved *output* ``y`` of the forward pass, as the kernels do.
"""
import numpy as np

from gpucnn.contract.activations import (
    check_activation,
    check_alpha,
    check_bias_add,
    check_bias_backward,
    check_gradient,
    check_softmax,
)


def apply_activation_(z, activation, alpha=0.2):
    """Apply ``activation`` to ``z`` in place and return it (the fused epilogue of conv and dense).

    ``z`` must be a freshly computed array that nobody else holds: it is overwritten.  Only arithmetic
    ufuncs are used: NumPy's masked operations (``where=``, ``np.where``) are several times slower.
    """
    check_activation(activation)
    if activation == "relu":
        np.maximum(z, 0, out=z)
    elif activation == "leaky_relu":
        # max(z, alpha·z) picks z for z > 0 and alpha·z for z < 0 when alpha <= 1 (min when alpha > 1).
        pick = np.maximum if alpha <= 1 else np.minimum
        pick(z, z * z.dtype.type(alpha), out=z)  # alpha rounded to z's dtype first, as in the kernels
    elif activation == "sigmoid":
        # 1 / (1 + exp(-z)): exp overflows to inf for z < -88 (float32), which still gives the right 0.
        with np.errstate(over="ignore"):
            np.negative(z, out=z)
            np.exp(z, out=z)
            z += 1
            np.reciprocal(z, out=z)
    elif activation == "tanh":
        np.tanh(z, out=z)
    return z


def column_sums(matrix):
    """Sum of the rows of a (M, C) matrix, as a BLAS product with ones (far faster than .sum(axis=0))."""
    return np.ones(matrix.shape[0], dtype=matrix.dtype) @ matrix


def relu_forward(x):
    return apply_activation_(x.copy(), "relu")


def relu_backward(dy, y):
    """dy where the output was positive (where x > 0), else 0."""
    check_gradient(dy, y)
    return dy * (y > 0)


def leaky_relu_forward(x, alpha):
    check_alpha(alpha)
    return apply_activation_(x.copy(), "leaky_relu", alpha)


def leaky_relu_backward(dy, y, alpha):
    """dy where y > 0, else alpha * dy (alpha > 0, so y has the sign of x; x == 0 gets alpha, as in TF)."""
    check_alpha(alpha)
    check_gradient(dy, y)
    dx = dy * (y > 0)
    negative_part = dy * dy.dtype.type(alpha)
    negative_part *= y <= 0
    dx += negative_part  # exact: one of the two terms is 0
    return dx


def sigmoid_forward(x):
    return apply_activation_(x.copy(), "sigmoid")


def sigmoid_backward(dy, y):
    check_gradient(dy, y)
    return dy * (y * (1 - y))


def tanh_forward(x):
    return apply_activation_(x.copy(), "tanh")


def tanh_backward(dy, y):
    """dx = dy·(1 - y²), from the saved output as the other activations."""
    check_gradient(dy, y)
    return dy * (1 - y * y)


def softmax_forward(x):
    """Softmax over the last axis; the row maximum is subtracted first so exp never overflows."""
    check_softmax("x", x)
    y = x - x.max(axis=-1, keepdims=True)
    np.exp(y, out=y)
    y /= y.sum(axis=-1, keepdims=True)
    return y


def softmax_backward(dy, y):
    """dx = y * (dy - sum(dy * y)) over the last axis (the Jacobian-vector product of softmax)."""
    check_softmax("dy", dy)
    check_gradient(dy, y)
    dx = dy - (dy * y).sum(axis=-1, keepdims=True)
    dx *= y
    return dx


def bias_add(x, b):
    """x + b, with b of shape (C,) broadcast over the last axis of x."""
    check_bias_add(x, b)
    return x + b


def bias_backward(dy):
    """db: the sum of dy over every axis but the last."""
    check_bias_backward(dy)
    return column_sums(dy.reshape(-1, dy.shape[-1]))
