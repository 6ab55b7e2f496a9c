"""average-pool reference: vs skimage block_reduce, vs a plain loop oracle that averages the cells
inside the input only ('same' padding, Keras' count), vs finite differences; global average pooling."""
import numpy as np
from gradcheck import assert_gradient, projection
from ops import window_cases
from skimage.measure import block_reduce

from gpucnn.reference import (
    average_pool_backward,
    average_pool_forward,
    global_average_pool_backward,
    global_average_pool_forward,
)


def _loop_average_pool(x, pool_size, strides, padding):
    """Plain-loop oracle in float64: the mean of each window's cells inside the input, padding by
    TensorFlow's rule written out (out = ceil(in / s), total = (out-1)·s + k - in, less on top)."""
    (ph, pw), (sh, sw) = pool_size, strides
    n, h, w, c = x.shape
    if padding == "same":
        out_h, out_w = -(-h // sh), -(-w // sw)
        top, left = max((out_h - 1) * sh + ph - h, 0) // 2, max((out_w - 1) * sw + pw - w, 0) // 2
    else:
        out_h, out_w, top, left = (h - ph) // sh + 1, (w - pw) // sw + 1, 0, 0
    y = np.empty((n, out_h, out_w, c))
    for o in range(out_h):
        for p in range(out_w):
            cells = [x[:, i, j] for i in range(o * sh - top, o * sh - top + ph)
                     for j in range(p * sw - left, p * sw - left + pw) if 0 <= i < h and 0 <= j < w]
            y[:, o, p] = np.mean(cells, axis=0)
    return y


@window_cases()
def test_forward_matches_loop_oracle(x_shape, window, strides, padding, filters):
    x = np.random.default_rng(1).uniform(-2, 2, x_shape).astype(np.float32)
    y = average_pool_forward(x, window, strides, padding)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, _loop_average_pool(x.astype(np.float64), window, strides, padding),
                               rtol=1e-6, atol=1e-6)


def test_tiling_windows_match_skimage_block_reduce():
    x = np.random.default_rng(2).uniform(-2, 2, (2, 6, 9, 3)).astype(np.float32)
    expected = block_reduce(x, (1, 2, 3, 1), np.mean)
    np.testing.assert_allclose(average_pool_forward(x, (2, 3), (2, 3), "valid"), expected, rtol=1e-6)


def test_same_padding_does_not_count_the_padded_cells():
    # A constant image stays constant: padding zeros in the divisor would shrink the border windows.
    x = np.full((1, 5, 5, 2), 3.0, np.float32)
    np.testing.assert_array_equal(average_pool_forward(x, (3, 3), (2, 2), "same"), 3.0)


@window_cases()
def test_backward_matches_finite_differences(x_shape, window, strides, padding, filters):
    x = np.random.default_rng(3).standard_normal(x_shape)
    y = average_pool_forward(x, window, strides, padding)
    dy = projection(y.shape)
    dx = average_pool_backward(dy, x_shape, window, strides, padding)
    assert dx.shape == x_shape
    assert_gradient(lambda v: average_pool_forward(v, window, strides, padding), x, dy, dx)


def test_global_average_pool_forward_and_backward():
    x = np.random.default_rng(4).standard_normal((2, 3, 5, 4))
    y = global_average_pool_forward(x.astype(np.float32))
    assert y.dtype == np.float32 and y.shape == (2, 4)
    np.testing.assert_allclose(y, block_reduce(x, (1, 3, 5, 1), np.mean).reshape(2, 4), rtol=1e-6)
    dy = projection((2, 4))
    dx = global_average_pool_backward(dy, x.shape)
    assert_gradient(global_average_pool_forward, x, dy, dx)
