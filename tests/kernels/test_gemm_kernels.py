"""CUDA C GEMM kernels for Dense (kernels/gemm.cu, and the tensor-core gemm_tc.cu) vs the NumPy reference
at the same precision: forward with every fused activation, backward-data (dy·wᵀ) and backward-weights
(xᵀ·dy), every tile shape, split-K."""
import subprocess
import sys

import numpy as np
import pytest
from cuda_c_helpers import ALL_TILES, TENSOR_CORE_TAGS, TILE_IDS, assert_crosses_tiles, assert_matches, force
from ops import assert_close, on_device, random

from gpucnn import reference
from gpucnn.contract.activations import FUSED_ACTIVATIONS
from gpucnn.contract.precision import PRECISIONS
from gpucnn.cuda import dense as dense_launchers
from gpucnn.cuda import gemm


def _check_all_ops(rng, batch, features, units, activation="relu", with_bias=True, precision="highest"):
    x = random((batch, features), rng)
    w = random((features, units), rng)
    b = random((units,), rng) if with_bias else None
    assert_matches(dense_launchers.dense_forward(x, w, b, activation, 0.3, precision=precision),
                   lambda p: reference.dense_forward(x, w, b, activation, 0.3, precision=p), precision)
    dy = random((batch, units), rng)
    assert_matches(dense_launchers.dense_backward_data(dy, w, precision=precision),
                   lambda p: reference.dense_backward_data(dy, w, precision=p), precision)
    assert_matches(dense_launchers.dense_backward_weights(x, dy, precision=precision),
                   lambda p: reference.dense_backward_weights(x, dy, precision=p), precision)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("batch, features, units", [(1, 1, 1), (3, 5, 7), (5, 70, 9), (2, 9, 33)])
def test_dense_ops_match_reference(emulated, batch, features, units, precision):
    _check_all_ops(np.random.default_rng(batch * 100 + units), batch, features, units, precision=precision)


@pytest.mark.parametrize("activation", FUSED_ACTIVATIONS)
def test_forward_epilogue_applies_each_activation(emulated, activation):
    _check_all_ops(np.random.default_rng(1), 4, 12, 6, activation)


def test_forward_without_bias(emulated):
    _check_all_ops(np.random.default_rng(2), 4, 12, 6, "linear", with_bias=False)


# (batch, features, units, K splits): each GEMM (nn: batch×units, nt: batch×features, tn: features×units)
# crosses tiles along M and N for every tile shape, with partial last tiles.  Scalar stores: every N odd;
# float4 stores: every N a multiple of 4, split in 2 along K so each tile's split-K path runs too.
TILE_CASES = {"scalar": (130, 133, 131, 1), "float4-split": (130, 132, 136, 2)}


@pytest.mark.parametrize("kernels", ["fp32", "tensor-cores"])
@pytest.mark.parametrize("stores", TILE_CASES)
@pytest.mark.parametrize("tile", ALL_TILES, ids=TILE_IDS)
def test_every_tile_shape_crosses_tile_edges(emulated, monkeypatch, launches, tile, stores, kernels):
    batch, features, units, splits = TILE_CASES[stores]
    force(monkeypatch, tile=tile, splits=splits)
    # Tensor cores: TF32 for half the tiles, BF16 for the other half (each kernel family is one template).
    precision = "highest" if kernels == "fp32" else ("high", "medium")[ALL_TILES.index(tile) % 2]
    _check_all_ops(np.random.default_rng(3), batch, features, units, "sigmoid", precision=precision)
    tiled = [launch for launch in launches if launch.name != "split_k_reduce"]
    tag = "" if precision == "highest" else f"{TENSOR_CORE_TAGS[precision]}_"
    assert [launch.name for launch in tiled] == [f"gemm_{op}_{tag}{tile.suffix}" for op in ("nn", "nt", "tn")]
    for launch in tiled:
        assert_crosses_tiles(launch, tile, vector_stores=stores != "scalar")
        assert launch.grid[2] == splits, launch


