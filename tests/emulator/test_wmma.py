"""nvcuda::wmma and __nv_bfloat16 in the C++ emulator: results against NumPy with the operand rounding of
gpucnn.reference.precision, and planted bugs (a lane skipping mma_sync, a misaligned pointer, a leading
dimension that is not a multiple of 16 bytes or differs between lanes, an unconverted TF32 operand, a warp
of fewer than 32 threads) reported as launch errors that name the collective and the lane."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpucnn import emulator
from gpucnn.reference.precision import round_to_bf16, round_to_tf32

SOURCE = Path(__file__).with_name("wmma.cu")
NONE, LANE_SKIPS_MMA, MISALIGNED_POINTER, UNCONVERTED_TF32, LANES_DISAGREE_ON_LDM = range(5)


@pytest.fixture(scope="module")
def module():
    return emulator.load_module(SOURCE)


def _aligned(values):
    """A copy of ``values`` at a 32-byte aligned address, as wmma needs (CuPy's allocations are 256-byte
    aligned; NumPy guarantees 16)."""
    buffer = np.zeros(values.size + 8, np.float32)
    start = (-buffer.ctypes.data % 32) // 4
    array = buffer[start:start + values.size].reshape(values.shape)
    array[...] = values
    return array


def _tf32_inputs(lda, ldb, seed=0):
    rng = np.random.default_rng(seed)
    a = np.zeros((16, lda), np.float32)
    a[:, :8] = rng.standard_normal((16, 8))
    b = np.zeros((16, ldb), np.float32)  # column n of B is row n here (column-major storage)
    b[:, :8] = rng.standard_normal((16, 8))
    c = rng.standard_normal((16, 16)).astype(np.float32)
    return _aligned(a), _aligned(b), _aligned(c)


def _tf32_launch(module, a, b, c, lda, ldb, col_major=0, bug=NONE, threads=32):
    d = _aligned(np.zeros((16, 16), np.float32))
    module.get_function("tf32_tile")((1,), (threads,), (a, b, c, d, np.int32(lda), np.int32(ldb),
                                                         np.int32(col_major), np.int32(bug)))
    return d


def _tf32_expected(a, b, c):
    return (round_to_tf32(a[:, :8]).astype(np.float64) @ round_to_tf32(b[:, :8]).T.astype(np.float64)
            + c).astype(np.float32)


@pytest.mark.parametrize("lda, ldb", [(8, 8), (12, 16)])
@pytest.mark.parametrize("col_major", [0, 1])
def test_tf32_tile_matches_rounded_numpy(module, lda, ldb, col_major):
    a, b, c = _tf32_inputs(lda, ldb)
    d = _tf32_launch(module, a, b, c, lda, ldb, col_major)
    expected = _tf32_expected(a, b, c)
    np.testing.assert_allclose(d.T if col_major else d, expected, rtol=1e-6, atol=1e-6)
    # TF32 rounding is visible: the exact float32 product differs by more than float32 rounding.
    assert np.abs(expected - (a[:, :8] @ b[:, :8].T + c)).max() > 1e-5


def test_bf16_tile_matches_rounded_numpy(module):
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((16, 16)).astype(np.float32) for _ in range(2))
    d = _aligned(np.zeros((16, 16), np.float32))
    module.get_function("bf16_tile")((1,), (32,), (a, b, d))
    expected = round_to_bf16(a).astype(np.float64) @ round_to_bf16(b).astype(np.float64)
    np.testing.assert_allclose(d, expected, rtol=1e-6, atol=1e-6)


def test_conversions_match_the_reference_rounding(module):
    rng = np.random.default_rng(2)
    values = np.concatenate([(rng.standard_normal(500) * np.exp(rng.uniform(-20, 20, 500))),
                             [1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-11, -(1 + 2**-11), np.inf, -np.inf, 0.0]]
                            ).astype(np.float32)
    bf16, tf32 = np.zeros_like(values), np.zeros_like(values)
    module.get_function("conversions")((4,), (128,), (values, bf16, tf32, np.int32(values.size)))
    np.testing.assert_array_equal(bf16, round_to_bf16(values))
    np.testing.assert_array_equal(tf32, round_to_tf32(values))


def test_a_wrong_but_legal_leading_dimension_gives_wrong_results(module):
    # A leading dimension of 8 floats where the rows are 12 apart is legal for wmma and reads other
    # entries: the comparison with the reference catches it.
    a, b, c = _tf32_inputs(12, 8)
    d = _tf32_launch(module, a, b, c, 8, 8)
    assert not np.allclose(d, _tf32_expected(a, b, c), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("bug, message", [
    (LANE_SKIPS_MMA, (r"wmma::mma_sync in warp 0 \(thread \(0,0,0\)\): lane 5 is at wmma::store_matrix_sync "
                      r"instead; every lane of the warp must call it together")),
    (MISALIGNED_POINTER, (r"wmma::load_matrix_sync in warp 0 .*: pointer 0x[0-9a-f]+ is misaligned: wmma needs "
                          r"a 256-bit \(32-byte\) aligned address")),
    (UNCONVERTED_TF32, r"wmma::mma_sync .*matrix_a element \d+ of lane \d+ is not a TF32 value"),
    (LANES_DISAGREE_ON_LDM, (r"wmma::load_matrix_sync .*lane 3 passed \(pointer 0x[0-9a-f]+, ldm 12, "
                             r"row-major\) but lane 0 \(pointer 0x[0-9a-f]+, ldm 8, row-major\)")),
])
def test_planted_bugs_fail_the_launch(module, bug, message):
    a, b, c = _tf32_inputs(8, 8)
    with pytest.raises(RuntimeError, match=r"kernel tf32_tile block \(0,0,0\): " + message):
        _tf32_launch(module, a, b, c, 8, 8, bug=bug)


def test_leading_dimension_must_be_a_multiple_of_16_bytes(module):
    a, b, c = _tf32_inputs(10, 8)
    with pytest.raises(RuntimeError, match=r"ldm 10 is not a multiple of 16 bytes \(4 elements of 4 bytes\)"):
        _tf32_launch(module, a, b, c, 10, 8)


def test_a_partial_warp_cannot_call_a_collective(module):
    a, b, c = _tf32_inputs(8, 8)
    with pytest.raises(RuntimeError, match=r"only 16 threads in this warp; a warp collective needs all 32 lanes"):
        _tf32_launch(module, a, b, c, 8, 8, threads=16)


def test_second_warp_of_a_block_runs_its_own_collectives(module):
    a, b, c = _tf32_inputs(8, 8)
    d = _tf32_launch(module, a, b, c, 8, 8, threads=64)  # both warps store the same tile
    np.testing.assert_allclose(d, _tf32_expected(a, b, c), rtol=1e-6, atol=1e-6)


def test_collectives_run_clean_under_thread_sanitizer(tmp_path):
    # sanitize='thread' runs every CUDA thread on its own OS thread: the collective then runs under the
    # block's mutex, and ThreadSanitizer must see no race in it (nor in the lanes reading its results).
    script = tmp_path / "tsan_wmma.py"
    script.write_text(
        "import sys\n"
        "import numpy as np\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from test_wmma import _aligned, _tf32_expected, _tf32_inputs\n"
        "from gpucnn import emulator\n"
        "module = emulator.load_module(sys.argv[1], sanitize='thread')\n"
        "a, b, c = _tf32_inputs(8, 8)\n"
        "d = _aligned(np.zeros((16, 16), np.float32))\n"
        "args = (a, b, c, d, np.int32(8), np.int32(8), np.int32(0))\n"
        "module.get_function('tf32_tile')((1,), (64,), (*args, np.int32(0)))\n"
        "np.testing.assert_allclose(d, _tf32_expected(a, b, c), rtol=1e-6, atol=1e-6)\n"
        "print('correct and clean', flush=True)\n"
        "try:\n"
        "    module.get_function('tf32_tile')((1,), (32,), (*args, np.int32(1)))\n"
        "except RuntimeError as error:\n"
        "    print(error, flush=True)\n")
    env = {**os.environ, **emulator.sanitizer_environment("thread"), "TSAN_OPTIONS": "halt_on_error=1"}
    result = subprocess.run([sys.executable, str(script), str(SOURCE), str(SOURCE.parent)], capture_output=True,
                            text=True, env=env, timeout=300, check=False)
    assert "correct and clean" in result.stdout, result.stderr
    assert "lane 5 is at wmma::store_matrix_sync instead" in result.stdout, result.stdout + result.stderr
    assert "ThreadSanitizer" not in result.stderr, result.stderr
