"""Fully connected layer: the checks of ``dense_forward``, ``dense_backward_data`` and
``dense_backward_weights`` (x (N, K), w (K, M)), ``precision`` included."""
from .activations import check_activation
from .precision import check_op_precision
from .shapes import check_rank, check_shape

MATRIX = "a matrix: batch, features"
FLATTEN = "flatten the input first (Flatten layer)."


def _check_matrices(**arrays):
    for name, array in arrays.items():
        check_rank(name, array, 2, MATRIX, FLATTEN)


def check_dense_forward(x, w, b, activation, precision):
    check_activation(activation)
    check_op_precision(precision)
    _check_matrices(x=x, w=w)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"Argument `w` has {w.shape[0]} input features but x has {x.shape[1]}. "
                         f"Fix: use a kernel of shape ({x.shape[1]}, units).")
    if b is not None:
        check_shape("b", b, (w.shape[1],), "(one bias per unit)")


def check_dense_backward_data(dy, w, precision):
    check_op_precision(precision)
    _check_matrices(dy=dy, w=w)
    if dy.shape[1] != w.shape[1]:
        raise ValueError(f"Argument `dy` has {dy.shape[1]} columns but w has {w.shape[1]} units. "
                         f"Fix: pass the gradient of this layer's output, shape (batch, {w.shape[1]}).")


def check_dense_backward_weights(x, dy, precision):
    check_op_precision(precision)
    _check_matrices(x=x, dy=dy)
    if x.shape[0] != dy.shape[0]:
        raise ValueError(f"Arguments `x` and `dy` must have the same batch size, got {x.shape[0]} and "
                         f"{dy.shape[0]}.")
