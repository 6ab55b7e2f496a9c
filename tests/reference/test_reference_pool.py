"""max-pool reference: vs skimage block_reduce, vs a plain loop oracle (ties, padding), vs finite differences."""
import math

import numpy as np
import pytest
from gradcheck import assert_gradient, projection
from ops import SMALL_WINDOW_CASES, window_cases
from skimage.measure import block_reduce

from gpucnn.reference import max_pool_backward, max_pool_forward


def _loop_max_pool(x, pool_size, strides, padding):
    """Plain-loop oracle: scan each window row-major over the positions inside the input only."""
    (ph, pw), (sh, sw) = pool_size, strides
    n, h, w, c = x.shape
    if padding == "same":
        out_h, out_w = math.ceil(h / sh), math.ceil(w / sw)
        top = max((out_h - 1) * sh + ph - h, 0) // 2
        left = max((out_w - 1) * sw + pw - w, 0) // 2
    else:
        out_h, out_w, top, left = (h - ph) // sh + 1, (w - pw) // sw + 1, 0, 0
    y = np.empty((n, out_h, out_w, c), x.dtype)
    argmax = np.empty((n, out_h, out_w, c), np.int32)
    for b in range(n):
        for o in range(out_h):
            for p in range(out_w):
                for ch in range(c):
                    best, best_index = None, None
                    for r in range(ph):
                        for q in range(pw):
                            i, j = o * sh - top + r, p * sw - left + q
                            if 0 <= i < h and 0 <= j < w and (best is None or x[b, i, j, ch] > best):
                                best, best_index = x[b, i, j, ch], r * pw + q
                    y[b, o, p, ch], argmax[b, o, p, ch] = best, best_index
    return y, argmax, (top, left)


def _loop_backward(dy, argmax, x_shape, pool_size, strides, origin):
    """Plain-loop oracle: add each dy at the input position its argmax names (origin = (top, left) pad)."""
    pw, (sh, sw), (top, left) = pool_size[1], strides, origin
    dx = np.zeros(x_shape, dy.dtype)
    n, out_h, out_w, c = dy.shape
    for b in range(n):
        for o in range(out_h):
            for p in range(out_w):
                for ch in range(c):
                    r, q = divmod(int(argmax[b, o, p, ch]), pw)
                    dx[b, o * sh - top + r, p * sw - left + q, ch] += dy[b, o, p, ch]
    return dx


@window_cases()
def test_forward_and_backward_match_loop_oracle_with_ties(x_shape, window, strides, padding, filters):
    # Few distinct, all-negative values: many ties, and padding zeros would win if padding could.
    x = np.random.default_rng(1).integers(-4, 0, size=x_shape).astype(np.float32)
    y, argmax = max_pool_forward(x, window, strides, padding)
    expected_y, expected_argmax, origin = _loop_max_pool(x, window, strides, padding)
    assert argmax.dtype == np.int32 and y.dtype == np.float32
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(argmax, expected_argmax)

    dy = projection(y.shape).astype(np.float32)
    dx = max_pool_backward(dy, argmax, x.shape, window, strides, padding)
    # Overlapping windows add up to kh·kw float32 values, in another order than the loop.
    np.testing.assert_allclose(dx, _loop_backward(dy, argmax, x.shape, window, strides, origin), rtol=1e-6,
                               atol=1e-6)


@window_cases(SMALL_WINDOW_CASES)
def test_backward_matches_finite_differences(x_shape, window, strides, padding, filters):
    # Distinct values 0.1 apart: no ties, and the finite-difference step cannot change a winner.
    rng = np.random.default_rng(2)
    x = rng.permutation(math.prod(x_shape)).reshape(x_shape) * 0.1 - 3.0
    y, argmax = max_pool_forward(x, window, strides, padding)
    dy = projection(y.shape)
    dx = max_pool_backward(dy, argmax, x.shape, window, strides, padding)
    assert_gradient(lambda v: max_pool_forward(v, window, strides, padding)[0], x, dy, dx)


@pytest.mark.parametrize("x_shape, pool", [((2, 6, 8, 3), (2, 2)), ((1, 9, 6, 1), (3, 2)), ((3, 4, 4, 2), (4, 4))])
def test_forward_matches_block_reduce(x_shape, pool):
    x = np.random.default_rng(3).standard_normal(x_shape).astype(np.float32)
    y, _ = max_pool_forward(x, pool, pool, "valid")
    np.testing.assert_array_equal(y, block_reduce(x, (1, *pool, 1), np.max))


def test_tie_goes_to_first_position_in_row_major_order():
    x = np.zeros((1, 3, 3, 1), np.float32)
    x[0, 1, 0, 0] = x[0, 0, 2, 0] = 5.0      # equal maxima at window indices 3·0+2 = 2 and 3·1+0 = 3
    y, argmax = max_pool_forward(x, (3, 3), (1, 1), "valid")
    assert y[0, 0, 0, 0] == 5.0 and argmax[0, 0, 0, 0] == 2
    dx = max_pool_backward(np.ones_like(y), argmax, x.shape, (3, 3), (1, 1), "valid")
    assert dx[0, 0, 2, 0] == 1.0 and dx.sum() == 1.0


def test_overlapping_windows_accumulate_gradient():
    x = np.zeros((1, 1, 5, 1), np.float32)
    x[0, 0, 2, 0] = 1.0                         # the center is the max of all three overlapping windows
    y, argmax = max_pool_forward(x, (1, 3), (1, 1), "valid")
    dx = max_pool_backward(np.full_like(y, 2.0), argmax, x.shape, (1, 3), (1, 1), "valid")
    np.testing.assert_array_equal(dx[0, 0, :, 0], [0, 0, 6, 0, 0])
