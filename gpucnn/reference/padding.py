"""Zero padding of NHWC images (NumPy reference): forward pads height and width, backward crops.

``padding`` is ``((top, bottom), (left, right))`` of non-negative ints
(``gpucnn.contract.padding.normalize_zero_padding`` turns Keras' short forms into that).
"""
import numpy as np

from gpucnn.contract.padding import check_zero_padding2d_backward, check_zero_padding2d_forward


def zero_padding2d_forward(x, padding):
    """``x`` (N, H, W, C) with ``top``/``bottom`` rows and ``left``/``right`` columns of zeros added."""
    (top, bottom), (left, right) = check_zero_padding2d_forward(x, padding)
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def zero_padding2d_backward(dy, padding):
    """dx: the part of ``dy`` (the padded shape) that lies over the input (the padding gets no gradient)."""
    (top, bottom), (left, right) = check_zero_padding2d_backward(dy, padding)
    return np.ascontiguousarray(dy[:, top:dy.shape[1] - bottom, left:dy.shape[2] - right])
