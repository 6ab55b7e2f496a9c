"""Activations, bias add and bias gradient: the fused activations, their kernel codes, and the checks of
``relu_*``, ``leaky_relu_*``, ``sigmoid_*``, ``tanh_*``, ``softmax_*``, ``bias_add`` and ``bias_backward``."""
import math
import numbers

from .shapes import check_last_axis, check_shape

#: The activations conv and dense apply in their epilogue.
FUSED_ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh")
#: Their values in ``enum Activation`` of kernels/common.cuh (a test parses the header to keep the two equal).
ACTIVATION_CODES = {"linear": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4}


def check_activation(activation):
    """``activation`` if it names a fused activation, else a ValueError listing the choices."""
    if activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"Argument `activation` must be one of {', '.join(map(repr, FUSED_ACTIVATIONS))}, "
                         f"got {activation!r}. Fix: apply other activations as a separate layer.")
    return activation


def check_alpha(alpha, name="alpha"):
    """The leaky slope ``alpha`` as a float, or a ValueError naming ``name`` unless it is a finite
    number >= 0 (Keras allows any such slope; 0 is ReLU)."""
    # The backward pass reads the sign of x from y, which a negative slope would flip; an infinite one
    # would turn every negative input into -inf and its gradient into NaN.
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha < math.inf:
        raise ValueError(f"Argument `{name}` (the leaky slope) must be a finite float >= 0, got {alpha!r}.")
    return float(alpha)


def check_gradient(dy, y):
    """ValueError unless the saved output ``y`` has the shape of ``dy``."""
    check_shape("y", y, dy.shape, "(the shape of dy)")


def check_softmax(name, x):
    check_last_axis(name, x, "softmax runs over the last")


def check_bias_add(x, b):
    check_last_axis("x", x, "the bias is added along the last")
    check_shape("b", b, (x.shape[-1],), "(the last axis of x)")


def check_bias_backward(dy):
    check_last_axis("dy", dy, "the bias gradient keeps the last")
