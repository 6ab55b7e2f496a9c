"""Max-pooling Numba kernels over NHWC tensors: forward with argmax, backward as a gather.

One thread per output (forward) or input (backward) element, channel fastest, so a warp reads 32
neighbouring channels of one pixel (coalesced).  A thread turns its flat index into (n, h, w, c) by
division once; each grid-stride step then adds the stride's own (n, h, w, c) digits with carries, so the
per-element loop does no 64-bit division (tensors reach 600M elements, and a 64-bit division is a long
instruction sequence on the GPU); the backward pass divides by the stride as a float64 multiplication.
The backward pass gathers, for each input, the gradients of the windows that picked it, in a fixed
order: no atomics, so overlapping windows and 'same' padding give the same bits on every run.
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
def nhwc_advance(position, step, shape):
    """The (n, h, w, c) of index(position) + index(step), both given as digits below their extents
    (``step``'s n may be anything): one add and at most one carry per digit, no division."""
    n, h, w, c = position
    c += step[3]
    w += step[2]
    if c >= shape[3]:
        c -= shape[3]
        w += 1
    h += step[1]
    if w >= shape[2]:
        w -= shape[2]
        h += 1
    n += step[0]
    if h >= shape[1]:
        h -= shape[1]
        n += 1
    return n, h, w, c


@device
def floor_divide(value, divisor, inverse):
    """``value // divisor`` for 0 <= value < 2**50 and divisor >= 1, with ``inverse`` = 1 / divisor in float64:
    a multiplication instead of a 64-bit integer division, exact after one correction either way."""
    quotient = int(value * inverse)
    if quotient * divisor > value:
        quotient -= 1
    elif (quotient + 1) * divisor <= value:
        quotient += 1
    return quotient


@device
def covering_windows(padded, pool, stride, inverse_stride, count):
    """(first, last) indices of the windows [o·stride, o·stride + pool) along one axis that hold the
    padded position (first > last: none): the window the position falls in, then a walk over the at most
    pool / stride earlier windows that may also hold it."""
    last = floor_divide(padded, stride, inverse_stride)
    offset = padded - last * stride
    if offset >= pool:  # in the gap after window `last` (pool < stride)
        return last + 1, last
    first = last
    while first > 0 and offset + stride < pool:
        first -= 1
        offset += stride
    if last >= count:
        last = count - 1
    return first, last


@kernel(f"void({TENSOR}, {TENSOR}, {INDICES}, {GEOMETRY})")
def max_pool_forward(x, y, argmax, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """y = max over each window, argmax = r·pool_w + c of the first maximum in row-major window order.

    Positions outside the input are skipped, so padding never wins; the first in-bounds position seeds
    the maximum and later ones replace it only when strictly greater (the tie rule of the contract).
    """
    height, width = x.shape[1], x.shape[2]
    i, stride = cuda.grid(1), cuda.gridsize(1)
    position, step = nhwc_position(i, y.shape), nhwc_position(stride, y.shape)
    while i < y.size:
        n, out_h, out_w, c = position
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
        i += stride
        position = nhwc_advance(position, step, y.shape)


@kernel(f"void({TENSOR}, {INDICES}, {TENSOR}, {GEOMETRY})")
def max_pool_backward(dy, argmax, dx, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """dx[n, h, w, c] = sum of dy over the windows containing (h, w) whose argmax points at it."""
    out_height, out_width = dy.shape[1], dy.shape[2]
    inverse_h, inverse_w = 1.0 / stride_h, 1.0 / stride_w
    i, stride = cuda.grid(1), cuda.gridsize(1)
    position, step = nhwc_position(i, dx.shape), nhwc_position(stride, dx.shape)
    while i < dx.size:
        n, h, w, c = position
        # (h, w) in padded coordinates; window o covers [o·s, o·s + pool) there.
        hp, wp = h + pad_top, w + pad_left
        first_h, last_h = covering_windows(hp, pool_h, stride_h, inverse_h, out_height)
        first_w, last_w = covering_windows(wp, pool_w, stride_w, inverse_w, out_width)
        total = float32(0)
        for out_h in range(first_h, last_h + 1):
            row_offset = (hp - out_h * stride_h) * pool_w
            for out_w in range(first_w, last_w + 1):
                if argmax[n, out_h, out_w, c] == row_offset + wp - out_w * stride_w:
                    total += dy[n, out_h, out_w, c]
        dx[n, h, w, c] = total
        i += stride
        position = nhwc_advance(position, step, dx.shape)
