"""Zero padding of NHWC images (NumPy reference): forward pads height and width, backward crops.

``padding`` is ``((top, bottom), (left, right))`` of non-negative ints (:func:`normalize_zero_padding`
turns Keras' short forms into that).
"""
import numbers

import numpy as np


def normalize_zero_padding(padding):
    """``((top, bottom), (left, right))`` from an int, ``(rows, cols)`` or ``((top, bottom), (left,
    right))`` (Keras ``ZeroPadding2D``), or a TypeError/ValueError naming the argument."""
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    form = None
    if is_int(padding):
        form = ((padding, padding), (padding, padding))
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(is_int(v) for v in padding):
            form = tuple((v, v) for v in padding)
        elif all(isinstance(p, (tuple, list)) and len(p) == 2 and all(is_int(v) for v in p)
                 for p in padding):
            form = tuple(tuple(p) for p in padding)
    if form is None:
        raise TypeError(f"Argument `padding` must be an int, a tuple of 2 ints (rows, cols) or a tuple of 2 "
                        f"tuples of 2 ints ((top, bottom), (left, right)), got {padding!r}.")
    if any(v < 0 for pair in form for v in pair):
        raise ValueError(f"Argument `padding` must not be negative, got {padding!r}. Fix: use values >= 0 "
                         f"(crop with slicing instead).")
    return tuple(tuple(int(v) for v in pair) for pair in form)


def zero_padding2d_forward(x, padding):
    """``x`` (N, H, W, C) with ``top``/``bottom`` rows and ``left``/``right`` columns of zeros added."""
    if x.ndim != 4:
        raise ValueError(f"Argument `x` must be NHWC of rank 4, got shape {x.shape}.")
    (top, bottom), (left, right) = normalize_zero_padding(padding)
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def zero_padding2d_backward(dy, padding):
    """dx: the part of ``dy`` (the padded shape) that lies over the input (the padding gets no gradient)."""
    (top, bottom), (left, right) = normalize_zero_padding(padding)
    if dy.ndim != 4 or dy.shape[1] <= top + bottom or dy.shape[2] <= left + right:
        raise ValueError(f"Argument `dy` must be NHWC and larger than the padding {padding!r} in height and "
                         f"width, got shape {dy.shape}.")
    return np.ascontiguousarray(dy[:, top:dy.shape[1] - bottom, left:dy.shape[2] - right])
