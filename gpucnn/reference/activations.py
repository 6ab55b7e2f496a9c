"""Activations, bias add and bias gradient (NumPy reference).

Every function computes in the dtype of its input (float32 in the library, float64 in gradient checks).
Backward functions take the saved *output* ``y`` of the forward pass, as the kernels do.
"""
import numpy as np

FUSED_ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid")


def check_activation(activation):
    """``activation`` if it names a fused activation, else a ValueError listing the choices."""
    if activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"Argument `activation` must be one of {', '.join(map(repr, FUSED_ACTIVATIONS))}, "
                         f"got {activation!r}. Fix: apply other activations as a separate layer.")
    return activation


def apply_activation_(z, activation, alpha=0.2):
    """Apply ``activation`` to ``z`` in place and return it (the fused epilogue of conv and dense).

    ``z`` must be a freshly computed array that nobody else holds: it is overwritten.
    """
    check_activation(activation)
    if activation == "relu":
        np.maximum(z, 0, out=z)
    elif activation == "leaky_relu":
        np.multiply(z, alpha, out=z, where=z < 0)
    elif activation == "sigmoid":
        _sigmoid_(z)
    return z


def _sigmoid_(z):
    """Numerically stable sigmoid of ``z`` in place: exp is only taken of -|z|, so it never overflows."""
    negative = z < 0
    e = np.exp(-np.abs(z))
    np.add(e, 1, out=z)
    np.reciprocal(z, out=z)                   # 1 / (1 + e^-|z|) = sigmoid(|z|)
    np.multiply(z, e, out=z, where=negative)  # e^z / (1 + e^z) = sigmoid(z) for z < 0
    return z


def relu_forward(x):
    return apply_activation_(x.copy(), "relu")


def relu_backward(dy, y):
    """dy where the output was positive (where x > 0), else 0."""
    return np.where(y > 0, dy, 0)


def leaky_relu_forward(x, alpha):
    return apply_activation_(x.copy(), "leaky_relu", alpha)


def leaky_relu_backward(dy, y, alpha):
    """dy where y > 0, else alpha * dy (alpha > 0, so y has the sign of x; x == 0 gets alpha, as in TF)."""
    dx = dy.copy()
    np.multiply(dx, alpha, out=dx, where=y <= 0)
    return dx


def sigmoid_forward(x):
    return apply_activation_(x.copy(), "sigmoid")


def sigmoid_backward(dy, y):
    return dy * (y * (1 - y))


def softmax_forward(x):
    """Softmax over the last axis; the row maximum is subtracted first so exp never overflows."""
    y = x - x.max(axis=-1, keepdims=True)
    np.exp(y, out=y)
    y /= y.sum(axis=-1, keepdims=True)
    return y


def softmax_backward(dy, y):
    """dx = y * (dy - sum(dy * y)) over the last axis (the Jacobian-vector product of softmax)."""
    dx = dy - (dy * y).sum(axis=-1, keepdims=True)
    dx *= y
    return dx


def bias_add(x, b):
    """x + b, with b of shape (C,) broadcast over the last axis of x."""
    if b.ndim != 1 or x.shape[-1] != b.shape[0]:
        raise ValueError(f"Argument `b` must have shape ({x.shape[-1]},) to match the last axis of x "
                         f"{x.shape}, got {b.shape}.")
    return x + b


def bias_backward(dy):
    """db: the sum of dy over every axis but the last."""
    return dy.reshape(-1, dy.shape[-1]).sum(axis=0)
