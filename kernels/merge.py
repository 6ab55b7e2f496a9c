"""Merging kernels (Numba, ``gpucnn.cuda.merge``): elementwise sum and copies of channel ranges.

``add_arrays`` may write into one of its inputs (``out is a``): each thread reads its element before
writing it, so in-place accumulation is safe and, one launch per added array, deterministic.
``copy_channels`` moves a range of the last axis between two (rows, channels) views: concatenation
writes each input into its slice of the output, the backward pass reads each slice out again.
"""
from numba import cuda

from ._numba import kernel

VECTOR = "float32[::1]"
MATRIX = "float32[:, ::1]"


@kernel(f"void({VECTOR}, {VECTOR}, {VECTOR})")
def add_arrays(a, b, out):
    """out = a + b elementwise (flat views of one size; ``out`` may be ``a`` or ``b``)."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = a[i] + b[i]


@kernel(f"void({MATRIX}, {MATRIX}, int64, int64, int64)")
def copy_channels(source, target, source_offset, target_offset, width):
    """target[r, target_offset + j] = source[r, source_offset + j] for j < width, every row r."""
    for i in range(cuda.grid(1), source.shape[0] * width, cuda.gridsize(1)):
        row, j = i // width, i % width
        target[row, target_offset + j] = source[row, source_offset + j]
