"""Launch configuration and shared launch steps of the Numba kernels (``kernels/*.py``).

The constants are module attributes on purpose: the emulated tests shrink them (small blocks, a grid
of two blocks) to reach block edges, grid-stride wrap-around and multi-part reductions on tiny arrays.
"""
import numpy as np

from gpucnn.cuda import runtime
from gpucnn.kernels import reduce

#: Threads per block of the 1-D kernels; a power of two (block tree reductions) <= reduce.MAX_THREADS.
THREADS = 256
#: Grid cap of the grid-stride kernels: a few waves on any current GPU (an H100 holds 132 × 8 blocks
#: of 256 threads at once); each thread then loops over the rest.
MAX_BLOCKS = 4096
#: Column sums: most rows a thread adds before the rows are split into one more part.
ROWS_PER_THREAD = 16
#: Column sums: enough blocks to fill the GPU across channel tiles and row parts.
TARGET_BLOCKS = 1024
#: Widest channel tile of a column-sum block (one warp reads 32 consecutive channels).
CHANNEL_TILE = 32


def flat(array):
    """A 1-D view of a C-contiguous array (no copy on NumPy or CuPy)."""
    return array.reshape(-1)


def grid_stride(count):
    """(blocks, threads) of a grid-stride launch covering ``count`` items."""
    return min(runtime.blocks_for(count, THREADS), MAX_BLOCKS), THREADS


def launch_grid_stride(kernel, count, *args):
    """Launch a grid-stride ``kernel`` over ``count`` items on the backend's stream (nothing if empty)."""
    if count == 0:
        return
    blocks, threads = grid_stride(count)
    kernel[blocks, threads, runtime.numba_stream()](*args)


def _column_block(channels):
    width = min(CHANNEL_TILE, THREADS, 1 << max(int(channels) - 1, 0).bit_length())
    return width, THREADS // width


def column_sums(a, channels, a_shift=None, b=None, b_shift=None, scale=1.0):
    """Per-channel sums over the rows of the flat (rows, channels) matrix ``a`` (see
    ``kernels.reduce.column_sums``), times ``scale``.  Deterministic: the rows are split into parts that
    depend only on the shape, and the parts are added by a second launch of the same kernel."""
    xp = runtime.xp()
    if channels == 0:
        return xp.zeros(0, dtype=np.float32)
    rows = a.size // channels
    zeros = xp.zeros(channels, dtype=np.float32)
    block = _column_block(channels)
    tiles = runtime.blocks_for(channels, block[0])
    parts = min(runtime.blocks_for(rows, block[1] * ROWS_PER_THREAD), max(1, TARGET_BLOCKS // tiles))
    use_b = b is not None
    b, b_shift = (b, b_shift) if use_b else (a, zeros)
    a_shift = zeros if a_shift is None else a_shift
    stream = runtime.numba_stream()
    sums = xp.empty(parts * channels, dtype=np.float32)
    first_scale = 1.0 if parts > 1 else scale
    reduce.column_sums[(tiles, parts), block, stream](
        a, a_shift, b, b_shift, np.bool_(use_b), np.int64(channels), np.float32(first_scale), sums)
    if parts == 1:
        return sums
    total = xp.empty(channels, dtype=np.float32)
    reduce.column_sums[(tiles, 1), block, stream](
        sums, zeros, sums, zeros, np.bool_(False), np.int64(channels), np.float32(scale), total)
    return total


def launch_loss(kernel, items, *args):
    """Launch a loss ``kernel`` (gradient written into ``args``) over ``items`` rows or elements.

    Returns the 0-d float32 device arrays (loss, correct): the kernel fills them, so nothing waits on
    the device here.
    """
    xp = runtime.xp()
    blocks, threads = grid_stride(items)
    partials = xp.empty(2 * blocks, dtype=np.float32)
    blocks_done = xp.zeros(1, dtype=np.int32)
    loss = xp.zeros(1, dtype=np.float32)
    correct = xp.zeros(1, dtype=np.float32)
    kernel[blocks, threads, runtime.numba_stream()](*args, partials, blocks_done, loss, correct)
    return loss.reshape(()), correct.reshape(())
