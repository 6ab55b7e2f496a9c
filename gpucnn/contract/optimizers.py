"""Optimizer updates: the checks of ``adam_update`` and ``sgd_update`` (buffers shaped like param) and
the variable offsets of ``clip_by_norm`` and ``clip_by_global_norm``."""
import numpy as np

from .shapes import check_shape
from .steps import check_counter


def check_buffers(param, **state):
    """ValueError unless every ``state`` buffer has the shape of ``param``."""
    for name, array in state.items():
        check_shape(name, array, param.shape, "(the shape of param)")


def sgd_buffers(grad, velocity, momentum):
    """The buffers an SGD step must check against param's shape; ``velocity=None`` needs momentum 0."""
    if velocity is None:
        if momentum != 0:
            raise ValueError(f"Argument `velocity` is required when momentum is {momentum!r}. "
                             f"Fix: pass a zero-initialized buffer shaped like param.")
        return {"grad": grad}
    return {"grad": grad, "velocity": velocity}


def check_adam_update(param, grad, m, v, step):
    check_buffers(param, grad=grad, m=m, v=v)
    check_counter(step)


def check_sgd_update(param, grad, velocity, momentum):
    check_buffers(param, **sgd_buffers(grad, velocity, momentum))


def check_offsets(offsets, size):
    """``offsets``: the variables' start offsets in the flat buffer and its end, [0, ..., size] (a 1-D
    int64 array, non-decreasing); a ValueError naming what is wrong."""
    if offsets.ndim != 1 or offsets.shape[0] < 2:
        raise ValueError(f"Argument `offsets` must be a 1-D array [0, ..., {size}] of at least 2 entries "
                         f"(one variable or more), got shape {tuple(offsets.shape)}.")


def check_offset_values(offsets, size):
    """The values of host ``offsets`` as a NumPy array, or a ValueError unless they run from 0 to
    ``size`` without decreasing.  Only the reference checks them: the launchers leave them on the
    device, where reading them would sync, and the kernels only read inside each slice."""
    values = np.asarray(offsets)
    if values[0] != 0 or values[-1] != size or np.any(np.diff(values) < 0):
        raise ValueError(f"Argument `offsets` must run from 0 to the gradient's size {size} without "
                         f"decreasing, got {values.tolist()}.")
    return values
