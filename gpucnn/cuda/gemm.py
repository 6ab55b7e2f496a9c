"""The GEMM launch shared by Dense (kernels/gemm.cu) and the convolutions (kernels/conv.cu).

Every CUDA C GEMM entry point (``gemm_*`` and ``conv2d_*``) takes
``(in0, in1, bias, out, *shape ints, activation, alpha, k_tiles_per_split)`` and exists once per tile shape
and precision (gpucnn.config: FP32 kernels in gemm.cu / conv.cu, TF32 and BF16 tensor-core twins in
gemm_tc.cu / conv_tc.cu); :func:`launch_gemm` picks the tile and the split-K factor for the problem size and
launches.  ``precision=None`` means the global setting (``gpucnn.config.get_float32_matmul_precision()``).
"""
import math
from typing import NamedTuple

import numpy as np

from gpucnn import config
from gpucnn.contract.activations import ACTIVATION_CODES
from gpucnn.contract.shapes import check_not_empty
from gpucnn.cuda import autotune, runtime

THREADS = 256       # every tile shape runs 256 threads per block
TILE_DEPTH = 8      # BK: k values per shared-memory slice (GEMM_BK / CONV_BK in the .cu files)
# SMs assumed off the GPU (H100/H200 SXM); on it, the device's own count.  Only tunes the tile and split
# choice, never the result's correctness.
SM_COUNT = 132
MIN_K_TILES_PER_SPLIT = 32   # below this a split's partial sums cost more than its parallelism brings
TENSOR_CORE_TILE_DEPTH = 16  # TC_BK of kernels/tensor_core.cuh
TENSOR_CORE_FILES = {"gemm.cu": "gemm_tc.cu", "conv.cu": "conv_tc.cu"}
PRECISION_TAGS = {"high": "tf32", "medium": "bf16"}  # entry points <op>_<tag>_<tile> of the *_tc.cu files


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
# Every GEMM entry point (FP32 and tensor-core) exists for these four tiles.
BASE_TILES = (LARGE_TILE, SMALL_TILE, FEW_COLUMNS_TILE, FEW_ROWS_TILE)
# FP32 conv2d_backward_filter only (kernels/conv.cu): capped at 128 registers for two blocks per SM.  Never
# the heuristic's choice; the autotuner times it, and profiling/bench_conv.py beside LARGE_TILE.
LARGE_TILE_TWO_BLOCKS = Tile(128, 128, 2)
TILES = {tile.suffix: tile for tile in (*BASE_TILES, LARGE_TILE_TWO_BLOCKS)}
EXTRA_TILES = {("conv.cu", "conv2d_backward_filter"): (LARGE_TILE_TWO_BLOCKS,)}  # (file, prefix): tiles


def sm_count():
    return runtime.device_sm_count() or SM_COUNT


def tiles_of(filename, kernel_prefix):
    """The tiles that entry points ``<kernel_prefix>_<tile>`` of ``kernels/<filename>`` exist for."""
    return BASE_TILES + EXTRA_TILES.get((filename, kernel_prefix), ())


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


def gemm_candidates(m, n, k_tiles, tiles):
    """The (tile suffix, K splits) launches the autotuner times: each of ``tiles`` whose column tiles fit in
    CUDA's grid (:func:`check_gemm_size` vouches for the heuristic's tile only), with the split-K the
    heuristic would give its grid and without split-K."""
    candidates = []
    for tile in tiles:
        if tile.grid(m, n)[1] > MAX_GRID_Y:
            continue
        heuristic_splits, _ = choose_split_k(math.prod(tile.grid(m, n)), k_tiles)
        for splits in (heuristic_splits, 1):
            if (tile.suffix, splits) not in candidates:
                candidates.append((tile.suffix, splits))
    return candidates


# The kernels index rows, columns and k with int32 (element offsets are 64-bit), and the last tile computes
# indices up to a whole tile past the end before its bounds checks drop them (and k up to BK past K):
# every size must leave that much room below 2**31.
INDEX_LIMIT = 2**31 - 1 - max(max(tile.rows, tile.cols) for tile in TILES.values())


#: CUDA's limit on gridDim.y, where launch_gemm puts the column tiles (gridDim.x allows 2**31 - 1).
MAX_GRID_Y = 65535


