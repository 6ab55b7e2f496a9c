"""Activations as layers and as the `activation=` of Dense/Conv2D: tanh, LeakyReLU's slope 0, on the cpu
backend (NumPy reference) and the emulated one (the kernels), against closed forms."""
import numpy as np
import pytest

from gpucnn.layers import Activation, Conv2D, Dense, LeakyReLU, ReLU


def _input(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 2


@pytest.mark.parametrize("backend_fixture", ["cpu", "emulated"])
def test_tanh_layer_forward_and_backward(backend_fixture, request):
    request.getfixturevalue(backend_fixture)
    x = _input((3, 5))
    layer = Activation("tanh")
    y = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(y, np.tanh(x.astype(np.float64)), rtol=1e-6, atol=1e-7)
    dy = _input((3, 5), seed=1)
    np.testing.assert_allclose(np.asarray(layer.backward(dy)), dy * (1 - np.tanh(x.astype(np.float64)) ** 2),
                               rtol=1e-5, atol=1e-6)
    assert layer.get_config()["activation"] == "tanh"


@pytest.mark.parametrize("backend_fixture", ["cpu", "emulated"])
def test_tanh_fused_into_dense_and_conv2d(backend_fixture, request):
    request.getfixturevalue(backend_fixture)
    x = _input((2, 4))
    dense = Dense(3, activation="tanh")
    y = np.asarray(dense(x))
    kernel, bias = (np.asarray(w.value, dtype=np.float64) for w in dense.weights)
    np.testing.assert_allclose(y, np.tanh(x @ kernel + bias), rtol=1e-5, atol=1e-6)
    images = _input((1, 3, 3, 2))
    conv = Conv2D(2, (3, 3), activation="tanh", bias_initializer="ones")
    y = np.asarray(conv(images))
    kernel, bias = (np.asarray(w.value, dtype=np.float64) for w in conv.weights)
    expected = np.tanh(np.einsum("hwc,hwcf->f", images[0], kernel) + bias).reshape(1, 1, 1, 2)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend_fixture", ["cpu", "emulated"])
def test_leaky_relu_with_slope_0_acts_as_relu(backend_fixture, request):
    request.getfixturevalue(backend_fixture)
    x = np.array([[-2.0, -0.0, 0.0, 0.5, 3.0]], np.float32)
    layer = LeakyReLU(negative_slope=0.0)
    np.testing.assert_array_equal(np.asarray(layer(x, training=True)), np.maximum(x, 0))
    dy = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(layer.backward(dy)), dy * (x > 0))
    assert layer.get_config()["negative_slope"] == 0.0


@pytest.mark.parametrize("slope", [-0.1, float("nan"), float("inf"), "0.2", True])
@pytest.mark.parametrize("layer", [LeakyReLU, ReLU])
def test_leaky_relu_refuses_negative_or_non_finite_slopes(layer, slope):
    with pytest.raises(ValueError, match=r"`negative_slope` \(the leaky slope\) must be a finite float >= 0"):
        layer(negative_slope=slope)
