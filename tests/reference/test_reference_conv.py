"""conv2d reference: forward vs scipy.signal.correlate, both backward ops vs finite differences."""
import math

import numpy as np
import pytest
from gradcheck import assert_gradient, projection
from ops import window_cases
from scipy import signal

from gpucnn.reference import (
    conv2d_backward_data,
    conv2d_backward_filter,
    conv2d_forward,
    leaky_relu_forward,
    relu_forward,
    sigmoid_forward,
)


def _padded_input(x, kernel, strides, padding):
    """x padded explicitly with TensorFlow's 'same' rule, written out independently of shapes.py."""
    if padding == "valid":
        return x
    pads = []
    for size, k, s in zip(x.shape[1:3], kernel, strides):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))


def _scipy_conv(x, w, strides, padding):
    """Cross-correlation per (image, filter) with scipy, summed over channels, then subsampled."""
    xp = _padded_input(x, w.shape[:2], strides, padding)
    out = np.stack([
        np.stack([signal.correlate(xp[n], w[:, :, :, f], mode="valid")[:, :, 0] for f in range(w.shape[3])],
                 axis=-1)
        for n in range(x.shape[0])])
    return out[:, ::strides[0], ::strides[1]]


def _operands(x_shape, kernel, filters, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((*kernel, x_shape[3], filters)).astype(dtype)
    return x, w


@window_cases()
def test_forward_matches_scipy_correlate(x_shape, window, strides, padding, filters):
    x, w = _operands(x_shape, window, filters, np.float64)
    b = np.linspace(-1, 1, filters)
    y = conv2d_forward(x, w, b, strides, padding)
    expected_hw = [math.ceil(s / st) if padding == "same" else (s - k) // st + 1
                   for s, k, st in zip(x_shape[1:3], window, strides)]
    assert y.shape == (x_shape[0], *expected_hw, filters)
    np.testing.assert_allclose(y, _scipy_conv(x, w, strides, padding) + b, rtol=1e-12, atol=1e-12)


@window_cases()
def test_backward_data_matches_finite_differences(x_shape, window, strides, padding, filters):
    x, w = _operands(x_shape, window, filters, np.float64)
    dy = projection(conv2d_forward(x, w, None, strides, padding).shape)
    dx = conv2d_backward_data(dy, w, x.shape, strides, padding)
    assert dx.shape == x.shape
    assert_gradient(lambda v: conv2d_forward(v, w, None, strides, padding), x, dy, dx)


@window_cases()
def test_backward_filter_matches_finite_differences(x_shape, window, strides, padding, filters):
    x, w = _operands(x_shape, window, filters, np.float64)
    dy = projection(conv2d_forward(x, w, None, strides, padding).shape)
    dw = conv2d_backward_filter(x, dy, window, strides, padding)
    assert dw.shape == w.shape
    assert_gradient(lambda v: conv2d_forward(x, v, None, strides, padding), w, dy, dw)


@pytest.mark.parametrize("activation, separate", [
    ("relu", relu_forward), ("leaky_relu", lambda z: leaky_relu_forward(z, 0.3)), ("sigmoid", sigmoid_forward),
    ("linear", lambda z: z)])
def test_fused_activation_equals_separate_activation(activation, separate):
    x, w = _operands((2, 6, 6, 3), (3, 3), 5, np.float32)
    b = np.linspace(-1, 1, 5, dtype=np.float32)
    fused = conv2d_forward(x, w, b, (1, 1), "same", activation=activation, alpha=0.3)
    assert fused.dtype == np.float32
    np.testing.assert_allclose(fused, separate(conv2d_forward(x, w, b, (1, 1), "same")), rtol=1e-6, atol=1e-6)


def test_float32_stays_float32_and_inputs_are_not_modified():
    x, w = _operands((1, 5, 5, 2), (3, 3), 3, np.float32)
    x_copy, w_copy = x.copy(), w.copy()
    y = conv2d_forward(x, w, None, (1, 1), "same", activation="relu")
    dx = conv2d_backward_data(y, w, x.shape, (1, 1), "same")
    dw = conv2d_backward_filter(x, y, (3, 3), (1, 1), "same")
    assert y.dtype == dx.dtype == dw.dtype == np.float32
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(w, w_copy)


def test_empty_input_is_named_as_such_whatever_the_padding():
    x = np.zeros((1, 0, 5, 1), np.float32)
    w = np.zeros((3, 3, 1, 2), np.float32)
    for padding in ("valid", "same"):
        with pytest.raises(ValueError, match="input has size 0x5"):
            conv2d_forward(x, w, None, (1, 1), padding)
