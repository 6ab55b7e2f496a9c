"""Shape and padding arithmetic and the shape checks shared by every op family and layer (Keras /
TensorFlow conventions)."""
import math
import numbers
from typing import NamedTuple

#: How the checks describe an activation tensor.
NHWC = "NHWC: batch, height, width, channels"


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


def check_shape(name, array, shape, reason):
    """ValueError unless ``array`` has ``shape``; ``reason`` says what the shape must match."""
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"Argument `{name}` must have shape {tuple(shape)} {reason}, "
                         f"got {tuple(array.shape)}.")


def check_rank(name, array, ndim, layout, fix=""):
    """ValueError unless ``array`` has ``ndim`` axes, laid out as ``layout`` says."""
    if array.ndim != ndim:
        raise ValueError(f"Argument `{name}` must have rank {ndim} ({layout}), got shape {tuple(array.shape)}."
                         + (f" Fix: {fix}" if fix else ""))


def check_last_axis(name, x, why):
    """ValueError if ``x`` is 0-d: the op works along the last axis (``why`` says how)."""
    if x.ndim == 0:
        raise ValueError(f"Argument `{name}` must have at least one axis ({why}), got a 0-d array.")


def check_not_empty(name, array):
    """ValueError if ``array`` has no elements (a kernel cannot launch an empty grid)."""
    if 0 in array.shape:
        raise ValueError(f"Argument `{name}` must not be empty, got shape {tuple(array.shape)}.")


def check_nhwc_shape(name, shape):
    """``shape`` as a tuple of 4 positive ints (N, H, W, C), or a ValueError naming ``name``."""
    shape = tuple(shape)
    if len(shape) != 4 or not all(_is_int(s) and s > 0 for s in shape):
        raise ValueError(f"Argument `{name}` must be 4 positive ints (N, H, W, C), got {shape!r}.")
    return tuple(int(s) for s in shape)


def window_misfit(height, width, window, window_name):
    """Why a ``window`` larger than the input leaves no output with padding='valid', and the fix."""
    return (f"The {window_name} {window} does not fit in the {height}x{width} input with padding='valid'. "
            f"Fix: use padding='same' or a smaller {window_name}.")


class WindowGeometry(NamedTuple):
    """Where the windows of a sliding-window op lie on an (N, H, W, C) input, padding included."""
    window: tuple
    strides: tuple
    out_h: int
    out_w: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int

    def padded_shape(self, x_shape):
        n, h, w, c = x_shape
        return n, self.pad_top + h + self.pad_bottom, self.pad_left + w + self.pad_right, c


def window_layout(x_shape, window, strides, padding, window_name="kernel_size"):
    """The :class:`WindowGeometry` of ``window``-sized windows moved by ``strides`` over the NHWC
    ``x_shape``, or a ValueError when the window cannot slide over it.

    Bottom/right padding is only what the last window needs: with 'valid' the rows it does not reach
    are simply never read.
    """
    window = normalize_tuple(window, 2, window_name)
    strides = normalize_tuple(strides, 2, "strides")
    padding = normalize_padding(padding)
    _, h, w, _ = x_shape
    out_h, out_w, top, left = window_geometry(h, w, window, strides, padding)
    if h == 0 or w == 0:
        raise ValueError(f"The input has size {h}x{w}: there is nothing to slide the {window_name} "
                         f"over. Fix: pass images of at least 1x1 pixels.")
    if out_h == 0 or out_w == 0:
        raise ValueError(window_misfit(h, w, window, window_name))
    bottom = max((out_h - 1) * strides[0] + window[0] - top - h, 0)
    right = max((out_w - 1) * strides[1] + window[1] - left - w, 0)
    return WindowGeometry(window, strides, out_h, out_w, top, bottom, left, right)
