"""Hypothesis draws layer configurations (kernel size, strides, padding, channels, pool sizes, batch,
activation) and small inputs, and checks each backend's layer path, forward and backward, against an
oracle written here in plain float64 NumPy (explicit loops over kernel offsets, TensorFlow padding
arithmetic re-derived).  cpu runs the reference ops; emulated runs the real kernels on the CPU (few
examples, tiny shapes: it is slow); cuda runs on a GPU (gpu-marked)."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpucnn import backend
from gpucnn.layers import Conv2D, Dense, MaxPooling2D

LEAKY_ALPHA = 0.2  # Keras 3's activation='leaky_relu' slope

# Examples per backend: the emulated kernels take ~0.1-1 s per layer call.
EXAMPLES = {"cpu": 40, "emulated": 4, "cuda": 60}
BACKENDS = [pytest.param("cpu"), pytest.param("emulated"), pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(params=BACKENDS)
def any_backend(request):
    """The backend fixture of conftest.py for this backend (each skips where it cannot run)."""
    return request.getfixturevalue({"cuda": "gpu"}.get(request.param, request.param))


def run_examples(test, name):
    """Run the hypothesis ``test`` with this backend's example budget, deterministically (CI)."""
    settings(max_examples=EXAMPLES[name], deadline=None, derandomize=True, database=None,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])(test)()


# -- the float64 oracle --------------------------------------------------------------------------------
def geometry(length, window, stride, padding):
    """(output length, padding before, padded length) by TensorFlow's rule."""
    if padding == "same":
        out = math.ceil(length / stride)
        before = max((out - 1) * stride + window - length, 0) // 2
    else:
        out, before = (length - window) // stride + 1, 0
    return out, before, max(before + length, (out - 1) * stride + window)


def windows(padded, oh, ow, kh, kw, sh, sw):
    """Yield (i, j, view) with view[n, o, p, c] = padded[n, o*sh + i, p*sw + j, c]."""
    for i in range(kh):
        for j in range(kw):
            yield i, j, padded[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]


def activate(z, name):
    if name == "relu":
        return np.maximum(z, 0), (z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_ALPHA * z), np.where(z > 0, 1.0, LEAKY_ALPHA)
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-z))
        return s, s * (1 - s)
    if name == "tanh":
        t = np.tanh(z)
        return t, 1 - t * t
    return z, np.ones_like(z)


def conv_oracle(x, w, b, dy, strides, padding, activation):
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    oh, top, ph = geometry(h, kh, strides[0], padding)
    ow, left, pw = geometry(wd, kw, strides[1], padding)
    padded = np.zeros((n, ph, pw, c))
    padded[:, top:top + h, left:left + wd] = x
    z = np.zeros((n, oh, ow, f)) + b
    for i, j, view in windows(padded, oh, ow, kh, kw, *strides):
        z += view @ w[i, j]
    y, slope = activate(z, activation)
    dz = dy * slope
    dw = np.zeros_like(w)
    dpadded = np.zeros_like(padded)
    for i, j, view in windows(padded, oh, ow, kh, kw, *strides):
        dw[i, j] = np.einsum("nopc,nopf->cf", view, dz)
        rows = slice(i, i + (oh - 1) * strides[0] + 1, strides[0])
        cols = slice(j, j + (ow - 1) * strides[1] + 1, strides[1])
        dpadded[:, rows, cols] += dz @ w[i, j].T
    return y, dpadded[:, top:top + h, left:left + wd], dw, dz.sum(axis=(0, 1, 2))


def pool_oracle(x, dy, pool, strides, padding):
    n, h, wd, c = x.shape
    oh, top, ph = geometry(h, pool[0], strides[0], padding)
    ow, left, pw = geometry(wd, pool[1], strides[1], padding)
    padded = np.full((n, ph, pw, c), -np.inf)  # padding never wins
    padded[:, top:top + h, left:left + wd] = x
    y = np.empty((n, oh, ow, c))
    dpadded = np.zeros_like(padded)
    rows, cols = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for o in range(oh):
        for p in range(ow):
            r, s = o * strides[0], p * strides[1]
            window = padded[:, r:r + pool[0], s:s + pool[1]].reshape(n, -1, c)
            first = window.argmax(axis=1)  # first maximum in row-major order wins ties
            y[:, o, p] = window.max(axis=1)
            dpadded[rows, r + first // pool[1], s + first % pool[1], cols] += dy[:, o, p]
    return y, dpadded[:, top:top + h, left:left + wd]


# -- configurations ------------------------------------------------------------------------------------
def largest_side(name):
    """Tiny images on emulated (every thread is simulated), a bit larger elsewhere."""
    return 5 if name == "emulated" else 9


def draw_window_and_image(draw, name, largest_window):
    """A window (kh, kw), a padding and an image height and width it can slide over."""
    high = largest_side(name)
    kh, kw = draw(st.integers(1, largest_window)), draw(st.integers(1, largest_window))
    padding = draw(st.sampled_from(["valid", "same"]))
    # valid padding needs the input at least as large as the window (smaller is a documented error)
    h = draw(st.integers(kh if padding == "valid" else 1, max(high, kh)))
    w = draw(st.integers(kw if padding == "valid" else 1, max(high, kw)))
    return (kh, kw), padding, h, w


@st.composite
def conv_configs(draw, name):
    kernel, padding, h, w = draw_window_and_image(draw, name, largest_window=4)
    return dict(batch=draw(st.integers(1, 3)), h=h, w=w, channels=draw(st.integers(1, 4 if name == "emulated" else 6)),
                filters=draw(st.integers(1, 5 if name == "emulated" else 9)), kernel=kernel,
                strides=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), padding=padding,
                activation=draw(st.sampled_from(["linear", "relu", "leaky_relu", "sigmoid", "tanh"])),
                seed=draw(st.integers(0, 2**16)))


