"""2-D max-pooling with argmax (NumPy reference), NHWC, any strides (windows may overlap).

Windows start at ``o·s - pad_top``.  Positions outside the input are padded with -inf, so they never win
('same' ignores them, as TensorFlow does).  ``argmax`` is int32, shaped like ``y``: the index ``r·pw + c``
of the winner inside its window.  Tie rule: the first maximum in row-major window order wins (the
smallest index), so the gradient of a tie goes to one input only.  NaN inputs give unspecified results.
"""
import numpy as np

from gpucnn.contract.pool import check_max_pool_backward, check_max_pool_forward

from .conv import crop_padding, fold_windows, sliding_windows


def max_pool_forward(x, pool_size, strides, padding):
    """(y, argmax) of max-pooling ``x`` (N, H, W, C); see the module docstring for the tie rule."""
    geometry = check_max_pool_forward(x, pool_size, strides, padding)
    windows = sliding_windows(x, geometry, -np.inf)
    ph, pw = geometry.window
    y = windows[:, :, :, 0, 0].copy()
    # The winner's index is tracked in the narrowest integer type that holds it (uint8 for windows up to
    # 16x16), with preallocated buffers: these few passes are most of a pooling layer's time.
    index_type = np.uint8 if ph * pw <= 256 else np.int32
    argmax = np.zeros(y.shape, dtype=index_type)
    better = np.empty(y.shape, dtype=bool)
    step = np.empty(y.shape, dtype=index_type)
    # A strict '>' keeps the earlier offset on ties: offsets are visited in row-major order.
    for r in range(ph):
        for c in range(pw):
            if r == 0 and c == 0:
                continue
            candidate = windows[:, :, :, r, c]
            np.greater(candidate, y, out=better)
            np.maximum(y, candidate, out=y)
            # argmax = where(better, index, argmax) in modular arithmetic: masked copies are much slower.
            np.subtract(index_type(r * pw + c), argmax, out=step)
            step *= better
            argmax += step
    return y, argmax.astype(np.int32)


def max_pool_backward(dy, argmax, x_shape, pool_size, strides, padding):
    """dx (x_shape): each dy is added to the input its window's argmax points at (overlaps accumulate)."""
    x_shape, geometry = check_max_pool_backward(dy, argmax, x_shape, pool_size, strides, padding)
    (ph, pw), (sh, sw) = geometry.window, geometry.strides
    if (sh, sw) != (ph, pw):
        return fold_windows(lambda r, c: dy * (argmax == r * pw + c), x_shape, geometry, dy.dtype)
    # Windows that tile the input (Keras' default strides) never share an input: one broadcast product
    # writes every window's gradient in place, instead of one accumulating pass per window offset.
    dx = np.zeros(geometry.padded_shape(x_shape), dtype=dy.dtype)
    n, out_h, out_w, channels = dy.shape
    blocks = dx[:, :out_h * ph, :out_w * pw].reshape(n, out_h, ph, out_w, pw, channels)
    offsets = np.arange(ph * pw, dtype=argmax.dtype).reshape(1, 1, ph, 1, pw, 1)
    np.multiply(dy[:, :, None, :, None, :], argmax[:, :, None, :, None, :] == offsets, out=blocks)
    return crop_padding(dx, x_shape, geometry)
