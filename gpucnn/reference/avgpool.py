"""2-D average pooling (NumPy reference), NHWC, and its global form over the whole image.

Windows lie where max-pooling's do (``gpucnn.contract.shapes.window_layout``: they start at
``o·s - pad_top``).  Each output is the sum of the window's positions inside the input divided by how
many there are: 'same' padding adds no zeros to an average, as in Keras 3 and TensorFlow, which divide
by the valid cells only.  The backward pass gives each input the sum of ``dy / count`` over the windows
that contain it.
"""
import numpy as np

from gpucnn.contract.avgpool import (
    check_average_pool_backward,
    check_average_pool_forward,
    check_global_average_pool_backward,
    check_global_average_pool_forward,
)

from .conv import fold_windows, sliding_windows


def window_counts(geometry, height, width):
    """(out_h, out_w) float32: the number of input positions inside each window (at least 1)."""
    def along(out, stride, window, pad, length):
        starts = np.arange(out) * stride - pad
        return np.minimum(starts + window, length) - np.maximum(starts, 0)

    (ph, pw), (sh, sw) = geometry.window, geometry.strides
    rows = along(geometry.out_h, sh, ph, geometry.pad_top, height)
    cols = along(geometry.out_w, sw, pw, geometry.pad_left, width)
    return np.outer(rows, cols).astype(np.float32)


def average_pool_forward(x, pool_size, strides, padding):
    """y (N, oh, ow, C): the mean of each window over its positions inside ``x`` (N, H, W, C)."""
    geometry = check_average_pool_forward(x, pool_size, strides, padding)
    sums = sliding_windows(x, geometry, 0).sum(axis=(3, 4))
    return sums / window_counts(geometry, x.shape[1], x.shape[2])[None, :, :, None]


def average_pool_backward(dy, x_shape, pool_size, strides, padding):
    """dx (x_shape): each input gathers ``dy / count`` from every window that contains it."""
    x_shape, geometry = check_average_pool_backward(dy, x_shape, pool_size, strides, padding)
    share = dy / window_counts(geometry, x_shape[1], x_shape[2])[None, :, :, None]
    return fold_windows(lambda r, c: share, x_shape, geometry, dy.dtype)


def global_average_pool_forward(x):
    """y (N, C): the mean of ``x`` (N, H, W, C) over height and width."""
    check_global_average_pool_forward(x)
    return x.mean(axis=(1, 2))


def global_average_pool_backward(dy, x_shape):
    """dx (x_shape): every position of an image gets ``dy / (H·W)`` of its channel."""
    x_shape = check_global_average_pool_backward(dy, x_shape)
    n, h, w, c = x_shape
    share = dy / np.float32(h * w)
    return np.ascontiguousarray(np.broadcast_to(share[:, None, None, :], x_shape))

