"""Shared pieces of the CUDA C kernel tests (conv.cu, gemm.cu and their tensor-core twins): their
tolerance at each precision, forcing a tile or a split-K factor, and a record of the launches, so a test
can assert that its shapes reach the path it is about (several tiles both ways, partial tiles, float4
stores, split-K) instead of trusting a comment."""
from typing import NamedTuple

import numpy as np
import pytest
from ops import assert_close

from gpucnn.cuda import gemm as gemm_launch
from gpucnn.cuda import runtime

#: float32 GEMM sums in another order than NumPy's BLAS.
GEMM_TOL = dict(rtol=1e-4, atol=1e-4)
ALL_TILES = gemm_launch.BASE_TILES
TILE_IDS = [tile.suffix for tile in ALL_TILES]


TENSOR_CORE_TAGS = {"high": "tf32", "medium": "bf16"}  # the entry points' tags of gpucnn.config's precisions


def assert_matches(actual, reference_at, precision):
    """``actual`` (a kernel's result at ``precision``) against ``reference_at(precision)``, the reference op
    with the same operand rounding: only the order of the float32 sums differs, so the tolerance is tight
    (far below the TF32 / BF16 rounding itself, which the tensor-core tests check is really there)."""
    expected = reference_at(precision)
    if precision == "highest":
        assert_close(actual, expected, **GEMM_TOL)
    else:
        scale = max(1.0, float(np.abs(expected).max()))
        assert_close(actual, expected, rtol=2e-5, atol=2e-5 * scale)


def kernel_prefix(name):
    """The entry-point name without its tile suffix: 'gemm_nn_tf32' of 'gemm_nn_tf32_128x32'."""
    return name.rsplit("_", 1)[0]


def force(monkeypatch, tile=None, splits=None):
    """Make the launcher use ``tile`` and/or ``splits`` K splits whatever the problem size."""
    if tile is not None:
        monkeypatch.setattr(gemm_launch, "choose_tile", lambda m, n, k: tile)
    if splits is not None:
        def split(blocks, k_tiles):
            per_split = -(-k_tiles // splits)
            return -(-k_tiles // per_split), per_split
        monkeypatch.setattr(gemm_launch, "choose_split_k", split)


class Launch(NamedTuple):
    """One CUDA C launch: the entry point, its grid and its integer scalars in parameter order."""
    name: str
    grid: tuple
    ints: tuple

    def gemm_size(self):
        """(M, N, K) of a gemm_* or conv2d_* launch (see the operand comments in kernels/conv.cu)."""
        if self.name.startswith("gemm_"):
            return self.ints[:3]
        batch, height, width, channels, out_h, out_w, filters, kh, kw = self.ints[:9]
        if self.name.startswith("conv2d_forward"):
            return batch * out_h * out_w, filters, kh * kw * channels
        if self.name.startswith("conv2d_backward_data"):
            return batch * height * width, channels, kh * kw * filters
        return kh * kw * channels, filters, batch * out_h * out_w


@pytest.fixture
def launches(monkeypatch):
    """The list of every CUDA C launch the test makes, in order."""
    recorded = []
    real = runtime.cuda_c_function

    def recording(filename, name):
        function = real(filename, name)

        def launch(grid, block, args, **options):
            ints = tuple(int(a) for a in args if isinstance(a, (np.int32, np.int64)))
            recorded.append(Launch(name, tuple(grid), ints))
            return function(grid, block, args, **options)
        return launch
    monkeypatch.setattr(runtime, "cuda_c_function", recording)
    return recorded


def assert_crosses_tiles(launch, tile, vector_stores):
    """``launch`` of ``tile`` covers several tiles along M and N with a partial last tile in both, and its
    N makes the epilogue take the float4 stores (N % 4 == 0) or the scalar ones."""
    m, n, _ = launch.gemm_size()
    assert launch.name.endswith(tile.suffix), launch
    assert launch.grid[0] > 1 and launch.grid[1] > 1, launch
    assert m % tile.rows and n % tile.cols, launch
    assert (n % 4 == 0) == vector_stores, launch
