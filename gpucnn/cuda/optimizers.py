"""Launchers of the optimizer kernels (``kernels/elementwise.py``): one launch updates the whole model.

Same names and signatures as ``gpucnn.reference.optimizers``; all buffers are flat 1-D float32 (the
model keeps every trainable parameter in one buffer) and are updated in place.
"""
import numpy as np

from gpucnn.contract.optimizers import check_adam_update, check_sgd_update
from gpucnn.cuda import runtime
from gpucnn.cuda._numba_launch import launch_grid_stride
from gpucnn.kernels import elementwise


def _check_flat_buffers(**buffers):
    """The launchers' own checks: flat float32 buffers of the backend (None skipped)."""
    for name, array in buffers.items():
        if array is not None:
            runtime.check_array(name, array, ndim=1)


def adam_update(param, grad, m, v, step, learning_rate, beta_1, beta_2, epsilon):
    """One Adam update, the t-th, with t held by the step counter ``step`` (a 1-element int64 device
    array, >= 1: it is read by the kernel, so a count of 0 is not caught here and gives NaN); updates
    param, m and v in place."""
    _check_flat_buffers(param=param, grad=grad, m=m, v=v)
    check_adam_update(param, grad, m, v, step)
    runtime.check_array("step", step, dtype=np.int64)
    launch_grid_stride(elementwise.adam_update, param.size, param, grad, m, v, step,
                       np.float64(learning_rate), np.float64(beta_1), np.float64(beta_2),
                       np.float32(epsilon))


def sgd_update(param, grad, velocity, learning_rate, momentum, nesterov):
    """One SGD step in place; ``velocity=None`` (momentum 0) is plain SGD."""
    _check_flat_buffers(param=param, grad=grad, velocity=velocity)
    check_sgd_update(param, grad, velocity, momentum)
    # Plain SGD never touches the velocity argument, so the read-only grad stands in for the missing
    # buffer (not param: the simulator copies each argument back, and a written alias would be lost).
    launch_grid_stride(elementwise.sgd_update, param.size, param, grad,
                       grad if velocity is None else velocity, np.float32(learning_rate),
                       np.float32(momentum), np.bool_(nesterov), np.bool_(velocity is not None))
