"""Activation functions by Keras name, dispatched to the backend's ops.

Conv2D and Dense pass the "fusable" ones (linear, relu, leaky_relu, sigmoid, tanh) to their op, which applies
them in the kernel epilogue; softmax is a separate op over the last axis.
"""
# The ops' fused epilogues define which activations fuse (the list is not repeated here).
from gpucnn.contract.activations import FUSED_ACTIVATIONS as FUSABLE

NAMES = FUSABLE + ("softmax",)

# Keras 3's `activation='leaky_relu'` slope.
DEFAULT_LEAKY_ALPHA = 0.2


def get(identifier, argument="activation"):
    """The canonical name of an activation (``None`` means ``'linear'``)."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str) and identifier.lower() in NAMES:
        return identifier.lower()
    raise ValueError(f"Unknown `{argument}` {identifier!r}: expected one of {list(NAMES)} or None.")


def forward(ops, name, x, alpha=DEFAULT_LEAKY_ALPHA):
    if name == "linear":
        return x
    if name == "relu":
        return ops.relu_forward(x)
    if name == "leaky_relu":
        return ops.leaky_relu_forward(x, alpha)
    if name == "sigmoid":
        return ops.sigmoid_forward(x)
    if name == "tanh":
        return ops.tanh_forward(x)
    return ops.softmax_forward(x)


def backward(ops, name, dy, y, alpha=DEFAULT_LEAKY_ALPHA):
    """Gradient with respect to the activation's input, from its saved output ``y``."""
    if name == "linear":
        return dy
    if name == "relu":
        return ops.relu_backward(dy, y)
    if name == "leaky_relu":
        return ops.leaky_relu_backward(dy, y, alpha)
    if name == "sigmoid":
        return ops.sigmoid_backward(dy, y)
    if name == "tanh":
        return ops.tanh_backward(dy, y)
    return ops.softmax_backward(dy, y)
