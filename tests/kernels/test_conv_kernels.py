"""CUDA C convolution kernels (kernels/conv.cu, and the tensor-core conv_tc.cu) vs the NumPy reference at the
same precision.

Emulated: tiny shapes that still cross tile edges, stride 2, odd 'same' padding, 1 and 3 channels, batch 1,
every fused activation, every tile shape and the split-K path.  gpu: the article model's real layers.
"""
import numpy as np
import pytest
from cuda_c_helpers import ALL_TILES, GEMM_TOL, TENSOR_CORE_TAGS, TILE_IDS, assert_crosses_tiles, assert_matches, force
from ops import assert_close, random, window_case, window_cases

from gpucnn import reference
from gpucnn.contract.activations import FUSED_ACTIVATIONS
from gpucnn.contract.precision import PRECISIONS
from gpucnn.cuda import conv as conv_launchers
from gpucnn.cuda import gemm as gemm_launch

# The stride-2 'same' case on an odd size with three channels, for the per-activation and no-bias tests.
STRIDE_2_SAME = window_case((2, 9, 8, 3), (3, 3), (2, 2), "same", 7)


def _problem(rng, case):
    x_shape, (kh, kw), strides, padding, filters = case
    x = random(x_shape, rng)
    w = random((kh, kw, x_shape[3], filters), rng)
    b = random((filters,), rng)
    return x, w, b, strides, padding


def _check_all_ops(case, rng, activation="relu", with_bias=True, precision="highest"):
    x, w, b, strides, padding = _problem(rng, case)
    b = b if with_bias else None
    assert_matches(conv_launchers.conv2d_forward(x, w, b, strides, padding, activation, 0.3, precision=precision),
                   lambda p: reference.conv2d_forward(x, w, b, strides, padding, activation, 0.3, precision=p),
                   precision)
    dy = random(reference.conv2d_forward(x, w, b, strides, padding).shape, rng)
    assert_matches(conv_launchers.conv2d_backward_data(dy, w, x.shape, strides, padding, precision=precision),
                   lambda p: reference.conv2d_backward_data(dy, w, x.shape, strides, padding, precision=p),
                   precision)
    assert_matches(conv_launchers.conv2d_backward_filter(x, dy, w.shape[:2], strides, padding, precision=precision),
                   lambda p: reference.conv2d_backward_filter(x, dy, w.shape[:2], strides, padding, precision=p),
                   precision)


@window_cases()
def test_conv_ops_match_reference(emulated, x_shape, window, strides, padding, filters):
    _check_all_ops((x_shape, window, strides, padding, filters), np.random.default_rng(1))


# The tensor-core kernels on the window cases with 1 to 4 channels, batch 1 and 2, stride 2, 'same' on odd
# sizes and on one side only, strides that skip rows, F > 32.
TENSOR_CORE_CASES = [window_case((1, 7, 5, 1), (3, 3), (2, 2), "same", 1),
                     window_case((2, 9, 8, 3), (3, 3), (2, 2), "same", 7),
                     window_case((2, 6, 7, 4), (2, 3), (1, 2), "same", 33),
                     window_case((1, 11, 10, 2), (5, 4), (2, 3), "valid", 3)]


@pytest.mark.parametrize("precision", ["high", "medium"])
@window_cases(TENSOR_CORE_CASES)
def test_tensor_core_conv_ops_match_reference(emulated, x_shape, window, strides, padding, filters, precision):
    _check_all_ops((x_shape, window, strides, padding, filters), np.random.default_rng(1), precision=precision)


@pytest.mark.parametrize("activation", FUSED_ACTIVATIONS)
def test_forward_epilogue_applies_each_activation(emulated, activation):
    _check_all_ops(STRIDE_2_SAME, np.random.default_rng(2), activation)


def test_forward_without_bias(emulated):
    _check_all_ops(STRIDE_2_SAME, np.random.default_rng(3), "linear", with_bias=False)


# The three ops of each case cross tiles along M and N for every tile shape, with partial last tiles: M is
# 162 input or output pixels or 4·C+ taps, N is 129+ channels or 130+ filters.  Scalar stores: N odd or 2
# mod 4; float4 stores: every N a multiple of 4 (and split in 2 along K, so each tile's split-K path runs).
TILE_CASES = {
    "scalar": (((2, 9, 9, 129), (3, 2), (1, 1), "same", 130), 1),
    "float4-split": (((2, 9, 9, 132), (2, 2), (1, 1), "same", 132), 2),
}


