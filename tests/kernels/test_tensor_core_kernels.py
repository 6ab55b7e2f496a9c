"""Tensor-core kernels (kernels/gemm_tc.cu, conv_tc.cu through nvcuda::wmma) on the emulator against the
reference at the same precision (operands rounded to TF32 / BF16, FP32 accumulation): every Dense and conv
pass, every tile shape across tile edges with partial tiles, float4 and scalar stores, split-K, and the
global precision setting choosing these kernels."""
import numpy as np
import pytest
from cuda_c_helpers import ALL_TILES, TILE_IDS, assert_crosses_tiles, force, launches, random  # noqa: F401

from gpucnn import config, reference
from gpucnn.cuda import conv as conv_launchers
from gpucnn.cuda import dense as dense_launchers

PRECISIONS = {"high": "tf32", "medium": "bf16"}


def assert_same_precision(actual, expected_same, expected_exact):
    """``actual`` matches the reference at its precision far more closely than the exact FP32 result: the
    kernel rounds exactly as the reference does, only the order of the FP32 sums differs."""
    scale = max(1.0, float(np.abs(expected_same).max()))
    np.testing.assert_allclose(actual, expected_same, rtol=2e-5, atol=2e-5 * scale)
    assert np.abs(actual - expected_exact).max() > 1e-4 * scale


def _dense(rng, precision, batch, features, units, activation="relu"):
    x, w = random(rng, (batch, features)), random(rng, (features, units))
    b, dy = random(rng, (units,)), random(rng, (batch, units))
    for kernel, ref in (
            (dense_launchers.dense_forward(x, w, b, activation, 0.3, precision=precision),
             lambda p: reference.dense_forward(x, w, b, activation, 0.3, precision=p)),
            (dense_launchers.dense_backward_data(dy, w, precision=precision),
             lambda p: reference.dense_backward_data(dy, w, precision=p)),
            (dense_launchers.dense_backward_weights(x, dy, precision=precision),
             lambda p: reference.dense_backward_weights(x, dy, precision=p))):
        assert_same_precision(kernel, ref(precision), ref(None))


def _conv(rng, precision, x_shape, kernel_size, filters, strides, padding, activation="leaky_relu"):
    x = random(rng, x_shape)
    w = random(rng, (*kernel_size, x_shape[3], filters))
    b = random(rng, (filters,))
    y = reference.conv2d_forward(x, w, b, strides, padding)
    dy = random(rng, y.shape)
    for kernel, ref in (
            (conv_launchers.conv2d_forward(x, w, b, strides, padding, activation, 0.3, precision=precision),
             lambda p: reference.conv2d_forward(x, w, b, strides, padding, activation, 0.3, precision=p)),
            (conv_launchers.conv2d_backward_data(dy, w, x_shape, strides, padding, precision=precision),
             lambda p: reference.conv2d_backward_data(dy, w, x_shape, strides, padding, precision=p)),
            (conv_launchers.conv2d_backward_filter(x, dy, kernel_size, strides, padding, precision=precision),
             lambda p: reference.conv2d_backward_filter(x, dy, kernel_size, strides, padding, precision=p))):
        assert_same_precision(kernel, ref(precision), ref(None))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_dense_passes_match_the_reference_at_their_precision(emulated, launches, precision):
    _dense(np.random.default_rng(0), precision, 5, 70, 9)
    tag = PRECISIONS[precision]
    assert [launch.name.rsplit("_", 1)[0] for launch in launches] == [f"gemm_{op}_{tag}" for op in ("nn", "nt", "tn")]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_conv_passes_match_the_reference_at_their_precision(emulated, launches, precision):
    # Stride 2 with 'same' padding, channels and filters not multiples of a fragment.
    _conv(np.random.default_rng(1), precision, (2, 7, 6, 3), (3, 3), 5, (2, 2), "same")
    tag = PRECISIONS[precision]
    assert [launch.name.rsplit("_", 1)[0] for launch in launches] == [
        f"conv2d_{op}_{tag}" for op in ("forward", "backward_data", "backward_filter")]


# (batch, features, units, K splits) as in test_gemm_kernels: every GEMM crosses tiles along M and N with
# partial last tiles; odd N takes the scalar stores, N % 4 == 0 the float4 ones with split-K.
TILE_CASES = {"scalar": (130, 133, 131, 1), "float4-split": (130, 132, 136, 2)}


