"""Fully connected layer (NumPy reference): x (N, K) @ w (K, M) + b, with a fused activation.

``precision`` (None, 'highest', 'high', 'medium'): None and 'highest' compute in exact float32; 'high' and
'medium' first round both GEMM operands to TF32 / BF16 as the tensor-core kernels do (see precision.py).
"""
from gpucnn.contract.dense import check_dense_backward_data, check_dense_backward_weights, check_dense_forward

from .activations import apply_activation_
from .precision import round_operands


def dense_forward(x, w, b, activation="linear", alpha=0.2, precision=None):
    """y = act(x @ w + b): x (N, K), w (K, M), b (M,) or None -> (N, M)."""
    check_dense_forward(x, w, b, activation, precision)
    x, w = round_operands(precision, x, w)
    y = x @ w
    if b is not None:
        y += b
    return apply_activation_(y, activation, alpha)


def dense_backward_data(dy, w, precision=None):
    """dx = dy @ wᵀ."""
    check_dense_backward_data(dy, w, precision)
    dy, w = round_operands(precision, dy, w)
    return dy @ w.T


def dense_backward_weights(x, dy, precision=None):
    """dw = xᵀ @ dy."""
    check_dense_backward_weights(x, dy, precision)
    x, dy = round_operands(precision, x, dy)
    return x.T @ dy
