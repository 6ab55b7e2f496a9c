"""Warp collectives, atomics, barrier variants, dynamic shared memory and the watchdog, each against an
independent NumPy computation."""
from pathlib import Path

import numpy as np
import pytest

from gpucnn import emulator

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def builtins():
    return emulator.load_module(HERE / "builtins.cu")


def test_warp_shuffles_and_votes(builtins):
    rng = np.random.default_rng(1)
    warps = 4
    values = rng.integers(-3, 10, size=32 * warps).astype(np.float32)  # small ints: sums are exact
    values[32:64] = np.abs(values[32:64]) + 1  # one warp where every vote is true
    outputs = [np.zeros_like(values) for _ in range(4)]
    votes = np.zeros(values.size, np.uint64)
    builtins.get_function("warp_ops")((2,), (64,), (values, *outputs, votes))
    scan, total, down, bcast = outputs

    by_warp = values.reshape(warps, 32)
    np.testing.assert_array_equal(scan, np.cumsum(values.reshape(-1, 8), axis=1).ravel())
    np.testing.assert_array_equal(total, np.repeat(by_warp.sum(axis=1), 32))
    shifted = np.concatenate([by_warp[:, 5:], by_warp[:, 27:]], axis=1)  # lanes 27..31 keep their own value
    np.testing.assert_array_equal(down, shifted.ravel())
    np.testing.assert_array_equal(bcast, np.repeat(by_warp[:, 3], 32))
    positive = by_warp > 0
    ballots = (positive * (1 << np.arange(32, dtype=np.uint64))).sum(axis=1).astype(np.uint64)
    expected = ballots | positive.any(axis=1).astype(np.uint64) << 32 | positive.all(axis=1).astype(np.uint64) << 33
    np.testing.assert_array_equal(votes, np.repeat(expected, 32))


def test_atomics_from_many_blocks(builtins):
    rng = np.random.default_rng(2)
    keys = rng.integers(0, 16, size=3000).astype(np.int32)
    histogram = np.zeros(16, np.int32)
    extrema = np.array([np.iinfo(np.int32).max, np.iinfo(np.int32).min], np.int32)
    total = np.zeros(1, np.float32)
    cas_count = np.zeros(1, np.uint32)
    builtins.get_function("atomics")((-(-keys.size // 128),), (128,),
                                     (keys, np.int32(keys.size), histogram, extrema, total, cas_count))
    np.testing.assert_array_equal(histogram, np.bincount(keys, minlength=16))
    np.testing.assert_array_equal(extrema, [keys.min(), keys.max()])
    assert total[0] == keys.sum()  # integers below 2**24: exact in any order
    assert cas_count[0] == keys.size


def test_syncthreads_count_and_or(builtins):
    values = np.array([[1, -1, 2, 3] * 16, [-1] * 64, [5] * 64], np.float32).ravel()
    counts = np.zeros(3, np.int32)
    flags = np.zeros(3, np.int32)
    builtins.get_function("barrier_votes")((3,), (64,), (values, counts, flags))
    positive = values.reshape(3, 64) > 0
    np.testing.assert_array_equal(counts, positive.sum(axis=1))
    np.testing.assert_array_equal(flags, positive.any(axis=1) | positive.all(axis=1) << 1)


def test_dynamic_shared_memory(builtins):
    data = np.arange(3 * 96, dtype=np.float32)
    builtins.get_function("reverse_blocks")((3,), (96,), (data,), shared_mem=96 * 4)
    np.testing.assert_array_equal(data, np.arange(3 * 96, dtype=np.float32).reshape(3, 96)[:, ::-1].ravel())


def test_barrier_not_reached_by_all_threads_is_an_error(builtins):
    kernel = builtins.get_function("early_exit_before_barrier")
    # Both blocks fail and run in parallel, so either may be the one reported.
    with pytest.raises(RuntimeError, match=r"early_exit_before_barrier block \([01],0,0\): __syncthreads "
                                           r"reached by 31 of 64 threads; 33 exited .*thread \(31,0,0\)"):
        kernel((2,), (64,), (np.int32(31),))
    kernel((2,), (64,), (np.int32(64),))  # the same kernel runs once every thread reaches the barrier


def test_shuffle_with_exited_lane_is_an_error(builtins):
    out = np.zeros(32, np.float32)
    with pytest.raises(RuntimeError, match=r"__shfl_down_sync\(mask=0xffffffff\) in warp 0 .* lane 7 exited"):
        builtins.get_function("lane_exits_before_shuffle")((1,), (32,), (np.int32(7), out))


def test_trap_is_an_error_naming_the_block(builtins):
    with pytest.raises(RuntimeError, match=r"block \(3,0,0\): __trap\(\) called by thread \(0,0,0\)"):
        builtins.get_function("trap_in_block")((5,), (32,), (np.int32(3),))


def test_activemask_leaves_out_exited_lanes(builtins):
    masks = np.zeros(64, np.uint32)
    builtins.get_function("active_lanes")((1,), (64,), (np.int32(40), masks))
    lanes_alive = [(1 << 32) - 1] * 32 + [(1 << 8) - 1] * 8  # warp 1 keeps lanes 0..7 (threads 32..39)
    np.testing.assert_array_equal(masks, lanes_alive + [0] * 24)
