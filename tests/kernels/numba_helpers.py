"""Shared pieces of the Numba kernel tests: one test body runs emulated (tiny shapes, shrunken launch
configuration) and on a GPU (CuPy arrays, realistic shapes), always against the NumPy reference."""
import numpy as np
import pytest

from gpucnn.cuda import _numba_launch

#: Parametrize a test's ``device`` argument with this: "emulated" in CI, "gpu" where a GPU is present.
DEVICES = ["emulated", pytest.param("gpu", marks=pytest.mark.gpu)]


@pytest.fixture
def device(request, monkeypatch):
    """The backend named by the test's ``device`` parameter.

    Emulated, the launch configuration shrinks to 32-thread blocks, a grid of at most two blocks and
    one row per column-sum thread, so tiny arrays still cross block edges, wrap around the grid-stride
    loop and take the multi-part reduction path (at ~100 µs per simulated thread).
    """
    if request.param == "emulated":
        monkeypatch.setattr(_numba_launch, "THREADS", 32)
        monkeypatch.setattr(_numba_launch, "MAX_BLOCKS", 2)
        monkeypatch.setattr(_numba_launch, "ROWS_PER_THREAD", 1)
        monkeypatch.setattr(_numba_launch, "CHANNEL_TILE", 8)
        monkeypatch.setattr(_numba_launch, "TARGET_BLOCKS", 6)
    return request.getfixturevalue(request.param)


def with_devices(test):
    """Run ``test(device, ...)`` on the emulated backend and, marked ``gpu``, on a real GPU."""
    return pytest.mark.parametrize("device", DEVICES, indirect=True)(test)


def pick(device, emulated, gpu):
    """The emulated or the GPU variant of a test size."""
    return emulated if device.name == "emulated" else gpu


def random(shape, seed=0, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def on_device(device, *arrays):
    """Copies of the host arrays on ``device`` (dtype kept): always copies, also emulated, so in-place
    updates of the kernels and of the reference never share a buffer."""
    moved = tuple(device.xp.array(a, copy=True) for a in arrays)
    return moved if len(moved) > 1 else moved[0]


def assert_close(device, actual, expected, rtol=2e-6, atol=1e-6, exact=False):
    """Compare a device result with the reference (``exact``: bit-identical)."""
    actual = device.to_numpy(actual)
    assert actual.shape == np.shape(expected), (actual.shape, np.shape(expected))
    assert actual.dtype == np.asarray(expected).dtype, (actual.dtype, np.asarray(expected).dtype)
    if exact:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
