"""Max-pooling Numba kernels over NHWC tensors: forward with argmax, backward as a gather.

One thread per output (forward) or input (backward) element, channel fastest, so a warp reads 32
neighbouring channels of one pixel (coalesced).  The backward pass gathers, for each input, the
gradients of the windows that picked it, in a fixed order: no atomics, so overlapping windows and
'same' padding give the same bits on every run.
"""
from numba import cuda, float32

from ._numba import device, kernel

TENSOR = "float32[:, :, :, ::1]"
INDICES = "int32[:, :, :, ::1]"
GEOMETRY = "int64, int64, int64, int64, int64, int64"  # pool_h, pool_w, stride_h, stride_w, pad_top, pad_left


@device
def nhwc_position(i, shape):
    """(n, h, w, c) of the flat C-order index ``i`` in an NHWC tensor of ``shape``."""
    c = i % shape[3]
    rest = i // shape[3]
    w = rest % shape[2]
    rest //= shape[2]
    return rest // shape[1], rest % shape[1], w, c


@device
def covering_windows(padded_position, pool, stride, out_length):
    """(first, last) index of the windows that contain ``padded_position`` along one axis (inclusive;
    first > last when none does).  Window o covers [o·stride, o·stride + pool) in padded coordinates."""
    # Comparisons rather than max()/min(): Numba's built-in CUDA target (numba.cuda without the
    # numba-cuda package) cannot type the variadic max/min overloads.
    first = (padded_position - pool) // stride + 1
    last = padded_position // stride
    return (first if first > 0 else 0), (last if last < out_length else out_length - 1)


@kernel(f"void({TENSOR}, {TENSOR}, {INDICES}, {GEOMETRY})")
def max_pool_forward(x, y, argmax, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """y = max over each window, argmax = r·pool_w + c of the first maximum in row-major window order.

    Positions outside the input are skipped, so padding never wins; the first in-bounds position seeds
    the maximum and later ones replace it only when strictly greater (the tie rule of the contract).
    """
    height, width = x.shape[1], x.shape[2]
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n, out_h, out_w, c = nhwc_position(i, y.shape)
        top, left = out_h * stride_h - pad_top, out_w * stride_w - pad_left
        best = float32(0)
        best_index = -1
        for r in range(pool_h):
            h = top + r
            if h < 0 or h >= height:
                continue
            for s in range(pool_w):
                w = left + s
                if w < 0 or w >= width:
                    continue
                value = x[n, h, w, c]
                if best_index < 0 or value > best:
                    best = value
                    best_index = r * pool_w + s
        y[n, out_h, out_w, c] = best
        argmax[n, out_h, out_w, c] = best_index


@kernel(f"void({TENSOR}, {INDICES}, {TENSOR}, {GEOMETRY})")
def max_pool_backward(dy, argmax, dx, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """dx[n, h, w, c] = sum of dy over the windows containing (h, w) whose argmax points at it."""
    out_height, out_width = dy.shape[1], dy.shape[2]
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, h, w, c = nhwc_position(i, dx.shape)
        hp, wp = h + pad_top, w + pad_left
        first_h, last_h = covering_windows(hp, pool_h, stride_h, out_height)
        first_w, last_w = covering_windows(wp, pool_w, stride_w, out_width)
        total = float32(0)
        for out_h in range(first_h, last_h + 1):
            row_offset = (hp - out_h * stride_h) * pool_w
            for out_w in range(first_w, last_w + 1):
                if argmax[n, out_h, out_w, c] == row_offset + wp - out_w * stride_w:
                    total += dy[n, out_h, out_w, c]
        dx[n, h, w, c] = total
