"""Launchers of the optimizer kernels (``kernels/elementwise.py``, the norms in ``kernels/reduce.py``):
one launch updates the whole model; clipping and weight decay add a few launches, never a host sync.

Same names and signatures as ``gpucnn.reference.optimizers``; all buffers are flat 1-D float32 (the
model keeps every trainable parameter in one buffer) and are updated in place.
"""
import numpy as np

from gpucnn.contract.optimizers import check_adam_update, check_offsets, check_sgd_update
from gpucnn.cuda import _numba_launch, runtime
from gpucnn.cuda._numba_launch import launch_grid_stride
from gpucnn.kernels import elementwise, reduce

#: Blocks per variable of the norm kernels: the largest weights of a model (a conv kernel of ~1M
#: floats) get a wave of blocks; small ones leave most of theirs idle, which costs little.
MAX_PARTS = 64


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


def _check_offsets(grad, offsets):
    runtime.check_array("grad", grad, ndim=1)
    runtime.check_array("offsets", offsets, ndim=1, dtype=np.int64)
    check_offsets(offsets, grad.size)  # not check_offset_values: the values stay on the device


def _clip_by_norm(grad, offsets, clipnorm, global_norm):
    _check_offsets(grad, offsets)
    xp = runtime.xp()
    segments = offsets.shape[0] - 1
    threads = _numba_launch.THREADS
    parts = min(runtime.blocks_for(grad.size, threads), _numba_launch.MAX_BLOCKS, MAX_PARTS)
    partials = xp.empty(parts * segments, dtype=np.float32)
    stream = runtime.numba_stream()
    reduce.segment_square_sums[(parts, segments), threads, stream](grad, offsets, partials)
    factors = xp.empty(segments, dtype=np.float32)
    launch_grid_stride(reduce.clip_factors, segments, partials, np.int64(parts), np.float32(clipnorm),
                       np.bool_(global_norm), factors)
    out = xp.empty_like(grad)
    reduce.scale_segments[(parts, segments), threads, stream](grad, offsets, factors, out)
    return out


def clip_by_norm(grad, offsets, clipnorm):
    """Each variable's gradient times clipnorm / max(its norm, clipnorm) (Keras' clipnorm); a new array."""
    return _clip_by_norm(grad, offsets, clipnorm, global_norm=False)


def clip_by_global_norm(grad, offsets, clipnorm):
    """Every gradient times clipnorm·min(1/‖g‖, 1/clipnorm), ‖g‖ over all variables (Keras'
    global_clipnorm); a new array."""
    return _clip_by_norm(grad, offsets, clipnorm, global_norm=True)


def clip_by_value(grad, clipvalue):
    """Every gradient element clipped to [-clipvalue, clipvalue] (Keras' clipvalue); a new array."""
    runtime.check_array("grad", grad, ndim=1)
    out = runtime.xp().empty_like(grad)
    launch_grid_stride(elementwise.clip_by_value, grad.size, grad, out, np.float32(clipvalue))
    return out


def decay_weights(param, weight_decay, learning_rate):
    """param -= param·weight_decay·learning_rate in place (Keras' weight decay, before the update)."""
    runtime.check_array("param", param, ndim=1)
    launch_grid_stride(elementwise.decay_weights, param.size, param, np.float32(weight_decay),
                       np.float32(learning_rate))
