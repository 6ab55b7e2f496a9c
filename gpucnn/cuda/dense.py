"""Dense launchers (kernels/gemm.cu), and the GEMM launch shared with the convolutions (conv.py).

Every CUDA C GEMM entry point (``gemm_*`` and ``conv2d_*``) takes
``(in0, in1, bias, out, *shape ints, activation, alpha, k_tiles_per_split)`` and exists once per tile shape;
:func:`launch_gemm` picks the tile and the split-K factor for the problem size and launches.
"""
import math
from typing import NamedTuple

import numpy as np

from gpucnn.cuda import runtime
from gpucnn.reference.activations import check_activation

# Values of `enum Activation` in kernels/common.cuh.
ACTIVATION_CODES = {"linear": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4}

THREADS = 256       # every tile shape runs 256 threads per block
TILE_DEPTH = 8      # BK: k values per shared-memory slice (GEMM_BK / CONV_BK in the .cu files)
# SMs assumed off the GPU (H100/H200 SXM); on it, the device's own count.  Only tunes the tile and split
# choice, never the result's correctness.
SM_COUNT = 132
MIN_K_TILES_PER_SPLIT = 32   # below this a split's partial sums cost more than its parallelism brings


class Tile(NamedTuple):
    rows: int
    cols: int
    blocks_per_sm: int = 1  # > 1: the kernel's __launch_bounds__(256, blocks_per_sm) variant

    @property
    def suffix(self):
        return f"{self.rows}x{self.cols}" + (f"_{self.blocks_per_sm}blocks" if self.blocks_per_sm > 1 else "")

    def grid(self, m, n):
        return math.ceil(m / self.rows), math.ceil(n / self.cols)


LARGE_TILE = Tile(128, 128)    # 8×8 outputs per thread: the most FMAs per shared-memory read
SMALL_TILE = Tile(64, 64)      # 4×4 per thread: more blocks for mid-sized problems
FEW_COLUMNS_TILE = Tile(128, 32)
FEW_ROWS_TILE = Tile(32, 128)
# A candidate for conv2d_backward_filter only (kernels/conv.cu): capped at 128 registers for two blocks
# per SM.  Not chosen by default; profiling/bench_conv.py measures it against LARGE_TILE.
LARGE_TILE_TWO_BLOCKS = Tile(128, 128, 2)


def sm_count():
    return runtime.device_sm_count() or SM_COUNT


def choose_tile(m, n, k):
    """The tile shape for an m×n result with reduction length k."""
    if n <= 32 < m:
        return FEW_COLUMNS_TILE
    if m <= 32 < n:
        return FEW_ROWS_TILE
    grid_m, grid_n = LARGE_TILE.grid(m, n)
    # Large tiles when they fill the GPU, or when k is long enough for split-K to fill it.
    if grid_m * grid_n >= sm_count() or math.ceil(k / TILE_DEPTH) >= 2 * MIN_K_TILES_PER_SPLIT:
        return LARGE_TILE
    return SMALL_TILE


