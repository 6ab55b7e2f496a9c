"""Adam and SGD kernels vs the NumPy reference, over several steps on one flat parameter buffer."""
import numpy as np
import pytest
from ops import assert_close, on_backends, on_device, pick, random

from gpucnn import cuda as launchers
from gpucnn import reference

STEPS = 3


def _buffers(backend, *seeds):
    size = pick(backend, 70, 5_000_000)  # 70: a partial block and a grid-stride wrap when emulated
    return [random((size,), seed) for seed in seeds]


@on_backends()
def test_adam_matches_reference(backend):
    param, m, v = _buffers(backend, 0, 1, 2)
    v = np.abs(v)
    on = list(on_device(backend, param, m, v))
    step, on_step = np.zeros(1, np.int64), on_device(backend, np.zeros(1, np.int64))
    for update in range(1, STEPS + 1):
        step += 1
        on_step += 1  # advanced on the backend, as the optimizer does: the kernel reads the count
        grad = random(param.shape, seed=10 + update)
        launchers.adam_update(on[0], on_device(backend, grad), on[1], on[2], on_step, 1e-2, 0.9, 0.999, 1e-7)
        reference.adam_update(param, grad, m, v, step, 1e-2, 0.9, 0.999, 1e-7)
    for actual, expected in zip(on, (param, m, v)):
        assert_close(actual, expected, rtol=1e-5, atol=1e-6)


@on_backends()
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_reference(backend, momentum, nesterov):
    param, velocity = _buffers(backend, 3, 4)
    velocity = None if momentum == 0 else velocity
    on_param = on_device(backend, param)
    on_velocity = None if velocity is None else on_device(backend, velocity)
    for step in range(STEPS):
        grad = random(param.shape, seed=20 + step)
        launchers.sgd_update(on_param, on_device(backend, grad), on_velocity, 0.05, momentum, nesterov)
        reference.sgd_update(param, grad, velocity, 0.05, momentum, nesterov)
    assert_close(on_param, param, rtol=1e-6, atol=1e-6)
    if velocity is not None:
        assert_close(on_velocity, velocity, rtol=1e-6, atol=1e-6)


def test_optimizer_launchers_take_flat_buffers(emulated):
    # The op's own argument checks are the contract's, tested on every backend in test_contract.py.
    step = np.ones(1, np.int64)
    with pytest.raises(ValueError, match="`param` must have rank 1"):
        launchers.adam_update(random((2, 4)), random((2, 4)), random((2, 4)), random((2, 4)), step,
                              1e-3, 0.9, 0.999, 1e-7)
    with pytest.raises(TypeError, match="`offsets` must have dtype int64"):
        launchers.clip_by_norm(random((8,)), np.array([0, 8], np.int32), 1.0)
    with pytest.raises(ValueError, match="`grad` must have rank 1"):
        launchers.clip_by_value(random((2, 4)), 1.0)


def _offsets(backend):
    """Variables of the flat buffer: emulated, sizes that wrap the 2 × 32-thread parts of a variable and a
    one-element variable; on the GPU, the article model's weights."""
    sizes = pick(backend, [5, 1, 70, 20], [4608, 512, 1179648, 256, 294912, 128, 512, 1])
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


@on_backends()
@pytest.mark.parametrize("op, clipnorm", [("clip_by_norm", 0.5), ("clip_by_norm", 1e6),
                                          ("clip_by_global_norm", 0.5), ("clip_by_global_norm", 1e6)])
def test_clipping_by_norm_matches_reference(backend, op, clipnorm):
    offsets = _offsets(backend)
    grad = random((int(offsets[-1]),), seed=7)
    grad[offsets[:-1][np.diff(offsets) == 1]] = 0.0  # the one-element variable has norm 0
    clipped = getattr(launchers, op)(*on_device(backend, grad, offsets), clipnorm)
    assert_close(clipped, getattr(reference, op)(grad, offsets, clipnorm), rtol=1e-5, atol=1e-7)


@on_backends()
def test_clip_by_value_and_decay_weights_match_reference(backend):
    grad, param = _buffers(backend, 8, 9)
    grad[:3] = [np.nan, np.inf, -np.inf]
    assert_close(launchers.clip_by_value(on_device(backend, grad), 0.3),
                 reference.clip_by_value(grad, 0.3), exact=True)
    on_param = on_device(backend, param)
    launchers.decay_weights(on_param, 0.004, 0.01)
    reference.decay_weights(param, 0.004, 0.01)
    assert_close(on_param, param, rtol=1e-7, atol=1e-9)
