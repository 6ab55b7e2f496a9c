"""Dense launchers (kernels/gemm.cu): the three products of a fully connected layer, launched through
:func:`gpucnn.cuda.gemm.launch_gemm`, with the argument checks of ``gpucnn.contract.dense``.
``precision=None`` means the global setting of gpucnn.config ('highest': FP32 kernels of gemm.cu; 'high' /
'medium': TF32 / BF16 tensor-core kernels of gemm_tc.cu).
"""
import numpy as np

from gpucnn.contract.dense import check_dense_backward_data, check_dense_backward_weights, check_dense_forward
from gpucnn.cuda import runtime
from gpucnn.cuda.gemm import check_gemm_size, check_operands, launch_gemm


def dense_forward(x, w, b, activation="linear", alpha=0.2, precision=None):
    """y = act(x @ w + b): x (N, K), w (K, M), b (M,) or None -> (N, M)."""
    check_operands(x=x, w=w, b=b)
    check_dense_forward(x, w, b, activation, precision)
    (batch, features), units = x.shape, w.shape[1]
    check_gemm_size(batch, units, features, "dense_forward")
    y = runtime.xp().empty((batch, units), dtype=np.float32)
    return launch_gemm("gemm.cu", "gemm_nn", x, w, (batch, units, features), batch, units, features, y,
                       b, activation, alpha, precision)


def dense_backward_data(dy, w, precision=None):
    """dx = dy @ wᵀ: dy (N, M), w (K, M) -> (N, K)."""
    check_operands(dy=dy, w=w)
    check_dense_backward_data(dy, w, precision)
    (batch, units), features = dy.shape, w.shape[0]
    check_gemm_size(batch, features, units, "dense_backward_data")
    dx = runtime.xp().empty((batch, features), dtype=np.float32)
    return launch_gemm("gemm.cu", "gemm_nt", dy, w, (batch, features, units), batch, features, units, dx,
                       precision=precision)


def dense_backward_weights(x, dy, precision=None):
    """dw = xᵀ @ dy: x (N, K), dy (N, M) -> (K, M)."""
    check_operands(x=x, dy=dy)
    check_dense_backward_weights(x, dy, precision)
    (batch, features), units = x.shape, dy.shape[1]
    check_gemm_size(features, units, batch, "dense_backward_weights")
    dw = runtime.xp().empty((features, units), dtype=np.float32)
    return launch_gemm("gemm.cu", "gemm_tn", x, dy, (features, units, batch), features, units, batch, dw,
                       precision=precision)
