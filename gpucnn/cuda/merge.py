"""Launchers of the merging kernels (``kernels/merge.py``); same names and signatures as
``gpucnn.reference.merge`` (sums left to right, so the results are the reference's bit for bit)."""
import numpy as np

from gpucnn.contract.merge import check_add_inplace, check_inputs, check_split_sizes
from gpucnn.cuda import runtime
from gpucnn.cuda._numba_launch import flat, launch_grid_stride
from gpucnn.kernels import merge


def _check_all(inputs):
    for k, x in enumerate(inputs):
        runtime.check_array(f"inputs[{k}]", x)


def add_forward(inputs):
    """The elementwise sum of the arrays in ``inputs`` (same shape), added left to right."""
    inputs = check_inputs("inputs", inputs, same_last_axis=True)
    _check_all(inputs)
    total = runtime.xp().empty(inputs[0].shape, dtype=np.float32)
    launch_grid_stride(merge.add_arrays, total.size, flat(inputs[0]), flat(inputs[1]), flat(total))
    for x in inputs[2:]:
        add_inplace(total, x)
    return total


def add_inplace(target, x):
    """``target += x`` in place (same shape); returns None."""
    runtime.check_array("target", target)
    runtime.check_array("x", x)
    check_add_inplace(target, x)
    launch_grid_stride(merge.add_arrays, target.size, flat(target), flat(x), flat(target))


def _rows(array, channels):
    """A (rows, channels) view of ``array`` (C-contiguous, last axis ``channels``)."""
    return array.reshape(-1, channels)


def concatenate_forward(inputs):
    """The arrays of ``inputs`` joined along the last axis (all other axes equal)."""
    inputs = check_inputs("inputs", inputs, same_last_axis=False)
    _check_all(inputs)
    sizes = [x.shape[-1] for x in inputs]
    y = runtime.xp().empty(inputs[0].shape[:-1] + (sum(sizes),), dtype=np.float32)
    offset = 0
    for x, size in zip(inputs, sizes):
        launch_grid_stride(merge.copy_channels, x.size, _rows(x, size), _rows(y, y.shape[-1]),
                           np.int64(0), np.int64(offset), np.int64(size))
        offset += size
    return y


def concatenate_backward(dy, sizes):
    """The gradients of the inputs: ``dy`` split along the last axis into parts of ``sizes``."""
    runtime.check_array("dy", dy)
    sizes = check_split_sizes(dy.shape, sizes)
    xp = runtime.xp()
    parts, offset = [], 0
    for size in sizes:
        part = xp.empty(dy.shape[:-1] + (size,), dtype=np.float32)
        launch_grid_stride(merge.copy_channels, part.size, _rows(dy, dy.shape[-1]), _rows(part, size),
                           np.int64(offset), np.int64(0), np.int64(size))
        parts.append(part)
        offset += size
    return parts
