"""Batch-norm reference: statistics vs numpy, inference vs training, backward vs finite differences."""
import numpy as np
import pytest
from gradcheck import assert_gradient, projection

from gpucnn.reference import batchnorm_backward, batchnorm_forward_inference, batchnorm_forward_training

SHAPES = [(2, 3, 3, 2), (5, 4), (1, 2, 2, 3), (3, 1, 2, 1)]
EPSILON = 1e-3


def _operands(shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    return (rng.standard_normal(shape).astype(dtype) * 2 + 1, rng.uniform(0.5, 1.5, channels).astype(dtype),
            rng.standard_normal(channels).astype(dtype))


@pytest.mark.parametrize("shape", SHAPES)
def test_training_statistics_and_output_match_numpy(shape):
    x, gamma, beta = _operands(shape)
    y, mean, var, inv_std = batchnorm_forward_training(x, gamma, beta, EPSILON)
    axes = tuple(range(x.ndim - 1))
    np.testing.assert_allclose(mean, x.mean(axis=axes), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=axes), rtol=1e-12, atol=1e-12)  # biased (ddof=0)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(x.var(axis=axes) + EPSILON), rtol=1e-12)
    expected = (x - x.mean(axis=axes)) / np.sqrt(x.var(axis=axes) + EPSILON) * gamma + beta
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_inference_with_the_batch_statistics_equals_training(shape):
    x, gamma, beta = _operands(shape, np.float32)
    y, mean, var, _ = batchnorm_forward_training(x, gamma, beta, EPSILON)
    np.testing.assert_allclose(batchnorm_forward_inference(x, gamma, beta, mean, var, EPSILON), y,
                               rtol=1e-6, atol=1e-6)
    assert y.dtype == mean.dtype == var.dtype == np.float32


def test_inference_uses_the_moving_statistics_given():
    x, gamma, beta = _operands((4, 3))
    moving_mean, moving_var = np.array([0.5, -1.0, 2.0]), np.array([1.0, 4.0, 0.25])
    y = batchnorm_forward_inference(x, gamma, beta, moving_mean, moving_var, EPSILON)
    np.testing.assert_allclose(y, gamma * (x - moving_mean) / np.sqrt(moving_var + EPSILON) + beta, rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_finite_differences(shape):
    x, gamma, beta = _operands(shape)
    dy = projection(shape)
    _, mean, _, inv_std = batchnorm_forward_training(x, gamma, beta, EPSILON)
    dx, dgamma, dbeta = batchnorm_backward(dy, x, gamma, mean, inv_std)
    assert_gradient(lambda v: batchnorm_forward_training(v, gamma, beta, EPSILON)[0], x, dy, dx, rtol=1e-5, atol=1e-6)
    assert_gradient(lambda v: batchnorm_forward_training(x, v, beta, EPSILON)[0], gamma, dy, dgamma)
    assert_gradient(lambda v: batchnorm_forward_training(x, gamma, v, EPSILON)[0], beta, dy, dbeta)
