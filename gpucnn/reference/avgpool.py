"""2-D average pooling (NumPy reference), NHWC, and its global form over the whole image.

Windows lie where max-pooling's do (``conv.window_layout``: they start at ``o·s - pad_top``).  Each
output is the sum of the window's positions inside the input divided by how many there are: 'same'
padding adds no zeros to an average, as in Keras 3 and TensorFlow, which divide by the valid cells
only.  The backward pass gives each input the sum of ``dy / count`` over the windows that contain it.
"""
import numpy as np

from .conv import fold_windows, sliding_windows, window_layout


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
    geometry = window_layout(x.shape, pool_size, strides, padding, window_name="pool_size")
    sums = sliding_windows(x, geometry, 0).sum(axis=(3, 4))
    return sums / window_counts(geometry, x.shape[1], x.shape[2])[None, :, :, None]


def average_pool_backward(dy, x_shape, pool_size, strides, padding):
    """dx (x_shape): each input gathers ``dy / count`` from every window that contains it."""
    x_shape = tuple(int(s) for s in x_shape)
    geometry = window_layout(x_shape, pool_size, strides, padding, window_name="pool_size")
    expected = (x_shape[0], geometry.out_h, geometry.out_w, x_shape[3])
    if dy.shape != expected:
        raise ValueError(f"Argument `dy` must have the pooled shape {expected} of x_shape {x_shape}, "
                         f"got {dy.shape}.")
    share = dy / window_counts(geometry, x_shape[1], x_shape[2])[None, :, :, None]
    return fold_windows(lambda r, c: share, x_shape, geometry, dy.dtype)


def global_average_pool_forward(x):
    """y (N, C): the mean of ``x`` (N, H, W, C) over height and width."""
    _check_nhwc("x", x.shape)
    return x.mean(axis=(1, 2))


def global_average_pool_backward(dy, x_shape):
    """dx (x_shape): every position of an image gets ``dy / (H·W)`` of its channel."""
    x_shape = tuple(int(s) for s in x_shape)
    _check_nhwc("x_shape", x_shape)
    n, h, w, c = x_shape
    if dy.shape != (n, c):
        raise ValueError(f"Argument `dy` must have shape {(n, c)} (batch, channels of x_shape {x_shape}), "
                         f"got {dy.shape}.")
    share = dy / np.float32(h * w)
    return np.ascontiguousarray(np.broadcast_to(share[:, None, None, :], x_shape))


def _check_nhwc(name, shape):
    if len(shape) != 4 or 0 in shape[1:3]:
        raise ValueError(f"Argument `{name}` must be an NHWC shape (N, H, W, C) with H, W >= 1, "
                         f"got {tuple(shape)}.")
