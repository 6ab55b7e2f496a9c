"""Optimizer references vs textbook loops written here in float64."""
import itertools
import math

import numpy as np
import pytest

from gpucnn.reference import adam_update, clip_by_global_norm, clip_by_norm, clip_by_value, decay_weights, sgd_update

STEPS = 5


def _gradients(size, seed=3):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(size) for _ in range(STEPS)]


def _textbook_adam(param, grads, lr, beta_1, beta_2, epsilon):
    """Bias-corrected Adam as in the paper, with Keras' epsilon placement (added to sqrt(v), not sqrt(v̂))."""
    param = [float(p) for p in param]
    m = [0.0] * len(param)
    v = [0.0] * len(param)
    for t, grad in enumerate(grads, start=1):
        for i, g in enumerate(grad):
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * g * g
            m_hat = m[i] / (1 - beta_1**t)
            v_hat = v[i] / (1 - beta_2**t)
            epsilon_hat = epsilon / math.sqrt(1 - beta_2**t)
            param[i] -= lr * m_hat / (math.sqrt(v_hat) + epsilon_hat)
    return np.array(param)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("epsilon", [1e-7, 0.1])   # a large epsilon makes its placement matter
def test_adam_matches_textbook_loop(dtype, rtol, epsilon):
    grads = _gradients(17)
    param = np.linspace(-1, 1, 17).astype(dtype)
    expected = _textbook_adam(param, grads, 0.01, 0.9, 0.999, epsilon)
    m, v = np.zeros_like(param), np.zeros_like(param)
    for step, grad in enumerate(grads, start=1):
        adam_update(param, grad.astype(dtype), m, v, np.array([step], np.int64), 0.01, 0.9, 0.999, epsilon)
    assert param.dtype == m.dtype == v.dtype == dtype
    np.testing.assert_allclose(param, expected, rtol=rtol, atol=rtol * 1e-2)


def _textbook_sgd(param, grads, lr, momentum, nesterov):
    param = [float(p) for p in param]
    velocity = [0.0] * len(param)
    for grad in grads:
        for i, g in enumerate(grad):
            velocity[i] = momentum * velocity[i] - lr * g
            param[i] += momentum * velocity[i] - lr * g if nesterov else velocity[i]
    return np.array(param)


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True), (0.5, True)])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_sgd_with_velocity_matches_textbook_loop(momentum, nesterov, dtype, rtol):
    grads = _gradients(11)
    param = np.linspace(-1, 1, 11).astype(dtype)
    expected = _textbook_sgd(param, grads, 0.05, momentum, nesterov)
    velocity = np.zeros_like(param)
    for grad in grads:
        sgd_update(param, grad.astype(dtype), velocity, 0.05, momentum, nesterov)
    np.testing.assert_allclose(param, expected, rtol=rtol, atol=rtol * 1e-2)


def test_plain_sgd_without_velocity():
    grads = _gradients(9)
    param = np.linspace(-1, 1, 9).astype(np.float32)
    expected = np.linspace(-1, 1, 9) - 0.05 * np.sum(grads, axis=0)
    for grad in grads:
        sgd_update(param, grad.astype(np.float32), None, 0.05, 0.0, False)
    np.testing.assert_allclose(param, expected, rtol=1e-5, atol=1e-6)


def test_a_step_count_below_one_raises():
    # Only the reference reads the count on the host; the other checks are the contract's (test_contract.py).
    param = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="`step` must hold a count >= 1"):
        adam_update(param, param.copy(), param.copy(), param.copy(), np.zeros(1, np.int64), 1e-3, 0.9,
                    0.999, 1e-7)


# ---- clipping and weight decay vs Keras 3's formulas, written per variable in float64 ---------------

OFFSETS = np.array([0, 5, 6, 14, 20], np.int64)  # four variables, one of a single element


def _variables(grad):
    return [grad[start:end] for start, end in itertools.pairwise(OFFSETS)]


def _keras_clip_by_norm(values, clipnorm):
    """keras.optimizers.Optimizer._clip_by_norm: values·clipnorm / max(‖values‖, clipnorm)."""
    l2sum = np.sum(np.square(values))
    l2norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
    return values * clipnorm / max(l2norm, clipnorm)


@pytest.mark.parametrize("clipnorm", [0.5, 3.0, 100.0])
def test_clip_by_norm_clips_each_variable_as_keras(clipnorm):
    grad = _gradients(20, seed=5)[0]
    grad[5] = 0.0  # a variable whose norm is 0 keeps its zero gradient
    clipped = clip_by_norm(grad, OFFSETS, clipnorm)
    expected = np.concatenate([_keras_clip_by_norm(v, clipnorm) for v in _variables(grad)])
    np.testing.assert_allclose(clipped, expected, rtol=1e-12)
    for variable in _variables(clipped):
        assert np.linalg.norm(variable) <= clipnorm * (1 + 1e-12)


@pytest.mark.parametrize("clipnorm", [0.5, 100.0])
def test_clip_by_global_norm_scales_every_variable_as_keras(clipnorm):
    grad = _gradients(20, seed=6)[0]
    clipped = clip_by_global_norm(grad, OFFSETS, clipnorm)
    norm = math.sqrt(sum(np.sum(np.square(v)) for v in _variables(grad)))  # keras global_norm
    np.testing.assert_allclose(clipped, grad * clipnorm * min(1 / norm, 1 / clipnorm), rtol=1e-12)


def test_clip_by_global_norm_of_a_non_finite_gradient_is_nan_as_keras():
    grad = _gradients(20, seed=6)[0]
    grad[3] = np.inf
    assert np.isnan(clip_by_global_norm(grad, OFFSETS, 1.0)).all()
    zeros = clip_by_global_norm(np.zeros(20), OFFSETS, 2.0)
    np.testing.assert_array_equal(zeros, 0)


def test_clip_by_value_and_weight_decay_formulas():
    grad = np.array([-3.0, -0.5, 0.0, 0.25, 7.0])
    np.testing.assert_array_equal(clip_by_value(grad, 0.5), [-0.5, -0.5, 0.0, 0.25, 0.5])
    param = np.array([1.0, -2.0, 0.5])
    decay_weights(param, 0.004, 0.1)
    np.testing.assert_allclose(param, np.array([1.0, -2.0, 0.5]) * (1 - 0.004 * 0.1), rtol=1e-15)


@pytest.mark.parametrize("offsets", [np.array([0, 5, 19]), np.array([1, 20]), np.array([0, 12, 8, 20])])
def test_bad_offset_values_are_refused(offsets):
    # Only the reference reads the offsets on the host; their shape is the contract's (test_contract.py).
    with pytest.raises(ValueError, match="`offsets` must run from 0 to the gradient's size 20"):
        clip_by_norm(np.zeros(20), offsets.astype(np.int64), 1.0)
