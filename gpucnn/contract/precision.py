"""The float32 matmul precision of the conv and Dense ops (``gpucnn.config``): its names, and the check of
the ``precision`` argument every conv and Dense op takes (None: the backend's default)."""

#: PyTorch's float32 matmul precisions: FP32, TF32 and BF16.
PRECISIONS = ("highest", "high", "medium")


def check_precision(value, name="Argument `precision`"):
    """``value`` if it is one of :data:`PRECISIONS`, else a ValueError naming ``name``."""
    if not isinstance(value, str) or value not in PRECISIONS:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, PRECISIONS))} (PyTorch's "
                         f"float32 matmul precisions), got {value!r}. Fix: use 'highest' for strict FP32, "
                         f"'high' for TF32 or 'medium' for BF16 tensor cores.")
    return value


def check_op_precision(precision, name="Argument `precision`"):
    """An op's (or a model's) ``precision``: None (the default setting) or one of :data:`PRECISIONS`."""
    return None if precision is None else check_precision(precision, name)