@pytest.mark.parametrize("kernels", ["fp32", "tensor-cores"])
@pytest.mark.parametrize("stores", TILE_CASES)
@pytest.mark.parametrize("tile", ALL_TILES, ids=TILE_IDS)
def test_every_tile_shape_crosses_tile_edges(emulated, monkeypatch, launches, tile, stores, kernels):
    case, splits = TILE_CASES[stores]
    force(monkeypatch, tile=tile, splits=splits)
    # Tensor cores: BF16 for half the tiles, TF32 for the other half (the opposite of test_gemm_kernels).
    precision = "highest" if kernels == "fp32" else ("medium", "high")[ALL_TILES.index(tile) % 2]
    _check_all_ops(case, np.random.default_rng(4), "leaky_relu", precision=precision)
    tiled = [launch for launch in launches if launch.name != "split_k_reduce"]
    tag = "" if precision == "highest" else f"{TENSOR_CORE_TAGS[precision]}_"
    assert [launch.name for launch in tiled] == [f"{op}_{tag}{tile.suffix}" for op in (
        "conv2d_forward", "conv2d_backward_data", "conv2d_backward_filter")]
    for launch in tiled:
        assert_crosses_tiles(launch, tile, vector_stores=stores != "scalar")
        assert launch.grid[2] == splits, launch


@pytest.mark.parametrize("stores", TILE_CASES)
def test_two_blocks_per_sm_backward_filter_tile_crosses_tile_edges(emulated, monkeypatch, launches, stores):
    """The __launch_bounds__(256, 2) candidate exists for backward-filter only (the others spill)."""
    case, splits = TILE_CASES[stores]
    force(monkeypatch, tile=gemm_launch.LARGE_TILE_TWO_BLOCKS, splits=splits)
    rng = np.random.default_rng(7)
    x, w, _, strides, padding = _problem(rng, case)
    dy = random(reference.conv2d_forward(x, w, None, strides, padding).shape, rng)
    assert_close(conv_launchers.conv2d_backward_filter(x, dy, w.shape[:2], strides, padding),
                 reference.conv2d_backward_filter(x, dy, w.shape[:2], strides, padding), **GEMM_TOL)
    tiled = [launch for launch in launches if launch.name != "split_k_reduce"]
    assert [launch.name for launch in tiled] == ["conv2d_backward_filter_128x128_2blocks"]
    assert_crosses_tiles(tiled[0], gemm_launch.LARGE_TILE_TWO_BLOCKS, vector_stores=stores != "scalar")
    assert tiled[0].grid[2] == splits


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("channels", [1, 3, 4, 5])
def test_backward_data_of_few_channels_takes_the_narrow_kernel(emulated, monkeypatch, launches, channels,
                                                               precision):
    """Up to 4 input channels at 'highest': one warp per input pixel (no GEMM tile, which would waste 31/32
    of itself on one channel); 5 take the GEMM, and so do the tensor-core precisions (the narrow kernel is
    FP32).  40 filters make the lanes loop past 32; stride 2 with 'same' padding skips taps; 2 × 9 × 9
    pixels wrap the 16 blocks × 8 warps the grid is capped at here."""
    monkeypatch.setattr(conv_launchers, "sm_count", lambda: 1)
    rng = np.random.default_rng(8)
    for strides, padding in (((2, 2), "same"), ((1, 1), "valid")):
        x, w = random((2, 9, 9, channels), rng), random((3, 3, channels, 40), rng)
        dy = random(reference.conv2d_forward(x, w, None, strides, padding).shape, rng)
        assert_matches(conv_launchers.conv2d_backward_data(dy, w, x.shape, strides, padding, precision=precision),
                       lambda p: reference.conv2d_backward_data(dy, w, x.shape, strides, padding, precision=p),
                       precision)
    narrow = channels <= conv_launchers.NARROW_CHANNELS and precision == "highest"
    assert all((launch.name == "conv2d_backward_data_narrow") == narrow for launch in launches), launches
    if narrow:
        assert all(launch.grid == (16,) for launch in launches), launches