def check_gemm_size(m, n, k, what):
    """ValueError unless every GEMM size keeps the kernels' int32 index arithmetic from overflowing and
    the column tiles fit in CUDA's grid (a launch past it fails with a bare 'invalid argument')."""
    for name, value in (("rows", m), ("columns", n), ("reduction length", k)):
        if value > INDEX_LIMIT:
            raise ValueError(f"{what}: the GEMM {name} {value} exceed {INDEX_LIMIT} (2**31 - 1 less a tile), "
                             f"the most the kernels' int32 indices allow. Fix: split the batch into smaller "
                             f"pieces.")
    tile = choose_tile(m, n, k)
    column_tiles = tile.grid(m, n)[1]
    if column_tiles > MAX_GRID_Y:
        raise ValueError(f"{what}: the GEMM columns {n} need {column_tiles} tiles of {tile.cols}, more than "
                         f"CUDA's grid allows ({MAX_GRID_Y} along y). Fix: narrow the layer (for a Dense "
                         f"layer's input features, pool or stride before Flatten).")


def check_operands(**arrays):
    """The checks only a launch needs, before the op's contract checks: each array (None skipped) is a
    C-contiguous float32 array of the backend, and not empty (a kernel cannot launch an empty grid)."""
    for name, array in arrays.items():
        if array is not None:
            runtime.check_array(name, array)
            check_not_empty(name, array)


def kernel_variant(filename, kernel_prefix, precision):
    """(file, entry-point prefix, k per shared-memory slice) of the kernels computing at ``precision``:
    ``filename`` / ``kernel_prefix`` are the FP32 ones ('highest'), the tensor-core twins otherwise."""
    if precision == "highest":
        return filename, kernel_prefix, TILE_DEPTH
    return TENSOR_CORE_FILES[filename], f"{kernel_prefix}_{PRECISION_TAGS[precision]}", TENSOR_CORE_TILE_DEPTH


def launch_gemm(filename, kernel_prefix, in0, in1, shape_args, m, n, k, out, bias=None,
                activation="linear", alpha=0.2, precision=None):
    """Launch ``<kernel_prefix>_<tile>`` of ``kernels/<filename>`` (or its tensor-core twin for
    ``precision`` 'high' / 'medium') so that ``out`` (m×n) = act(A·B + bias).

    With split-K the kernel writes per-split partial sums to a workspace and ``split_k_reduce`` adds them
    in a fixed order and applies the epilogue, so results are deterministic.  The tile and split-K are the
    autotuner's choice on the ``cuda`` backend (:mod:`gpucnn.cuda.autotune`), the heuristic's elsewhere.
    """
    filename, kernel_prefix, depth = kernel_variant(filename, kernel_prefix, config.resolve_precision(precision))
    k_tiles = math.ceil(k / depth)
    shape_args = tuple(np.int32(v) for v in shape_args)

    def launch(candidate):
        suffix, splits = candidate
        _launch_tile(filename, f"{kernel_prefix}_{suffix}", TILES[suffix], splits, in0, in1, shape_args, m, n,
                     k_tiles, out, bias, activation, alpha)

    tile = choose_tile(m, n, k)
    heuristic = (tile.suffix, choose_split_k(math.prod(tile.grid(m, n)), k_tiles)[0])
    problem = [kernel_prefix, *(int(v) for v in shape_args)]
    candidates = gemm_candidates(m, n, k_tiles, tiles_of(filename, kernel_prefix))
    launch(autotune.choose(problem, filename, candidates, launch, heuristic))
    return out


def _launch_tile(filename, name, tile, splits, in0, in1, shape_args, m, n, k_tiles, out, bias, activation, alpha):
    """One launch of kernel ``name`` (of ``tile``) with the reduction cut into ``splits`` pieces."""
    xp = runtime.xp()
    code = np.int32(ACTIVATION_CODES[activation])
    alpha = np.float32(alpha)
    if bias is None:
        bias = xp.zeros(n, dtype=xp.float32)
    grid_m, grid_n = tile.grid(m, n)
    per_split = math.ceil(k_tiles / splits)
    splits = math.ceil(k_tiles / per_split)
    kernel = runtime.cuda_c_function(filename, name)
    if splits == 1:
        kernel((grid_m, grid_n, 1), (THREADS,), (in0, in1, bias, out, *shape_args, code, alpha,
                                                 np.int32(per_split)))
        return
    partial = xp.empty((splits, m, n), dtype=xp.float32)
    no_bias = xp.zeros(n, dtype=xp.float32)
    kernel((grid_m, grid_n, splits), (THREADS,),
           (in0, in1, no_bias, partial, *shape_args, np.int32(ACTIVATION_CODES["linear"]), np.float32(0),
            np.int32(per_split)))
    count = m * n
    reduce = runtime.cuda_c_function(filename, "split_k_reduce")
    reduce((min(runtime.blocks_for(count, THREADS), 16 * sm_count()),), (THREADS,),
           (partial, np.int32(splits), np.int64(count), np.int32(n), bias, out, code, alpha))
