"""Dense launchers (kernels/gemm.cu): the three products of a fully connected layer, launched through
:func:`gpucnn.cuda.gemm.launch_gemm`.
"""
import numpy as np

from gpucnn.cuda import runtime
from gpucnn.cuda.gemm import check_gemm_size, launch_gemm
from gpucnn.reference.activations import check_activation


def _check_matrix(name, array):
    runtime.check_array(name, array, ndim=2)
    if 0 in array.shape:
        raise ValueError(f"Argument `{name}` must not be empty, got shape {tuple(array.shape)}.")


def dense_forward(x, w, b, activation="linear", alpha=0.2):
    """y = act(x @ w + b): x (N, K), w (K, M), b (M,) or None -> (N, M)."""
    check_activation(activation)
    _check_matrix("x", x)
    _check_matrix("w", w)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"Argument `w` has {w.shape[0]} input features but x has {x.shape[1]}. "
                         f"Fix: use a kernel of shape ({x.shape[1]}, units).")
    (batch, features), units = x.shape, w.shape[1]
    if b is not None:
        runtime.check_array("b", b, ndim=1)
        if b.shape != (units,):
            raise ValueError(f"Argument `b` must have shape ({units},), got {tuple(b.shape)}.")
    check_gemm_size(batch, units, features, "dense_forward")
    y = runtime.xp().empty((batch, units), dtype=np.float32)
    return launch_gemm("gemm.cu", "gemm_nn", x, w, (batch, units, features), batch, units, features, y,
                       b, activation, alpha)


def dense_backward_data(dy, w):
    """dx = dy @ wᵀ: dy (N, M), w (K, M) -> (N, K)."""
    _check_matrix("dy", dy)
    _check_matrix("w", w)
    if dy.shape[1] != w.shape[1]:
        raise ValueError(f"Argument `dy` has {dy.shape[1]} columns but w has {w.shape[1]} units. "
                         f"Fix: pass the gradient of this layer's output, shape (batch, {w.shape[1]}).")
    (batch, units), features = dy.shape, w.shape[0]
    check_gemm_size(batch, features, units, "dense_backward_data")
    dx = runtime.xp().empty((batch, features), dtype=np.float32)
    return launch_gemm("gemm.cu", "gemm_nt", dy, w, (batch, features, units), batch, features, units, dx)


def dense_backward_weights(x, dy):
    """dw = xᵀ @ dy: x (N, K), dy (N, M) -> (K, M)."""
    _check_matrix("x", x)
    _check_matrix("dy", dy)
    if x.shape[0] != dy.shape[0]:
        raise ValueError(f"Arguments `x` and `dy` must have the same batch size, got {x.shape[0]} and "
                         f"{dy.shape[0]}.")
    (batch, features), units = x.shape, dy.shape[1]
    check_gemm_size(features, units, batch, "dense_backward_weights")
    dw = runtime.xp().empty((features, units), dtype=np.float32)
    return launch_gemm("gemm.cu", "gemm_tn", x, dy, (features, units, batch), features, units, batch, dw)
