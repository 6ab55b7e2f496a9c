"""The emulator runs plain CUDA C kernels (static shared memory, __syncthreads, index built-ins) like a GPU."""
from pathlib import Path

import numpy as np
import pytest

from gpucnn import emulator

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def basic():
    return emulator.load_module(HERE / "basic.cu")


@pytest.mark.parametrize("rows, cols", [(1, 1), (16, 16), (37, 50), (70, 3)])
def test_transpose_matches_numpy(basic, rows, cols):
    rng = np.random.default_rng(rows * 100 + cols)
    a = rng.standard_normal((rows, cols), dtype=np.float32)
    out = np.full((cols, rows), np.nan, np.float32)
    basic.get_function("transpose")((-(-cols // 16), -(-rows // 16)), (16, 16),
                                    (a, out, np.int32(rows), np.int32(cols)))
    np.testing.assert_array_equal(out, a.T)


def test_block_reduction_matches_numpy(basic):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000, dtype=np.float32)
    blocks = -(-x.size // 256)
    out = np.zeros(blocks, np.float32)
    # A Python int is what cupy passes for a long long (as int64), so it is accepted here.
    basic.get_function("block_sums")((blocks,), (256,), (x, out, x.size))
    expected = np.pad(x, (0, blocks * 256 - x.size)).reshape(blocks, 256).astype(np.float64).sum(axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_three_dimensional_indices(basic):
    n = 5 * 3 * 2 * 4 * 2 * 3 - 7
    x = np.arange(n, dtype=np.float64)
    y = np.zeros(n + 7)
    # A Python float is what cupy passes for a double; float and unsigned int need NumPy scalars.
    basic.get_function("affine_3d")((5, 3, 2), (4, 2, 3), (x, y[:n], 2.0, np.float32(0.5), np.uint32(n)))
    np.testing.assert_array_equal(y[:n], 2.0 * x + 0.5)
    np.testing.assert_array_equal(y[n:], 0.0)
