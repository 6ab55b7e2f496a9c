"""Step counters as the ops take them: a 1-element int64 array on the backend.

Ops whose result depends on the step number (Adam's bias correction, the dropout mask seed) read it
from such an array instead of taking a host int, so that a training step captured as a CUDA graph
reads the current count on every replay rather than the count it was captured with.
"""
import numpy as np

_FIX = "Fix: pass e.g. np.array([1], dtype=np.int64)."


def check_counter(step):
    """TypeError/ValueError unless ``step`` is a 1-element int64 array (NumPy or CuPy)."""
    dtype = getattr(step, "dtype", None)
    if dtype != np.int64 or not hasattr(step, "shape"):
        got = f"an array of dtype {dtype}" if dtype is not None else repr(step)
        raise TypeError(f"Argument `step` must be a 1-element int64 array (the step counter), got {got}. "
                        f"{_FIX}")
    if tuple(step.shape) != (1,):
        raise ValueError(f"Argument `step` must be a 1-element int64 array (the step counter), got shape "
                         f"{tuple(step.shape)}. {_FIX}")


def check_count(value, minimum):
    """``value``, the count a counter holds, unless it is below ``minimum``."""
    if value < minimum:
        raise ValueError(f"Argument `step` must hold a count >= {minimum}, got {value}.")
    return value
