"""Tensor-core kernels (kernels/gemm_tc.cu, conv_tc.cu through nvcuda::wmma): their operands really are
rounded to TF32 / BF16 (the results differ from FP32 by the format's error and match the reference with
the same rounding), split-K stays deterministic, and the global precision setting chooses them.  Their
match with the reference at every tile shape, partial tile and split-K is tested with the FP32 kernels'
cases in test_gemm_kernels.py and test_conv_kernels.py."""
import numpy as np
import pytest
from cuda_c_helpers import TENSOR_CORE_TAGS, assert_matches, force, kernel_prefix
from ops import random

from gpucnn import config, reference
from gpucnn.cuda import conv as conv_launchers
from gpucnn.cuda import dense as dense_launchers

# The largest per-element error of TF32 / BF16 operand rounding relative to the sum of |products|.
FORMAT_ERROR = {"high": 2**-10, "medium": 2**-7}


def _ops(rng, precision):
    """(kernel result, reference at a given precision) for each conv and Dense pass; K = 70 for Dense and
    27-45 for conv, so the rounding error adds up well above the float32 one."""
    x, w, b = random((2, 7, 6, 3), rng), random((3, 3, 3, 5), rng), random((5,), rng)
    dy = random((2, 4, 3, 5), rng)
    a, v, d = random((5, 70), rng), random((70, 9), rng), random((5, 9), rng)
    conv = (2, "same")
    return {
        "conv2d_forward": (conv_launchers.conv2d_forward(x, w, b, *conv, precision=precision),
                           lambda p: reference.conv2d_forward(x, w, b, *conv, precision=p)),
        "conv2d_backward_data": (conv_launchers.conv2d_backward_data(dy, w, x.shape, *conv, precision=precision),
                                 lambda p: reference.conv2d_backward_data(dy, w, x.shape, *conv, precision=p)),
        "conv2d_backward_filter": (conv_launchers.conv2d_backward_filter(x, dy, (3, 3), *conv, precision=precision),
                                   lambda p: reference.conv2d_backward_filter(x, dy, (3, 3), *conv, precision=p)),
        "gemm_nn": (dense_launchers.dense_forward(a, v, None, precision=precision),
                    lambda p: reference.dense_forward(a, v, None, precision=p)),
        "gemm_nt": (dense_launchers.dense_backward_data(d, v, precision=precision),
                    lambda p: reference.dense_backward_data(d, v, precision=p)),
        "gemm_tn": (dense_launchers.dense_backward_weights(a, d, precision=precision),
                    lambda p: reference.dense_backward_weights(a, d, precision=p)),
    }


@pytest.mark.parametrize("precision", ["high", "medium"])
def test_operands_are_rounded_to_the_precision(emulated, launches, precision):
    results = _ops(np.random.default_rng(0), precision)
    for name, (actual, reference_at) in results.items():
        assert_matches(actual, reference_at, precision)
        exact = reference_at(None)
        error = np.abs(actual - exact).max() / np.abs(exact).max()
        assert 2**-16 < error < 45 * FORMAT_ERROR[precision], (name, error)  # rounded, within the bound
    tag = TENSOR_CORE_TAGS[precision]
    assert [kernel_prefix(launch.name) for launch in launches] == [f"{op}_{tag}" for op in results]


@pytest.mark.parametrize("precision", ["high", "medium"])
def test_conv_split_k_is_deterministic(emulated, monkeypatch, launches, precision):
    force(monkeypatch, splits=3)
    rng = np.random.default_rng(3)
    x, dy = random((3, 9, 9, 4), rng), random((3, 7, 7, 6), rng)
    first = conv_launchers.conv2d_backward_filter(x, dy, (3, 3), 1, "valid", precision=precision)
    assert [launch.grid[2] for launch in launches if launch.name != "split_k_reduce"] == [3]
    assert np.array_equal(first, conv_launchers.conv2d_backward_filter(x, dy, (3, 3), 1, "valid",
                                                                       precision=precision))
    assert_matches(first, lambda p: reference.conv2d_backward_filter(x, dy, (3, 3), 1, "valid", precision=p),
                   precision)


def test_global_setting_picks_the_kernels(emulated, monkeypatch, launches):
    rng = np.random.default_rng(4)
    x, w = random((3, 4), rng), random((4, 2), rng)
    monkeypatch.setattr(config, "_precision", "medium")
    dense_launchers.dense_forward(x, w, None)
    monkeypatch.setattr(config, "_precision", "highest")
    dense_launchers.dense_forward(x, w, None)
    dense_launchers.dense_forward(x, w, None, precision="high")
    assert [kernel_prefix(launch.name) for launch in launches] == ["gemm_nn_bf16", "gemm_nn", "gemm_nn_tf32"]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["high", "medium"])
def test_tensor_core_passes_match_the_reference_on_gpu(gpu, precision):
    import cupy
    rng = np.random.default_rng(6)
    x, w, b = random((64, 32, 32, 16), rng), random((3, 3, 16, 48), rng), random((48,), rng)
    dy = random((64, 16, 16, 48), rng)
    on_gpu = [cupy.asarray(a) for a in (x, w, b, dy)]
    tol = {"rtol": 1e-3, "atol": 1e-3 * np.sqrt(64 * 16 * 16)}
    np.testing.assert_allclose(conv_launchers.conv2d_forward(*on_gpu[:3], 2, "same", "relu", precision=precision).get(),
                               reference.conv2d_forward(x, w, b, 2, "same", "relu", precision=precision), **tol)
    np.testing.assert_allclose(
        conv_launchers.conv2d_backward_data(on_gpu[3], on_gpu[1], x.shape, 2, "same", precision=precision).get(),
        reference.conv2d_backward_data(dy, w, x.shape, 2, "same", precision=precision), **tol)
    np.testing.assert_allclose(
        conv_launchers.conv2d_backward_filter(on_gpu[0], on_gpu[3], (3, 3), 2, "same", precision=precision).get(),
        reference.conv2d_backward_filter(x, dy, (3, 3), 2, "same", precision=precision), **tol)
    a, d = random((300, 500), rng), random((300, 70), rng)
    np.testing.assert_allclose(
        dense_launchers.dense_backward_weights(cupy.asarray(a), cupy.asarray(d), precision=precision).get(),
        reference.dense_backward_weights(a, d, precision=precision), rtol=1e-3, atol=1e-2)