def test_split_k_is_deterministic_and_applies_the_epilogue(emulated, monkeypatch, launches):
    # SM_COUNT 1 caps split_k_reduce at 16 blocks of 256 threads: 70×68 outputs make its grid-stride loop
    # wrap around.
    monkeypatch.setattr(gemm, "SM_COUNT", 1)
    force(monkeypatch, splits=3)
    rng = np.random.default_rng(4)
    _check_all_ops(rng, 70, 50, 68, "leaky_relu")
    reduces = [launch for launch in launches if launch.name == "split_k_reduce"]
    assert len(reduces) == 3 and reduces[0].grid[0] * 256 < 70 * 68, reduces
    x, dy = random((60, 5), rng), random((60, 3), rng)
    first = dense_launchers.dense_backward_weights(x, dy)
    assert np.array_equal(first, dense_launchers.dense_backward_weights(x, dy))


def test_tile_and_split_choice():
    # Independent of any kernel: the policy the launcher documents.
    assert gemm.choose_tile(10_000, 512, 9) == gemm.LARGE_TILE
    assert gemm.choose_tile(1000, 64, 64) == gemm.SMALL_TILE
    assert gemm.choose_tile(10_000, 8, 64) == gemm.FEW_COLUMNS_TILE
    assert gemm.choose_tile(9, 512, 10**6) == gemm.FEW_ROWS_TILE
    assert gemm.choose_split_k(1000, 500) == (1, 500)
    splits, per_split = gemm.choose_split_k(4, 10_000)
    assert splits > 1 and splits * per_split >= 10_000 > (splits - 1) * per_split


MISALIGNED_OUTPUT = """
import numpy as np
import gpucnn
from gpucnn.cuda import gemm
gpucnn.set_backend("emulated")
rng = np.random.default_rng(0)
x, w = rng.standard_normal((5, 8), dtype=np.float32), rng.standard_normal((8, 12), dtype=np.float32)
out = np.zeros(5 * 12 + 1, np.float32)[1:].reshape(5, 12)   # 4 bytes past a 16-byte boundary
assert out.ctypes.data % 16 == 4
gemm.launch_gemm("gemm.cu", "gemm_nn", x, w, (5, 12, 8), 5, 12, 8, out)
np.testing.assert_allclose(out, x @ w, rtol=1e-5, atol=1e-5)
print("ok")
"""


