"""The one dialect of the op tests (tests/reference, tests/kernels): inputs, comparison, the shared table of
sliding-window cases, and the backends an op test runs on (the ``backend`` fixture of conftest.py,
parametrized with :func:`on_backends`, after Chainer's ``inject_backend_tests``)."""
import numpy as np
import pytest

#: The backends an op test can run on, with the marks each needs.
BACKEND_PARAMS = {"cpu": (), "emulated": (), "gpu": (pytest.mark.gpu,)}


def on_backends(*names):
    """Run the test once per named backend (default: the kernels emulated, and on a GPU marked ``gpu``),
    passing it as the ``backend`` fixture."""
    names = names or ("emulated", "gpu")
    return pytest.mark.parametrize(
        "backend", [pytest.param(name, marks=BACKEND_PARAMS[name], id=name) for name in names], indirect=True)


def pick(backend, emulated, gpu):
    """The emulated (or cpu) or the GPU variant of a test size."""
    return gpu if backend.name == "cuda" else emulated


def random(shape, seed=0, low=-2.0, high=2.0, dtype=np.float32):
    """Uniform values in [low, high) of ``dtype`` on the host; ``seed`` an int or a Generator to draw from."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return rng.uniform(low, high, shape).astype(dtype)


def on_device(backend, *arrays):
    """Copies of the host arrays on ``backend`` (dtype kept): always copies, also on the host, so in-place
    updates of the kernels and of the reference never share a buffer."""
    moved = tuple(backend.xp.array(a, copy=True) for a in arrays)
    return moved if len(moved) > 1 else moved[0]


def to_host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


def assert_close(actual, expected, rtol=2e-6, atol=1e-6, exact=False):
    """Compare a result (any backend) with the expected host array: same shape and dtype, then equal
    (``exact``: bit-identical) or close."""
    actual, expected = to_host(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    if exact:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
