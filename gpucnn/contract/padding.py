"""Zero padding: the checks of ``zero_padding2d_forward`` and ``zero_padding2d_backward``, and the
normalization of Keras' ``padding`` forms."""
import numbers

from .shapes import NHWC, check_rank


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


def check_zero_padding2d_forward(x, padding):
    """``((top, bottom), (left, right))``."""
    check_rank("x", x, 4, NHWC)
    return normalize_zero_padding(padding)


def check_zero_padding2d_backward(dy, padding):
    """``((top, bottom), (left, right))``."""
    check_rank("dy", dy, 4, NHWC)
    form = normalize_zero_padding(padding)
    (top, bottom), (left, right) = form
    if dy.shape[1] <= top + bottom or dy.shape[2] <= left + right:
        raise ValueError(f"Argument `dy` must be larger than the padding {padding!r} in height and width, "
                         f"got shape {tuple(dy.shape)}.")
    return form