@pytest.mark.parametrize("activation, precision", [("linear", "highest"), ("sigmoid", "highest"),
                                                   ("sigmoid", "high"), ("linear", "medium")])
def test_split_k_partial_sums_and_epilogue(emulated, monkeypatch, activation, precision):
    force(monkeypatch, tile=gemm_launch.SMALL_TILE, splits=3)
    _check_all_ops(((2, 8, 9, 6), (3, 3), (1, 1), "valid", 10), np.random.default_rng(5), activation,
                   precision=precision)


def test_backward_filter_is_deterministic(emulated, monkeypatch):
    force(monkeypatch, splits=4)
    rng = np.random.default_rng(6)
    x = random((2, 10, 10, 3), rng)
    dy = random((2, 8, 8, 9), rng)
    first = conv_launchers.conv2d_backward_filter(x, dy, (3, 3), (1, 1), "valid")
    second = conv_launchers.conv2d_backward_filter(x, dy, (3, 3), (1, 1), "valid")
    assert np.array_equal(first, second)
    assert_close(first, reference.conv2d_backward_filter(x, dy, (3, 3), (1, 1), "valid"), **GEMM_TOL)


def test_launcher_checks_what_only_a_device_needs(emulated):
    # The op's own argument checks are the contract's, tested on every backend in test_contract.py.
    x = np.zeros((1, 5, 5, 2), np.float32)
    w = np.zeros((3, 3, 2, 4), np.float32)
    with pytest.raises(TypeError, match="`x` must have dtype float32, got float64"):
        conv_launchers.conv2d_forward(x.astype(np.float64), w, None, (1, 1), "valid")
    with pytest.raises(ValueError, match=r"`x` must not be empty, got shape \(0, 5, 5, 2\)"):
        conv_launchers.conv2d_forward(x[:0], w, None, (1, 1), "valid")


# The article model (100x100x1 -> Conv 512 -> pool 3 -> Conv 256 -> pool 3 -> Conv 128, 3x3 'valid') and
# two common shapes.  Batches are cut where the float64-free NumPy reference would take too long.
GPU_CASES = [
    ((16, 100, 100, 1), (3, 3), (1, 1), "valid", 512),
    ((16, 32, 32, 512), (3, 3), (1, 1), "valid", 256),
    ((128, 10, 10, 256), (3, 3), (1, 1), "valid", 128),
    ((8, 56, 56, 64), (3, 3), (1, 1), "same", 64),
    ((128, 28, 28, 1), (3, 3), (1, 1), "same", 32),
    ((8, 57, 57, 3), (3, 3), (2, 2), "same", 40),
]


@pytest.mark.gpu
@pytest.mark.parametrize("case", GPU_CASES, ids=["article-1", "article-2", "article-3", "64to64-56", "1to32-28",
                                                 "stride2-odd"])
def test_conv_ops_match_reference_on_gpu(gpu, case):
    import cupy
    rng = np.random.default_rng(7)
    x, w, b, strides, padding = _problem(rng, case)
    # Long reductions (K up to 4608 for the GEMMs, 14400+ for dW) accumulate float32 rounding.
    tol = dict(rtol=2e-3, atol=2e-3)
    y = reference.conv2d_forward(x, w, b, strides, padding, "relu")
    x_d, w_d, b_d = cupy.asarray(x), cupy.asarray(w), cupy.asarray(b)
    assert_close(conv_launchers.conv2d_forward(x_d, w_d, b_d, strides, padding, "relu"), y, **tol)
    dy = random(y.shape, rng)
    dy_d = cupy.asarray(dy)
    assert_close(conv_launchers.conv2d_backward_data(dy_d, w_d, x.shape, strides, padding),
                 reference.conv2d_backward_data(dy, w, x.shape, strides, padding), **tol)
    dw = conv_launchers.conv2d_backward_filter(x_d, dy_d, w.shape[:2], strides, padding)
    assert_close(dw, reference.conv2d_backward_filter(x, dy, w.shape[:2], strides, padding), rtol=2e-3,
                  atol=2e-3 * np.sqrt(x.shape[0] * y.shape[1] * y.shape[2]))
    again = conv_launchers.conv2d_backward_filter(x_d, dy_d, w.shape[:2], strides, padding)
    assert bool(cupy.array_equal(dw, again))
