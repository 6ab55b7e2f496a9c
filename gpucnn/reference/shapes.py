"""Shape arithmetic shared by every backend and layer (Keras / TensorFlow conventions)."""
import math
import numbers


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def normalize_tuple(value, n, name):
    """``value`` as a tuple of ``n`` positive ints (an int is repeated), or an error naming ``name``."""
    items = (value,) * n if _is_int(value) else value
    if not isinstance(items, (tuple, list)) or len(items) != n or not all(_is_int(v) for v in items):
        raise TypeError(f"Argument `{name}` must be an int or a tuple of {n} ints, got {value!r}.")
    if any(v <= 0 for v in items):
        raise ValueError(f"Argument `{name}` must contain only positive integers, got {value!r}. "
                         f"Fix: use values >= 1.")
    return tuple(int(v) for v in items)


def normalize_padding(padding):
    """``'valid'`` or ``'same'`` (case-insensitive), or a ValueError."""
    if isinstance(padding, str) and padding.lower() in ("valid", "same"):
        return padding.lower()
    raise ValueError(f"Argument `padding` must be 'valid' or 'same', got {padding!r}.")


def conv_output_length(length, window, stride, padding):
    """Output length along one axis: valid = floor((in - k) / s) + 1 (0 if negative), same = ceil(in / s)."""
    if padding == "same":
        return -(-length // stride)
    return max((length - window) // stride + 1, 0)


def same_padding(length, window, stride):
    """(before, after) padding of TensorFlow's 'same': total = max((out-1)*s + k - in, 0), less before."""
    out = -(-length // stride)
    total = max((out - 1) * stride + window - length, 0)
    return total // 2, total - total // 2


def window_geometry(height, width, window, strides, padding):
    """(out_h, out_w, pad_top, pad_left) of a sliding window over an H×W map.

    Bottom/right padding is implied: windows that run past the input read zeros (conv) or are ignored
    (max-pool).
    """
    (kh, kw), (sh, sw) = window, strides
    out_h = conv_output_length(height, kh, sh, padding)
    out_w = conv_output_length(width, kw, sw, padding)
    if padding == "same":
        pad_top, pad_left = same_padding(height, kh, sh)[0], same_padding(width, kw, sw)[0]
    else:
        pad_top = pad_left = 0
    return out_h, out_w, pad_top, pad_left


def prod(shape):
    return math.prod(int(s) for s in shape)
