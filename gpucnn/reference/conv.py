"""2-D convolution (NumPy reference): NHWC activations, HWIO kernels, im2col + BLAS.

Forward:          cols (N·oh·ow, kh·kw·C) @ w (kh·kw·C, F).
Backward-filter:  colsᵀ @ dy.
Backward-data:    where F <= 2C, stride-1 correlations of dy with the flipped kernel, one per phase of
                  the strides (im2col + GEMM again); else dy @ wᵀ gives one value per (output pixel,
                  kernel offset, channel) and "col2im" adds them back onto the input with one strided
                  slice per kernel offset.

The sliding-window helpers here are shared with max-pooling (pool.py); the window geometry is the
contract's (``gpucnn.contract.shapes.window_layout``).  ``precision`` as in dense.py: the two GEMM operands
are rounded to TF32 / BF16 for 'high' / 'medium', exact float32 otherwise.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from gpucnn.contract.conv import check_conv2d_backward_data, check_conv2d_backward_filter, check_conv2d_forward
from gpucnn.contract.shapes import WindowGeometry

from .activations import apply_activation_
from .precision import round_operands


def sliding_windows(x, geometry, pad_value):
    """A read-only view (N, oh, ow, kh, kw, C) of every window of ``x`` (padded with ``pad_value``)."""
    g = geometry
    if g.pad_top or g.pad_bottom or g.pad_left or g.pad_right:
        padded = np.full(g.padded_shape(x.shape), pad_value, dtype=x.dtype)
        padded[:, g.pad_top:g.pad_top + x.shape[1], g.pad_left:g.pad_left + x.shape[2]] = x
        x = padded
    (kh, kw), (sh, sw) = g.window, g.strides
    sn, s_h, s_w, sc = x.strides
    return as_strided(x, shape=(x.shape[0], g.out_h, g.out_w, kh, kw, x.shape[3]),
                      strides=(sn, s_h * sh, s_w * sw, s_h, s_w, sc), writeable=False)


def fold_windows(per_offset, x_shape, geometry, dtype):
    """Add per-window values back onto the input: the adjoint of :func:`sliding_windows`.

    ``per_offset(i, j)`` gives the (N, oh, ow, C) values of kernel offset (i, j) of every window. One
    strided slice per offset never hits the same input twice, so overlapping windows accumulate correctly
    with plain ``+=``.
    """
    g = geometry
    (kh, kw), (sh, sw) = g.window, g.strides
    dx = np.zeros(g.padded_shape(x_shape), dtype=dtype)
    span_h, span_w = (g.out_h - 1) * sh + 1, (g.out_w - 1) * sw + 1
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + span_h:sh, j:j + span_w:sw] += per_offset(i, j)
    return crop_padding(dx, x_shape, g)


def crop_padding(padded, x_shape, geometry):
    """The part of a gradient w.r.t. the padded input that belongs to the input itself."""
    if padded.shape == tuple(x_shape):
        return padded
    g = geometry
    return np.ascontiguousarray(padded[:, g.pad_top:g.pad_top + x_shape[1], g.pad_left:g.pad_left + x_shape[2]])


# NumPy copies a window row kw·C floats at a time: with 1 to 3 channels (a first layer on grey or RGB
# images) that is loop overhead. Copied channel-major instead, each kernel offset's shifted image moves in
# long runs, and BLAS reads the (K, M) result transposed; from 4 channels on the row copy is faster.
_NARROW_CHANNELS = 3


def _im2col(x, geometry):
    """Every window of ``x`` as one row: (N·oh·ow, kh·kw·C), in HWIO order to match ``w.reshape(-1, F)``."""
    windows = sliding_windows(x, geometry, 0)
    depth = windows.shape[3] * windows.shape[4] * windows.shape[5]
    if x.shape[3] <= _NARROW_CHANNELS:
        return np.ascontiguousarray(windows.transpose(3, 4, 5, 0, 1, 2)).reshape(depth, -1).T
    return windows.reshape(-1, depth)


def conv2d_forward(x, w, b, strides, padding, activation="linear", alpha=0.2, precision=None):
    """y = act(conv(x, w) + b): x (N, H, W, C), w (kh, kw, C, F), b (F,) or None -> (N, oh, ow, F)."""
    geometry = check_conv2d_forward(x, w, b, strides, padding, activation, precision)
    filters = w.shape[3]
    x, w = round_operands(precision, x, w)
    y = _im2col(x, geometry) @ w.reshape(-1, filters)
    if b is not None:
        y += b
    apply_activation_(y, activation, alpha)
    return y.reshape(x.shape[0], geometry.out_h, geometry.out_w, filters)


def conv2d_backward_data(dy, w, x_shape, strides, padding, precision=None):
    """dx (x_shape) of y = conv(x, w), from dy (N, oh, ow, F)."""
    x_shape, geometry = check_conv2d_backward_data(dy, w, x_shape, strides, padding, precision)
    kh, kw, channels, filters = w.shape
    dy, w = round_operands(precision, dy, w)
    # The correlations copy kh·kw·F values per output pixel, col2im adds kh·kw·C: with many more filters
    # than channels (a first layer) col2im moves less and wins.
    if filters <= 2 * channels:
        return _backward_data_by_phases(dy, w, x_shape, geometry)
    dcols = (dy.reshape(-1, filters) @ w.reshape(-1, filters).T).reshape(
        dy.shape[0], geometry.out_h, geometry.out_w, kh, kw, channels)
    return fold_windows(lambda i, j: dcols[:, :, :, i, j], x_shape, geometry, dcols.dtype)


def _backward_data_by_phases(dy, w, x_shape, geometry):
    """dx as stride-1 correlations of dy, one per phase of the strides (one in all for stride 1).

    Input row h (padded index p = h + pad_top) gets dy row o through kernel row i = p - o·s, so the rows
    of one phase r = p mod s read only the kernel rows r, r + s, ...: they are the stride-1 correlation
    of dy with those kernel rows upside down (in and out swapped); likewise along the columns.  Each
    phase is one im2col + GEMM, where col2im's strided additions of C-wide pieces are several times
    slower with the few channels of a small CNN.
    """
    g = geometry
    (kh, kw), (sh, sw) = g.window, g.strides
    batch, height, width, channels = x_shape
    dx = None if g.strides == (1, 1) else np.zeros(x_shape, dy.dtype)
    for row_phase in range(sh):
        rows = _phase(height, kh, sh, g.pad_top, row_phase)
        for col_phase in range(sw):
            cols = _phase(width, kw, sw, g.pad_left, col_phase)
            kernel = w[row_phase::sh, col_phase::sw]
            if rows[1] == 0 or cols[1] == 0 or kernel.size == 0:
                continue  # no input position in this phase, or no kernel offset reaches it: dx is 0
            part = _phase_correlation(dy, kernel, rows, cols)
            if dx is None:
                return part
            dx[:, rows[0]::sh, cols[0]::sw] = part
    return dx


def _phase(length, window, stride, pad_before, phase):
    """Along one axis, for the input positions whose padded index is ``phase`` mod ``stride``: (first
    index, count, the dy index that the last kernel offset of this phase pairs with the first one)."""
    first = (phase - pad_before) % stride
    count = len(range(first, length, stride))
    taps = len(range(phase, window, stride))
    return first, count, (first + pad_before - phase) // stride - (taps - 1)


def _phase_correlation(dy, kernel, rows, cols):
    """The stride-1 correlation of dy with ``kernel`` (one phase's offsets) flipped: dy placed on a zero
    canvas from its (row, column) offset, so that output (t, u) reads canvas rows t.. and columns u.."""
    (_, out_h, dy_row), (_, out_w, dy_col) = rows, cols
    taps_h, taps_w, channels, filters = kernel.shape
    canvas = np.zeros((dy.shape[0], out_h + taps_h - 1, out_w + taps_w - 1, filters), dy.dtype)
    rows_in = slice(max(dy_row, 0), min(dy_row + canvas.shape[1], dy.shape[1]))
    cols_in = slice(max(dy_col, 0), min(dy_col + canvas.shape[2], dy.shape[2]))
    if rows_in.start < rows_in.stop and cols_in.start < cols_in.stop:
        canvas[:, rows_in.start - dy_row:rows_in.stop - dy_row, cols_in.start - dy_col:cols_in.stop - dy_col] = \
            dy[:, rows_in, cols_in]
    windows = WindowGeometry((taps_h, taps_w), (1, 1), out_h, out_w, 0, 0, 0, 0)
    flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, channels)
    return (_im2col(canvas, windows) @ flipped).reshape(dy.shape[0], out_h, out_w, channels)


def conv2d_backward_filter(x, dy, kernel_size, strides, padding, precision=None):
    """dw (kh, kw, C, F) of y = conv(x, w), from the input x and dy (N, oh, ow, F)."""
    geometry = check_conv2d_backward_filter(x, dy, kernel_size, strides, padding, precision)
    filters = dy.shape[-1]
    x, dy = round_operands(precision, x, dy)
    dw = _im2col(x, geometry).T @ dy.reshape(-1, filters)
    return dw.reshape(*geometry.window, x.shape[3], filters)

