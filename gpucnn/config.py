"""Global numerical settings of the convolution and Dense kernels.

``set_float32_matmul_precision(precision)`` takes PyTorch's names, with PyTorch's meaning:

``"highest"``  strict FP32: the CUDA-core kernels, every product and sum in float32 (the default).
``"high"``     TF32 tensor cores: operands rounded to TF32 (10 mantissa bits, round to nearest, ties away
               from zero, as ``wmma::__float_to_tf32``) when staged, FP32 accumulation and storage.
               Each operand is off by at most 2⁻¹¹ (4.9e-4) relative (float32: 2⁻²⁴, 6e-8), so each
               product by at most ~2⁻¹⁰ (1e-3).
``"medium"``   BF16 tensor cores: operands rounded to bfloat16 (7 mantissa bits, round to nearest even)
               when staged, FP32 accumulation and storage.  Each operand is off by at most 2⁻⁸ (3.9e-3)
               relative, each product by at most ~2⁻⁷ (7.8e-3).

It applies to conv2d forward, backward-data and backward-filter and to Dense (forward and both backward
passes) on the ``cuda`` and ``emulated`` backends; other ops always compute in float32.  The ``cpu``
backend (the NumPy reference) stays exact FP32 whatever the setting: the reference ops round their operands
only when asked with an explicit ``precision=`` argument (so tests compare like with like).

Default: ``"highest"``, as PyTorch's ``torch.get_float32_matmul_precision()``: results match the float32
reference to ~1e-6 relative and no one gets reduced precision without asking.  (TensorFlow/Keras and
PyTorch's cuDNN convolutions allow TF32 by default instead; set ``"high"`` for their speed and accuracy.)
The environment variable ``GPUCNN_FLOAT32_MATMUL_PRECISION`` sets the value for a process until
``set_float32_matmul_precision`` is called; ``float32_matmul_precision(p)`` sets it for a ``with`` block
(how a model compiled with ``matmul_precision=p`` runs its steps).
"""
import contextlib
import os

from gpucnn.contract.precision import PRECISIONS, check_precision

DEFAULT_PRECISION = "highest"
PRECISION_ENV = "GPUCNN_FLOAT32_MATMUL_PRECISION"

_precision = None  # set explicitly; None: the environment variable, else the default

__all__ = ["DEFAULT_PRECISION", "PRECISIONS", "PRECISION_ENV", "float32_matmul_precision",
           "get_float32_matmul_precision", "resolve_precision", "set_float32_matmul_precision"]


def set_float32_matmul_precision(precision):
    """Set the precision of the conv and Dense kernels: 'highest' (FP32), 'high' (TF32) or 'medium' (BF16)."""
    global _precision
    _precision = check_precision(precision, "Argument `precision`")


@contextlib.contextmanager
def float32_matmul_precision(precision):
    """Inside the ``with`` block the conv and Dense kernels use ``precision`` (None: the setting stays as it
    is); on exit the previous setting comes back."""
    global _precision
    if precision is None:
        yield
        return
    previous, _precision = _precision, check_precision(precision, "Argument `precision`")
    try:
        yield
    finally:
        _precision = previous


def get_float32_matmul_precision():
    """The precision the conv and Dense kernels use now (see the module docstring)."""
    if _precision is not None:
        return _precision
    configured = os.environ.get(PRECISION_ENV)
    if configured:
        return check_precision(configured, f"The environment variable {PRECISION_ENV}")
    return DEFAULT_PRECISION


def resolve_precision(precision):
    """The precision an op runs at: ``precision`` if given (checked), else the global setting."""
    return get_float32_matmul_precision() if precision is None else check_precision(precision)
