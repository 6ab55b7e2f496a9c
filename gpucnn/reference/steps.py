"""Step counters as the ops take them: a 1-element int64 array on the backend.

Ops whose result depends on the step number (Adam's bias correction, the dropout mask seed) read it
from such an array instead of taking a host int, so that a training step captured as a CUDA graph
reads the current count on every replay rather than the count it was captured with.
"""
import numpy as np


def check_step_shape(step):
    """ValueError unless ``step`` (already known to be an array) holds exactly one element."""
    if tuple(step.shape) != (1,):
        raise ValueError(f"Argument `step` must be a 1-element int64 array (the step counter), got shape "
                         f"{tuple(step.shape)}. Fix: pass e.g. np.array([1], dtype=np.int64).")


def step_value(step, minimum):
    """The count held by the NumPy counter ``step``, checked to be >= ``minimum``."""
    if not isinstance(step, np.ndarray) or step.dtype != np.int64:
        got = f"an array of dtype {step.dtype}" if isinstance(step, np.ndarray) else repr(step)
        raise TypeError(f"Argument `step` must be a 1-element int64 array (the step counter), got {got}. "
                        f"Fix: pass e.g. np.array([1], dtype=np.int64).")
    check_step_shape(step)
    value = int(step[0])
    if value < minimum:
        raise ValueError(f"Argument `step` must hold a count >= {minimum}, got {value}.")
    return value
