"""Fully connected layer (NumPy reference): x (N, K) @ w (K, M) + b, with a fused activation."""
from gpucnn.contract.dense import check_dense_backward_data, check_dense_backward_weights, check_dense_forward

from .activations import apply_activation_


def dense_forward(x, w, b, activation="linear", alpha=0.2):
    """y = act(x @ w + b): x (N, K), w (K, M), b (M,) or None -> (N, M)."""
    check_dense_forward(x, w, b, activation)
    y = x @ w
    if b is not None:
        y += b
    return apply_activation_(y, activation, alpha)


def dense_backward_data(dy, w):
    """dx = dy @ wᵀ."""
    check_dense_backward_data(dy, w)
    return dy @ w.T


def dense_backward_weights(x, dy):
    """dw = xᵀ @ dy."""
    check_dense_backward_weights(x, dy)
    return x.T @ dy
