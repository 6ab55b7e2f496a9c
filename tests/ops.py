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


# The sliding-window cases of the conv and pool tests: (x shape NHWC, window (kh, kw), strides, padding,
# filters (conv only)).  Together they cover batch 1 and 2, 1 to 4 channels, stride 2, 'same' on odd sizes,
# odd total padding (the extra row/column at the bottom/right), windows that overlap, tile the input or skip
# rows, non-square windows, 1x1, input-sized and larger windows, window indices past 255, more than 32 filters.
WINDOW_CASES = [
    ((2, 7, 6, 3), (3, 3), (1, 1), "valid", 4),
    ((1, 7, 5, 1), (3, 2), (2, 2), "same", 2),
    ((1, 7, 5, 1), (3, 3), (2, 2), "same", 1),      # overlapping windows, 'same' on odd sizes
    ((2, 5, 9, 3), (5, 3), (2, 1), "same", 1),
    ((1, 6, 5, 3), (3, 3), (2, 2), "valid", 2),
    ((2, 9, 8, 3), (3, 3), (2, 2), "same", 7),
    ((2, 8, 7, 1), (2, 2), (3, 3), "same", 3),      # strides larger than the window: rows in no window
    ((1, 8, 7, 2), (2, 2), (3, 3), "valid", 2),
    ((1, 4, 4, 2), (4, 4), (1, 1), "valid", 2),     # a window as large as the input
    ((1, 3, 3, 1), (4, 4), (1, 1), "same", 2),      # windows larger than the input ('same')
    ((1, 5, 5, 3), (1, 1), (2, 2), "same", 2),
    ((2, 6, 7, 3), (4, 3), (1, 1), "same", 2),      # odd total padding: one more row at the bottom
    ((1, 8, 8, 2), (3, 3), (2, 2), "same", 2),      # pad 0 on top, 1 at the bottom
    ((2, 6, 6, 3), (2, 2), (2, 2), "valid", 2),     # tiling windows (Keras' pooling default)
    ((1, 6, 6, 2), (2, 2), (2, 2), "same", 2),
    ((2, 5, 8, 2), (3, 2), (1, 1), "same", 2),
    ((1, 7, 7, 3), (3, 3), (2, 1), "valid", 2),
    ((1, 4, 6, 2), (1, 3), (1, 3), "valid", 2),
    ((1, 5, 4, 2), (2, 2), (1, 1), "same", 2),      # odd total padding on both axes
    ((2, 5, 5, 2), (2, 2), (1, 1), "same", 2),      # 100 pooled outputs wrap the emulated 2 × 32-thread grid
    ((4, 3, 3, 2), (2, 2), (1, 1), "same", 2),      # 72 pooled outputs, 18 a sample: the grid stride spans samples
    ((2, 6, 7, 4), (2, 3), (1, 2), "same", 33),     # even kernel (pad only on one side), F > 32
    ((1, 11, 10, 2), (5, 4), (2, 3), "valid", 3),   # strides that skip input rows and columns
    ((1, 18, 17, 2), (17, 17), (1, 1), "valid", 2),   # window indices past 255, overlapping
    ((1, 17, 35, 1), (17, 17), (17, 17), "same", 1),  # the same, tiling windows with padding
]
#: The cases whose windows hold at most 256 positions: a finite-difference check of the 17x17 windows costs
#: seconds and adds nothing that the exact checks of those cases leave open.
SMALL_WINDOW_CASES = [case for case in WINDOW_CASES if case[1][0] * case[1][1] <= 256]


def _window_id(case):
    x, w, s, p, f = case
    return f"{'x'.join(map(str, x))}-w{w[0]}{w[1]}-s{s[0]}{s[1]}-{p}-f{f}"


def window_cases(cases=WINDOW_CASES):
    """Parametrize ``test(x_shape, window, strides, padding, filters, ...)`` with ``cases``."""
    return pytest.mark.parametrize("x_shape, window, strides, padding, filters", cases,
                                   ids=[_window_id(case) for case in cases])


def window_case(x_shape, window, strides, padding, filters):
    """One of :data:`WINDOW_CASES`, by value (a test that needs one case says which)."""
    case = (x_shape, window, strides, padding, filters)
    assert case in WINDOW_CASES, case
    return case