@pytest.mark.parametrize("stores", TILE_CASES)
@pytest.mark.parametrize("tile", ALL_TILES, ids=TILE_IDS)
def test_every_tile_shape_crosses_tile_edges(emulated, monkeypatch, launches, tile, stores):
    batch, features, units, splits = TILE_CASES[stores]
    force(monkeypatch, tile=tile, splits=splits)
    precision = "high" if tile in ALL_TILES[::2] else "medium"
    _dense(np.random.default_rng(2), precision, batch, features, units, "sigmoid")
    tiled = [launch for launch in launches if launch.name != "split_k_reduce"]
    tag = PRECISIONS[precision]
    assert [launch.name for launch in tiled] == [f"gemm_{op}_{tag}_{tile.suffix}" for op in ("nn", "nt", "tn")]
    for launch in tiled:
        assert_crosses_tiles(launch, tile, vector_stores=stores != "scalar")
        assert launch.grid[2] == splits, launch


@pytest.mark.parametrize("precision", PRECISIONS)
def test_conv_split_k_is_deterministic(emulated, monkeypatch, launches, precision):
    force(monkeypatch, splits=3)
    rng = np.random.default_rng(3)
    _conv(rng, precision, (3, 9, 9, 4), (3, 3), 6, (1, 1), "valid", "sigmoid")
    assert sum(launch.name == "split_k_reduce" for launch in launches) == 3
    x, dy = random(rng, (3, 9, 9, 4)), random(rng, (3, 7, 7, 6))
    first = conv_launchers.conv2d_backward_filter(x, dy, (3, 3), 1, "valid", precision=precision)
    assert np.array_equal(first, conv_launchers.conv2d_backward_filter(x, dy, (3, 3), 1, "valid",
                                                                       precision=precision))


def test_global_setting_picks_the_kernels(emulated, monkeypatch, launches):
    rng = np.random.default_rng(4)
    x, w = random(rng, (3, 4)), random(rng, (4, 2))
    monkeypatch.setattr(config, "_precision", "medium")
    dense_launchers.dense_forward(x, w, None)
    monkeypatch.setattr(config, "_precision", "highest")
    dense_launchers.dense_forward(x, w, None)
    dense_launchers.dense_forward(x, w, None, precision="high")
    assert [launch.name.rsplit("_", 1)[0] for launch in launches] == ["gemm_nn_bf16", "gemm_nn", "gemm_nn_tf32"]


def test_bad_precision_is_refused(emulated):
    x = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="Argument `precision`.*'low'"):
        dense_launchers.dense_forward(x, x, None, precision="low")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", PRECISIONS)
def test_tensor_core_passes_match_the_reference_on_gpu(gpu, precision):
    import cupy
    rng = np.random.default_rng(6)
    x, w, b = random(rng, (64, 32, 32, 16)), random(rng, (3, 3, 16, 48)), random(rng, (48,))
    dy = random(rng, (64, 16, 16, 48))
    on_gpu = [cupy.asarray(a) for a in (x, w, b, dy)]
    tol = dict(rtol=1e-3, atol=1e-3 * np.sqrt(64 * 16 * 16))
    np.testing.assert_allclose(conv_launchers.conv2d_forward(*on_gpu[:3], 2, "same", "relu", precision=precision).get(),
                               reference.conv2d_forward(x, w, b, 2, "same", "relu", precision=precision), **tol)
    np.testing.assert_allclose(
        conv_launchers.conv2d_backward_data(on_gpu[3], on_gpu[1], x.shape, 2, "same", precision=precision).get(),
        reference.conv2d_backward_data(dy, w, x.shape, 2, "same", precision=precision), **tol)
    np.testing.assert_allclose(
        conv_launchers.conv2d_backward_filter(on_gpu[0], on_gpu[3], (3, 3), 2, "same", precision=precision).get(),
        reference.conv2d_backward_filter(x, dy, (3, 3), 2, "same", precision=precision), **tol)
    a, d = random(rng, (300, 500)), random(rng, (300, 70))
    np.testing.assert_allclose(
        dense_launchers.dense_backward_weights(cupy.asarray(a), cupy.asarray(d), precision=precision).get(),
        reference.dense_backward_weights(a, d, precision=precision), rtol=1e-3, atol=1e-2)
