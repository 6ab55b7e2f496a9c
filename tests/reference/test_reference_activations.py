"""Activation, softmax and bias references vs closed forms (scipy) and finite differences."""
import warnings

import numpy as np
import pytest
from gradcheck import assert_gradient, projection
from scipy import special

from gpucnn.reference import (
    bias_add,
    bias_backward,
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
    tanh_backward,
    tanh_forward,
)


def _away_from_zero(shape, seed=0):
    """float64 values with |x| >= 0.1, so a finite-difference step never crosses a kink at 0."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(x >= 0, x + 0.1, x - 0.1)


@pytest.mark.parametrize("alpha", [0.2, 0.01, 1.5, 0.0])
def test_forwards_match_closed_forms(alpha):
    x = _away_from_zero((4, 5, 3)).astype(np.float32)
    x[0, 0, :] = [0.0, -0.0, 3.0]
    np.testing.assert_array_equal(relu_forward(x), np.where(x > 0, x, 0))
    np.testing.assert_allclose(leaky_relu_forward(x, alpha), np.where(x > 0, x, np.float32(alpha) * x), rtol=1e-7)
    np.testing.assert_allclose(sigmoid_forward(x), special.expit(x.astype(np.float64)), rtol=1e-6)
    np.testing.assert_allclose(tanh_forward(x), np.tanh(x.astype(np.float64)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(softmax_forward(x), special.softmax(x.astype(np.float64), axis=-1), rtol=1e-6)
    for y in (relu_forward(x), leaky_relu_forward(x, alpha), sigmoid_forward(x), tanh_forward(x),
              softmax_forward(x)):
        assert y.dtype == np.float32 and y.shape == x.shape


def test_sigmoid_and_softmax_are_stable_at_extremes():
    x = np.array([[-1000.0, -100.0, -20.0, 0.0, 20.0, 100.0, 1000.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # NumPy overflow in exp
        s = sigmoid_forward(x)
        p = softmax_forward(x)
    np.testing.assert_allclose(s, special.expit(x.astype(np.float64)), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(p, special.softmax(x.astype(np.float64), axis=-1), rtol=1e-6, atol=1e-30)


def test_inputs_are_not_modified():
    x = _away_from_zero((3, 4)).astype(np.float32)
    saved = x.copy()
    for forward in (relu_forward, sigmoid_forward, tanh_forward, softmax_forward,
                    lambda v: leaky_relu_forward(v, 0.2)):
        forward(x)
    np.testing.assert_array_equal(x, saved)


@pytest.mark.parametrize("forward, backward", [
    (relu_forward, relu_backward),
    (lambda x: leaky_relu_forward(x, 0.2), lambda dy, y: leaky_relu_backward(dy, y, 0.2)),
    (lambda x: leaky_relu_forward(x, 1.5), lambda dy, y: leaky_relu_backward(dy, y, 1.5)),
    (lambda x: leaky_relu_forward(x, 0.0), lambda dy, y: leaky_relu_backward(dy, y, 0.0)),
    (sigmoid_forward, sigmoid_backward),
    (tanh_forward, tanh_backward),
    (softmax_forward, softmax_backward),
], ids=["relu", "leaky_relu", "leaky_relu_alpha_above_1", "leaky_relu_alpha_0", "sigmoid", "tanh", "softmax"])
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 3, 2)])
def test_backward_from_output_matches_finite_differences(forward, backward, shape):
    x = _away_from_zero(shape)
    dy = projection(shape)
    assert_gradient(forward, x, dy, backward(dy, forward(x)))


def test_relu_gradients_at_zero_follow_tensorflow():
    y = np.zeros(3, np.float32)           # output 0 <=> input <= 0: no gradient for relu, alpha for leaky
    dy = np.ones(3, np.float32)
    np.testing.assert_array_equal(relu_backward(dy, y), 0)
    np.testing.assert_allclose(leaky_relu_backward(dy, y, 0.2), np.float32(0.2))
    np.testing.assert_array_equal(leaky_relu_backward(dy, y, 0.0), 0)  # a slope of 0 is relu


def test_leaky_relu_with_slope_0_is_relu_forward_and_backward():
    """With alpha = 0 the output no longer tells x < 0 from x = 0 (both give 0, or -0.0), and both
    gradients are alpha·dy = 0 there: the same gradient as relu, for every input."""
    x = np.array([-2.0, -0.0, 0.0, 1e-30, 3.0], np.float32)
    dy = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    y = leaky_relu_forward(x, 0.0)
    np.testing.assert_array_equal(y, relu_forward(x))
    np.testing.assert_array_equal(leaky_relu_backward(dy, y, 0.0), relu_backward(dy, relu_forward(x)))


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 1), (1, 2, 2, 6)])
def test_bias_add_and_backward(shape):
    rng = np.random.default_rng(4)
    x, b = rng.standard_normal(shape), rng.standard_normal(shape[-1])
    np.testing.assert_allclose(bias_add(x, b), x + b.reshape((1,) * (len(shape) - 1) + (-1,)), rtol=1e-15)
    dy = projection(shape)
    db = bias_backward(dy)
    np.testing.assert_allclose(db, dy.sum(axis=tuple(range(len(shape) - 1))), rtol=1e-12)
    assert_gradient(lambda v: bias_add(x, v), b, dy, db)
    assert bias_backward(dy.astype(np.float32)).dtype == np.float32


def test_leaky_relu_rounds_alpha_to_float32_like_the_kernels():
    x = np.random.default_rng(6).standard_normal(1000).astype(np.float32)
    dy = np.ones_like(x)
    for alpha in (0.3, np.float64(0.3)):          # a float64 scalar must not promote the product
        y = leaky_relu_forward(x, alpha)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, np.where(x > 0, x, np.float32(0.3) * x))
        np.testing.assert_array_equal(leaky_relu_backward(dy, y, alpha), np.where(x > 0, 1, np.float32(0.3)))
