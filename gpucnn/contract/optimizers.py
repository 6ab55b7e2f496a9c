"""Optimizer updates: the checks of ``adam_update`` and ``sgd_update`` (buffers shaped like param)."""
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
