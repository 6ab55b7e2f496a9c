"""Average-pooling Numba kernels over NHWC tensors, forward and backward (``gpucnn.cuda.avgpool``).

The layout of max-pooling (``pool.py``): one thread per output (forward) or input (backward) element,
channel fastest, so a warp reads 32 neighbouring channels of one pixel.  A window's divisor is the
number of its positions inside the input (Keras and TensorFlow leave 'same' padding out of the
average).  The backward pass gathers from the windows that contain each input, in a fixed order: no
atomics, the same bits on every run.  Global average pooling is the case of one window per image.
"""
from numba import cuda, float32

from ._numba import device, kernel
from .pool import GEOMETRY, TENSOR, covering_windows, nhwc_position


@device
def inside(start, pool, length):
    """(first, end) of the positions of the window [start, start + pool) that lie in [0, length)."""
    end = start + pool
    return (start if start > 0 else 0), (end if end < length else length)  # no max/min: see pool.py


@kernel(f"void({TENSOR}, {TENSOR}, {GEOMETRY})")
def average_pool_forward(x, y, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """y = the sum of each window's positions inside ``x`` divided by their count."""
    height, width = x.shape[1], x.shape[2]
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n, out_h, out_w, c = nhwc_position(i, y.shape)
        first_h, end_h = inside(out_h * stride_h - pad_top, pool_h, height)
        first_w, end_w = inside(out_w * stride_w - pad_left, pool_w, width)
        total = float32(0)
        for h in range(first_h, end_h):
            for w in range(first_w, end_w):
                total += x[n, h, w, c]
        y[n, out_h, out_w, c] = total / float32((end_h - first_h) * (end_w - first_w))


@kernel(f"void({TENSOR}, {TENSOR}, {GEOMETRY})")
def average_pool_backward(dy, dx, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """dx[n, h, w, c] = the sum of dy / count over the windows that contain (h, w)."""
    height, width = dx.shape[1], dx.shape[2]
    out_height, out_width = dy.shape[1], dy.shape[2]
    inverse_h, inverse_w = 1.0 / stride_h, 1.0 / stride_w  # covering_windows divides by multiplying
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, h, w, c = nhwc_position(i, dx.shape)
        first_oh, last_oh = covering_windows(h + pad_top, pool_h, stride_h, inverse_h, out_height)
        first_ow, last_ow = covering_windows(w + pad_left, pool_w, stride_w, inverse_w, out_width)
        total = float32(0)
        for out_h in range(first_oh, last_oh + 1):
            top, bottom = inside(out_h * stride_h - pad_top, pool_h, height)
            for out_w in range(first_ow, last_ow + 1):
                left, right = inside(out_w * stride_w - pad_left, pool_w, width)
                total += dy[n, out_h, out_w, c] / float32((bottom - top) * (right - left))
        dx[n, h, w, c] = total