def choose_split_k(blocks, k_tiles):
    """(splits, k_tiles_per_split): split the reduction only when the output tiles alone leave SMs idle."""
    sms = sm_count()
    if blocks >= sms:
        return 1, k_tiles
    # Two blocks per SM: enough for the split partial sums to fill the GPU.
    splits = max(1, min(math.ceil(2 * sms / blocks), k_tiles // MIN_K_TILES_PER_SPLIT))
    per_split = math.ceil(k_tiles / splits)
    return math.ceil(k_tiles / per_split), per_split


# The kernels index rows, columns and k with int32 (element offsets are 64-bit), and the last tile computes
# indices up to a whole tile past the end before its bounds checks drop them (and k up to BK past K):
# every size must leave that much room below 2**31.
INDEX_LIMIT = 2**31 - 1 - max(max(tile.rows, tile.cols) for tile in (LARGE_TILE, SMALL_TILE, FEW_COLUMNS_TILE,
                                                                      FEW_ROWS_TILE))


def check_gemm_size(m, n, k, what):
    """ValueError unless every GEMM size keeps the kernels' int32 index arithmetic from overflowing."""
    for name, value in (("rows", m), ("columns", n), ("reduction length", k)):
        if value > INDEX_LIMIT:
            raise ValueError(f"{what}: the GEMM {name} {value} exceed {INDEX_LIMIT} (2**31 - 1 less a tile), "
                             f"the most the kernels' int32 indices allow. Fix: split the batch into smaller "
                             f"pieces.")


def launch_gemm(filename, kernel_prefix, in0, in1, shape_args, m, n, k, out, bias=None,
                activation="linear", alpha=0.2):
    """Launch ``<kernel_prefix>_<tile>`` of ``kernels/<filename>`` so that ``out`` (m×n) = act(A·B + bias).

    With split-K the kernel writes per-split partial sums to a workspace and ``split_k_reduce`` adds them
    in a fixed order and applies the epilogue, so results are deterministic.
    """
    xp = runtime.xp()
    code = np.int32(ACTIVATION_CODES[activation])
    alpha = np.float32(alpha)
    if bias is None:
        bias = xp.zeros(n, dtype=xp.float32)
    tile = choose_tile(m, n, k)
    grid_m, grid_n = tile.grid(m, n)
    k_tiles = math.ceil(k / TILE_DEPTH)
    splits, per_split = choose_split_k(grid_m * grid_n, k_tiles)
    kernel = runtime.cuda_c_function(filename, f"{kernel_prefix}_{tile.suffix}")
    shape_args = tuple(np.int32(v) for v in shape_args)
    if splits == 1:
        kernel((grid_m, grid_n, 1), (THREADS,), (in0, in1, bias, out, *shape_args, code, alpha,
                                                 np.int32(per_split)))
        return out
    partial = xp.empty((splits, m, n), dtype=xp.float32)
    no_bias = xp.zeros(n, dtype=xp.float32)
    kernel((grid_m, grid_n, splits), (THREADS,),
           (in0, in1, no_bias, partial, *shape_args, np.int32(ACTIVATION_CODES["linear"]), np.float32(0),
            np.int32(per_split)))
    count = m * n
    reduce = runtime.cuda_c_function(filename, "split_k_reduce")
    reduce((min(runtime.blocks_for(count, THREADS), 16 * sm_count()),), (THREADS,),
           (partial, np.int32(splits), np.int64(count), np.int32(n), bias, out, code, alpha))
    return out


def _check_matrix(name, array):
    runtime.check_array(name, array, ndim=2)
    if 0 in array.shape:
        raise ValueError(f"Argument `{name}` must not be empty, got shape {tuple(array.shape)}.")


def dense_forward(x, w, b, activation="linear", alpha=0.2):
    """y = act(x @ w + b): x (N, K), w (K, M), b (M,) or None -> (N, M)."""
    check_activation(activation)
    _check_matrix("x", x)
    _check_matrix("w", w)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"Argument `w` has {w.shape[0]} input features but x has {x.shape[1]}. "
                         f"Fix: use a kernel of shape ({x.shape[1]}, units).")
    (batch, features), units = x.shape, w.shape[1]
    if b is not None:
        runtime.check_array("b", b, ndim=1)
        if b.shape != (units,):
            raise ValueError(f"Argument `b` must have shape ({units},), got {tuple(b.shape)}.")
    check_gemm_size(batch, units, features, "dense_forward")
    y = runtime.xp().empty((batch, units), dtype=np.float32)
    return launch_gemm("gemm.cu", "gemm_nn", x, w, (batch, units, features), batch, units, features, y,
                       b, activation, alpha)


def dense_backward_data(dy, w):
    """dx = dy @ wᵀ: dy (N, M), w (K, M) -> (N, K)."""
    _check_matrix("dy", dy)
    _check_matrix("w", w)
    if dy.shape[1] != w.shape[1]:
        raise ValueError(f"Argument `dy` has {dy.shape[1]} columns but w has {w.shape[1]} units. "
                         f"Fix: pass the gradient of this layer's output, shape (batch, {w.shape[1]}).")
    (batch, units), features = dy.shape, w.shape[0]
    check_gemm_size(batch, features, units, "dense_backward_data")
    dx = runtime.xp().empty((batch, features), dtype=np.float32)
    return launch_gemm("gemm.cu", "gemm_nt", dy, w, (batch, features, units), batch, features, units, dx)


def dense_backward_weights(x, dy):
    """dw = xᵀ @ dy: x (N, K), dy (N, M) -> (K, M)."""
    _check_matrix("x", x)
    _check_matrix("dy", dy)
    if x.shape[0] != dy.shape[0]:
        raise ValueError(f"Arguments `x` and `dy` must have the same batch size, got {x.shape[0]} and "
                         f"{dy.shape[0]}.")
    (batch, features), units = x.shape, dy.shape[1]
    check_gemm_size(features, units, batch, "dense_backward_weights")
    dw = runtime.xp().empty((features, units), dtype=np.float32)
    return launch_gemm("gemm.cu", "gemm_tn", x, dy, (features, units, batch), features, units, batch, dw)
