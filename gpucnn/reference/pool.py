"""2-D max-pooling with argmax (NumPy reference), NHWC, any strides (windows may overlap).

Windows start at ``o·s - pad_top``.  Positions outside the input are padded with -inf, so they never win
('same' ignores them, as TensorFlow does).  ``argmax`` is int32, shaped like ``y``: the index ``r·pw + c``
of the winner inside its window.  Tie rule: the first maximum in row-major window order wins (the
smallest index), so the gradient of a tie goes to one input only.  NaN inputs give unspecified results.
"""
import numpy as np

from .conv import fold_windows, sliding_windows, window_layout


def max_pool_forward(x, pool_size, strides, padding):
    """(y, argmax) of max-pooling ``x`` (N, H, W, C); see the module docstring for the tie rule."""
    geometry = window_layout(x.shape, pool_size, strides, padding, window_name="pool_size")
    windows = sliding_windows(x, geometry, -np.inf)
    ph, pw = geometry.window
    y = windows[:, :, :, 0, 0].copy()
    argmax = np.zeros(y.shape, dtype=np.int32)
    # A strict '>' keeps the earlier offset on ties: offsets are visited in row-major order.
    for r in range(ph):
        for c in range(pw):
            if r == 0 and c == 0:
                continue
            candidate = windows[:, :, :, r, c]
            better = candidate > y
            np.maximum(y, candidate, out=y)
            # argmax = where(better, index, argmax), in arithmetic (masked copies are much slower).
            argmax += better * (r * pw + c - argmax)
    return y, argmax


def max_pool_backward(dy, argmax, x_shape, pool_size, strides, padding):
    """dx (x_shape): each dy is added to the input its window's argmax points at (overlaps accumulate)."""
    x_shape = tuple(int(s) for s in x_shape)
    geometry = window_layout(x_shape, pool_size, strides, padding, window_name="pool_size")
    expected = (x_shape[0], geometry.out_h, geometry.out_w, x_shape[3])
    if dy.shape != expected or argmax.shape != expected:
        raise ValueError(f"Arguments `dy` and `argmax` must have the pooled shape {expected}, "
                         f"got {dy.shape} and {argmax.shape}.")
    pw = geometry.window[1]
    return fold_windows(lambda r, c: dy * (argmax == r * pw + c), x_shape, geometry, dy.dtype)
