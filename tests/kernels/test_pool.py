"""Max-pool kernels vs the NumPy reference: argmax and tie rule, overlapping windows, 'same' padding."""
import numpy as np
import pytest
from ops import WINDOW_CASES, assert_close, on_backends, on_device, pick, random

from gpucnn import cuda as launchers
from gpucnn import reference

# Emulated: the shared sliding-window cases; on a GPU, two realistic layers.
GPU_CASES = [
    ((32, 64, 64, 64), (2, 2), (2, 2), "valid", None),
    ((16, 57, 57, 48), (3, 3), (2, 2), "same", None),
]


def _ties(shape, seed):
    """Small integers: most windows hold several equal maxima, so the tie rule decides the argmax."""
    return np.random.default_rng(seed).integers(-2, 3, shape).astype(np.float32)


def _values(kind, shape, seed):
    if kind == "ties":
        return _ties(shape, seed)
    if kind == "negative":  # a 'same' window's padding would win if it counted as 0
        return random(shape, seed, low=-3, high=-0.5)
    return random(shape, seed)


@on_backends()
@pytest.mark.parametrize("values", ["random", "ties", "negative"])
def test_max_pool_matches_reference(backend, values):
    for case, (shape, pool_size, strides, padding, _) in enumerate(pick(backend, WINDOW_CASES, GPU_CASES)):
        x = _values(values, shape, seed=case)
        y, argmax = launchers.max_pool_forward(on_device(backend, x), pool_size, strides, padding)
        expected_y, expected_argmax = reference.max_pool_forward(x, pool_size, strides, padding)
        assert_close(y, expected_y, exact=True)
        assert_close(argmax, expected_argmax, exact=True)

        dy = random(expected_y.shape, seed=case + 10)
        dx = launchers.max_pool_backward(*on_device(backend, dy, expected_argmax), shape, pool_size, strides,
                                         padding)
        expected_dx = reference.max_pool_backward(dy, expected_argmax, shape, pool_size, strides, padding)
        assert_close(dx, expected_dx)


def test_max_pool_launchers_check_the_argmax_dtype(emulated):
    # The op's own argument checks are the contract's, tested on every backend in test_contract.py.
    x = random((1, 4, 4, 2))
    y, argmax = launchers.max_pool_forward(x, (2, 2), (2, 2), "valid")
    with pytest.raises(TypeError, match="`argmax`.*int32"):
        launchers.max_pool_backward(y, argmax.astype(np.int64), x.shape, (2, 2), (2, 2), "valid")


def test_floor_divide_by_reciprocal_is_exact():
    """The backward pass divides by the stride as a float64 multiplication plus a correction: exact for
    every position below 2**50, including those where the product rounds across an integer."""
    from gpucnn.kernels import pool
    rng = np.random.default_rng(0)
    # 316544638530316 / 49 is an integer, yet its product with float64(1 / 49) truncates one below.
    assert int(316544638530316 * (1.0 / 49)) == 316544638530316 // 49 - 1
    assert pool.floor_divide.py_func(316544638530316, 49, 1.0 / 49) == 316544638530316 // 49
    for divisor in (1, 2, 3, 5, 7, 49, 1000, 2**20 + 1):
        values = [0, divisor - 1, divisor, 2**31 - 1, 2**50 - 1, *rng.integers(0, 2**50, 200)]
        values += [k * divisor + d for k in rng.integers(1, 2**50 // divisor, 50) for d in (-1, 0, 1)]
        for value in values:
            assert pool.floor_divide.py_func(int(value), divisor, 1.0 / divisor) == int(value) // divisor