@st.composite
def pool_configs(draw, name):
    pool, padding, h, w = draw_window_and_image(draw, name, largest_window=3)
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    return dict(batch=draw(st.integers(1, 3)), h=h, w=w, channels=draw(st.integers(1, 5)), pool=pool,
                strides=strides, padding=padding, seed=draw(st.integers(0, 2**16)))


def to_numpy(array):
    return backend.current().to_numpy(array).astype(np.float64)


def assert_close(got, want, what):
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5, err_msg=what)


# -- tests ---------------------------------------------------------------------------------------------
def test_conv2d_layer_matches_the_oracle(any_backend):

    @given(conv_configs(any_backend.name))
    def check(config):
        generator = np.random.default_rng(config["seed"])
        layer = Conv2D(config["filters"], config["kernel"], strides=config["strides"],
                       padding=config["padding"], activation=config["activation"],
                       input_shape=(config["h"], config["w"], config["channels"]))
        layer.build((config["h"], config["w"], config["channels"]))
        kernel = generator.standard_normal(layer.kernel.shape).astype(np.float32)
        bias = generator.standard_normal(layer.bias.shape).astype(np.float32)
        layer.set_weights([kernel, bias])
        x = generator.standard_normal((config["batch"], config["h"], config["w"], config["channels"]),
                                      ).astype(np.float32)
        y = layer(x, training=True)
        dy = generator.standard_normal(y.shape).astype(np.float32)
        dx = layer.backward(backend.current().asarray(dy))
        want = conv_oracle(x.astype(np.float64), kernel.astype(np.float64), bias.astype(np.float64),
                           dy.astype(np.float64), config["strides"], config["padding"], config["activation"])
        for got, expected, what in zip((y, dx, layer.kernel.grad, layer.bias.grad), want,
                                       ("y", "dx", "dkernel", "dbias")):
            assert_close(to_numpy(got), expected, f"{what} for {config}")

    run_examples(check, any_backend.name)


def test_max_pooling_layer_matches_the_oracle(any_backend):

    @given(pool_configs(any_backend.name))
    def check(config):
        generator = np.random.default_rng(config["seed"])
        shape = (config["batch"], config["h"], config["w"], config["channels"])
        # Distinct values (no ties), so the oracle's winner is unambiguous.
        x = (generator.permutation(math.prod(shape)).reshape(shape) / 7.0).astype(np.float32)
        layer = MaxPooling2D(config["pool"], strides=config["strides"], padding=config["padding"])
        y = layer(x, training=True)
        dy = generator.standard_normal(y.shape).astype(np.float32)
        dx = layer.backward(backend.current().asarray(dy))
        want_y, want_dx = pool_oracle(x.astype(np.float64), dy.astype(np.float64), layer.pool_size,
                                      layer.strides, config["padding"])
        assert_close(to_numpy(y), want_y, f"y for {config}")
        assert_close(to_numpy(dx), want_dx, f"dx for {config}")

    run_examples(check, any_backend.name)


def test_dense_layer_matches_the_oracle(any_backend):

    @given(st.integers(1, 4), st.integers(1, 40), st.integers(1, 20),
           st.sampled_from(["linear", "relu", "leaky_relu", "sigmoid", "tanh"]), st.integers(0, 2**16))
    def check(batch, features, units, activation, seed):
        generator = np.random.default_rng(seed)
        layer = Dense(units, activation=activation)
        layer.build((features,))
        kernel = generator.standard_normal((features, units)).astype(np.float32)
        bias = generator.standard_normal(units).astype(np.float32)
        layer.set_weights([kernel, bias])
        x = generator.standard_normal((batch, features)).astype(np.float32)
        y = layer(x, training=True)
        dy = generator.standard_normal(y.shape).astype(np.float32)
        dx = layer.backward(backend.current().asarray(dy))
        want_y, slope = activate(x.astype(np.float64) @ kernel + bias, activation)
        dz = dy * slope
        assert_close(to_numpy(y), want_y, "y")
        assert_close(to_numpy(dx), dz @ kernel.T.astype(np.float64), "dx")
        assert_close(to_numpy(layer.kernel.grad), x.T.astype(np.float64) @ dz, "dkernel")
        assert_close(to_numpy(layer.bias.grad), dz.sum(axis=0), "dbias")

    run_examples(check, any_backend.name)
