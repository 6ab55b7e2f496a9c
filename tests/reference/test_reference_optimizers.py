"""Optimizer references vs textbook loops written here in float64."""
import math

import numpy as np
import pytest

from gpucnn.reference import adam_update, sgd_update

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
