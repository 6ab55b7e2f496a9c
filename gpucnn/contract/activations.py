"""Activations, bias add and bias gradient: the fused activations, their kernel codes, and the checks of
``relu_*``, ``leaky_relu_*``, ``sigmoid_*``, ``softmax_*``, ``bias_add`` and ``bias_backward``."""
from .shapes import check_shape

#: The activations conv and dense apply in their epilogue.
FUSED_ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid")
#: Their values in ``enum Activation`` of kernels/common.cuh (a test parses the header to keep the two equal).
ACTIVATION_CODES = {"linear": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3}


def check_activation(activation):
    """``activation`` if it names a fused activation, else a ValueError listing the choices."""
    if activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"Argument `activation` must be one of {', '.join(map(repr, FUSED_ACTIVATIONS))}, "
                         f"got {activation!r}. Fix: apply other activations as a separate layer.")
    return activation


def check_alpha(alpha):
    """ValueError unless the leaky slope ``alpha`` is >= 0."""
    # The backward pass reads the sign of x from y, which a negative slope would flip.
    if not alpha >= 0:
        raise ValueError(f"Argument `alpha` (the leaky slope) must be >= 0, got {alpha!r}.")


def check_gradient(dy, y):
    """ValueError unless the saved output ``y`` has the shape of ``dy``."""
    check_shape("y", y, dy.shape, "(the shape of dy)")


def check_last_axis(name, x, why):
    """ValueError if ``x`` is 0-d: the op works along the last axis (``why`` says how)."""
    if x.ndim == 0:
        raise ValueError(f"Argument `{name}` must have at least one axis ({why}), got a 0-d array.")


def check_softmax(name, x):
    check_last_axis(name, x, "softmax runs over the last")


def check_bias_add(x, b):
    check_last_axis("x", x, "the bias is added along the last")
    check_shape("b", b, (x.shape[-1],), "(the last axis of x)")


def check_bias_backward(dy):
    check_last_axis("dy", dy, "the bias gradient keeps the last")