def test_output_view_off_a_16_byte_boundary_gets_scalar_stores():
    # The epilogue's float4 stores fault on a misaligned address (a GPU reports "misaligned address", the
    # emulator segfaults), so it runs in a child process; the kernel must fall back to scalar stores.
    result = subprocess.run([sys.executable, "-c", MISALIGNED_OUTPUT], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (result.returncode, result.stderr)


@pytest.mark.gpu
def test_output_view_off_a_16_byte_boundary_on_gpu(gpu):
    rng = np.random.default_rng(0)
    x, w = on_device(gpu, random((5, 8), rng)), on_device(gpu, random((8, 12), rng))
    out = gpu.xp.zeros(5 * 12 + 1, np.float32)[1:].reshape(5, 12)
    assert out.data.ptr % 16 == 4
    gemm.launch_gemm("gemm.cu", "gemm_nn", x, w, (5, 12, 8), 5, 12, 8, out)
    assert_close(out, x.get() @ w.get(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("position", range(3))
def test_sizes_leave_room_for_the_last_tiles_int32_indices(position):
    # The last tile computes row/column/k indices up to a tile past the size before its bounds checks:
    # a size just under 2**31 would wrap those indices to negative offsets on the GPU.
    sizes = [1, 1, 1]
    sizes[position] = 2**31 - 64
    with pytest.raises(ValueError, match=r"exceed 2147483519 \(2\*\*31 - 1 less a tile\).*Fix: split the batch"):
        gemm.check_gemm_size(*sizes, "op")
    sizes[position] = 2**31 - 1 - 128
    if position == 1:  # so many columns also need more column tiles than the grid holds
        with pytest.raises(ValueError, match="more than CUDA's grid allows"):
            gemm.check_gemm_size(*sizes, "op")
    else:
        gemm.check_gemm_size(*sizes, "op")


@pytest.mark.parametrize("rows", [1, 32, 4096])
def test_column_tiles_fit_in_the_grid(rows):
    # launch_gemm puts the column tiles on gridDim.y, which CUDA caps at 65535 (a launch past it fails
    # with 'invalid argument'): Dense(1) on a Flatten of 8.4M features has that many in backward-data.
    widest = gemm.MAX_GRID_Y * gemm.choose_tile(rows, 10**7, 1).cols
    gemm.check_gemm_size(rows, widest, 1, "dense_backward_data")
    with pytest.raises(ValueError, match=r"dense_backward_data: the GEMM columns 8388481 need 65536 tiles of 128, "
                                         r"more than CUDA's grid allows \(65535 along y\)\. Fix: narrow"):
        gemm.check_gemm_size(rows, widest + 1, 1, "dense_backward_data")


def test_launcher_checks_what_only_a_device_needs(emulated):
    # The op's own argument checks are the contract's, tested on every backend in test_contract.py.
    x, w = np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match="`w` must have dtype float32, got float16"):
        dense_launchers.dense_forward(x, w.astype(np.float16), None)
    with pytest.raises(ValueError, match=r"`x` must not be empty, got shape \(0, 3\)"):
        dense_launchers.dense_backward_weights(x[:0], np.zeros((0, 4), np.float32))



@pytest.mark.gpu
@pytest.mark.parametrize("batch, features, units", [(128, 512, 1), (128, 4608, 256), (1000, 1000, 1000),
                                                    (7, 3000, 33)])
def test_dense_ops_match_reference_on_gpu(gpu, batch, features, units):
    import cupy
    rng = np.random.default_rng(5)
    x, w, b = random((batch, features), rng), random((features, units), rng), random((units,), rng)
    dy = random((batch, units), rng)
    tol = dict(rtol=2e-3, atol=2e-3 * np.sqrt(max(batch, features)))
    x_d, w_d, b_d, dy_d = (cupy.asarray(a) for a in (x, w, b, dy))
    assert_close(dense_launchers.dense_forward(x_d, w_d, b_d, "sigmoid"),
                 reference.dense_forward(x, w, b, "sigmoid"), **tol)
    assert_close(dense_launchers.dense_backward_data(dy_d, w_d), reference.dense_backward_data(dy, w), **tol)
    dw = dense_launchers.dense_backward_weights(x_d, dy_d)
    assert_close(dw, reference.dense_backward_weights(x, dy), **tol)
    assert bool(cupy.array_equal(dw, dense_launchers.dense_backward_weights(x_d, dy_d)))


def test_compile_module_builds_the_module_without_a_launch(emulated, monkeypatch):
    from gpucnn.cuda import runtime
    built = []
    monkeypatch.setattr(runtime, "_emulated_module", built.append)
    runtime.compile_module("gemm.cu")
    assert built == ["gemm.cu"]


def test_kernel_functions_are_looked_up_once_per_process(emulated):
    # CuPy's RawModule.get_function builds a new RawKernel per call; the launchers reuse one.
    from gpucnn.cuda import runtime
    first = runtime.cuda_c_function("gemm.cu", "gemm_nn_64x64")
    assert runtime.cuda_c_function("gemm.cu", "gemm_nn_64x64") is first
    assert runtime.cuda_c_function("gemm.cu", "gemm_nn_128x128") is not first


def test_sm_count_is_the_default_off_the_gpu(emulated, monkeypatch):
    from gpucnn.cuda import runtime
    assert runtime.device_sm_count() is None and gemm.sm_count() == gemm.SM_COUNT == 132
    monkeypatch.setattr(runtime, "device_sm_count", lambda: 16)  # a small GPU: fewer blocks fill it
    assert gemm.sm_count() == 16
    assert gemm.choose_tile(1000, 64, 64) == gemm.SMALL_TILE
    assert gemm.choose_tile(2048, 1024, 64) == gemm.LARGE_TILE  # 16 × 8 blocks >= 16
    assert gemm.choose_split_k(16, 10_000) == (1, 10_000)


@pytest.mark.gpu
def test_sm_count_is_read_from_the_device(gpu):
    import cupy

    from gpucnn.cuda import runtime
    assert runtime.device_sm_count() == cupy.cuda.runtime.getDeviceProperties(0)["multiProcessorCount"]
