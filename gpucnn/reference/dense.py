"""Fully connected layer (NumPy reference): x (N, K) @ w (K, M) + b, with a fused activation.

``precision`` (None, 'highest', 'high', 'medium'): None and 'highest' compute in exact float32; 'high' and
'medium' first round both GEMM operands to TF32 / BF16 as the tensor-core kernels do (see precision.py).
"""
from .activations import apply_activation_, check_activation
from .precision import round_operands


def _check_matrix(array, name):
    if array.ndim != 2:
        raise ValueError(f"Argument `{name}` must be a matrix (rank 2), got shape {array.shape}. "
                         f"Fix: flatten the input first (Flatten layer).")


def dense_forward(x, w, b, activation="linear", alpha=0.2, precision=None):
    """y = act(x @ w + b): x (N, K), w (K, M), b (M,) or None -> (N, M)."""
    check_activation(activation)
    _check_matrix(x, "x")
    _check_matrix(w, "w")
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"Argument `w` has {w.shape[0]} input features but x has {x.shape[1]}. "
                         f"Fix: use a kernel of shape ({x.shape[1]}, units).")
    x, w = round_operands(precision, x, w)
    y = x @ w
    if b is not None:
        if b.shape != (w.shape[1],):
            raise ValueError(f"Argument `b` must have shape ({w.shape[1]},), got {b.shape}.")
        y += b
    return apply_activation_(y, activation, alpha)


def dense_backward_data(dy, w, precision=None):
    """dx = dy @ wᵀ."""
    dy, w = round_operands(precision, dy, w)
    return dy @ w.T


def dense_backward_weights(x, dy, precision=None):
    """dw = xᵀ @ dy."""
    x, dy = round_operands(precision, x, dy)
    return x.T @ dy
