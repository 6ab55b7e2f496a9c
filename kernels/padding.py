"""Zero padding of NHWC images as one Numba kernel (``gpucnn.cuda.padding``): a shifted copy.

Padding and its backward pass (cropping) are the same gather with opposite shifts: each target element
reads the source at (h + shift_h, w + shift_w) and is 0 where that falls outside the source.  One thread
per target element, channel fastest (coalesced reads and writes).
"""
from numba import cuda, float32

from ._numba import kernel
from .pool import TENSOR, nhwc_position


@kernel(f"void({TENSOR}, {TENSOR}, int64, int64)")
def shifted_copy(source, target, shift_h, shift_w):
    """target[n, h, w, c] = source[n, h + shift_h, w + shift_w, c], or 0 outside ``source``."""
    height, width = source.shape[1], source.shape[2]
    for i in range(cuda.grid(1), target.size, cuda.gridsize(1)):
        n, h, w, c = nhwc_position(i, target.shape)
        hs, ws = h + shift_h, w + shift_w
        value = float32(0)
        if 0 <= hs < height and 0 <= ws < width:
            value = source[n, hs, ws, c]
        target[n, h, w, c] = value
