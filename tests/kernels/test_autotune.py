"""The autotuner's logic on the CPU with an injected timer: candidate lists, the winner kept in memory and
on disk, keys by GPU/driver and kernel source, a corrupt cache file, concurrent writers, the switch, CUDA
graph capture, and the GEMM launcher running the tuned choice on the emulated backend."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ops import random

from gpucnn import reference
from gpucnn.cuda import autotune, gemm
from gpucnn.cuda import conv as conv_launchers
from gpucnn.cuda import dense as dense_launchers

CANDIDATES = [("128x128", 1), ("64x64", 2), ("128x32", 1)]


class FakeTimer:
    """Times each run by a fixed table instead of CUDA events, and records what it timed."""

    def __init__(self, times):
        self.times = times
        self.timed = []

    def __call__(self, run):
        run()
        candidate = run.args[0]
        self.timed.append(candidate)
        return self.times[candidate]


def _tuner(tmp_path, times=None, device="GPU X driver 13000", **options):
    timer = FakeTimer(times or {("128x128", 1): 3.0, ("64x64", 2): 1.0, ("128x32", 1): 2.0})
    return autotune.Autotuner(timer, device, tmp_path / "autotune.json", **options), timer


def test_times_every_candidate_once_and_keeps_the_fastest(tmp_path):
    tuner, timer = _tuner(tmp_path)
    ran = []
    assert tuner.choose(["gemm_nn", 100, 10, 7], "hash1", CANDIDATES, ran.append) == ("64x64", 2)
    assert timer.timed == CANDIDATES and ran == CANDIDATES
    assert tuner.choose(["gemm_nn", 100, 10, 7], "hash1", CANDIDATES, ran.append) == ("64x64", 2)
    assert timer.timed == CANDIDATES  # second sight: from memory, nothing timed


def test_winner_persists_on_disk_for_the_next_process(tmp_path):
    tuner, _ = _tuner(tmp_path)
    tuner.choose(["conv2d_forward", 1, 2], "hash1", CANDIDATES, lambda c: None)
    fresh, timer = _tuner(tmp_path)
    assert fresh.choose(["conv2d_forward", 1, 2], "hash1", CANDIDATES, lambda c: None) == ("64x64", 2)
    assert timer.timed == []
    entries = json.loads((tmp_path / "autotune.json").read_text())
    assert entries == {json.dumps(["GPU X driver 13000", "hash1", ["conv2d_forward", 1, 2]]): ["64x64", 2]}


@pytest.mark.parametrize("change", ["source", "device", "problem"])
def test_new_source_device_or_problem_is_tuned_again(tmp_path, change):
    tuner, _ = _tuner(tmp_path)
    tuner.choose(["gemm_tn", 5], "hash1", CANDIDATES, lambda c: None)
    device = "GPU Y driver 13000" if change == "device" else "GPU X driver 13000"
    fresh, timer = _tuner(tmp_path, {("128x128", 1): 1.0, ("64x64", 2): 5.0, ("128x32", 1): 2.0}, device)
    winner = fresh.choose(["gemm_tn", 6 if change == "problem" else 5],
                          "hash2" if change == "source" else "hash1", CANDIDATES, lambda c: None)
    assert winner == ("128x128", 1) and timer.timed == CANDIDATES


def test_a_stored_winner_that_is_no_candidate_any_more_is_tuned_again(tmp_path):
    tuner, _ = _tuner(tmp_path)
    tuner.choose(["p"], "h", CANDIDATES, lambda c: None)
    fresh, timer = _tuner(tmp_path)
    assert fresh.choose(["p"], "h", [("128x128", 1), ("128x32", 1)], lambda c: None) == ("128x32", 1)
    assert timer.timed == [("128x128", 1), ("128x32", 1)]


def test_corrupt_cache_file_is_tuned_anew_and_rewritten(tmp_path):
    (tmp_path / "autotune.json").write_text("{not json")
    tuner, timer = _tuner(tmp_path)
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert tuner.choose(["p"], "h", CANDIDATES, lambda c: None) == ("64x64", 2)
    assert timer.timed == CANDIDATES
    assert list(json.loads((tmp_path / "autotune.json").read_text()).values()) == [["64x64", 2]]


def test_candidates_that_cannot_launch_are_skipped(tmp_path):
    class LaunchFailure(RuntimeError):
        pass

    def timer(run):
        if run.args[0] == ("64x64", 2):
            raise LaunchFailure("too many resources requested for launch")
        return {("128x128", 1): 3.0, ("128x32", 1): 2.0}[run.args[0]]
    tuner = autotune.Autotuner(timer, "GPU", tmp_path / "a.json", launch_errors=(LaunchFailure,))
    assert tuner.choose(["p"], "h", CANDIDATES, lambda c: None) == ("128x32", 1)


def test_no_tuning_when_asked_not_to(tmp_path):
    tuner, timer = _tuner(tmp_path)
    assert tuner.choose(["p"], "h", CANDIDATES, lambda c: None, tune=False) is None
    assert timer.timed == []
    tuner.choose(["p"], "h", CANDIDATES, lambda c: None)
    assert tuner.choose(["p"], "h", CANDIDATES, lambda c: None, tune=False) == ("64x64", 2)


def test_concurrent_writers_lose_no_entry(tmp_path):
    path = tmp_path / "autotune.json"
    script = textwrap.dedent("""
        import sys
        from gpucnn.cuda import autotune
        for i in range(25):
            autotune.write_cache_entry(sys.argv[1], f"{sys.argv[2]}-{i}", [sys.argv[2], i])
    """)
    writers = [subprocess.Popen([sys.executable, "-c", script, str(path), f"w{w}"]) for w in range(4)]
    assert all(writer.wait(timeout=120) == 0 for writer in writers)
    entries = json.loads(path.read_text())
    assert entries == {f"w{w}-{i}": [f"w{w}", i] for w in range(4) for i in range(25)}


def test_gemm_candidates_cover_every_tile_with_and_without_split_k():
    tiles = gemm.BASE_TILES
    candidates = gemm.gemm_candidates(64, 64, 4000, tiles)
    assert {suffix for suffix, _ in candidates} == {tile.suffix for tile in tiles}
    assert ("128x128", 1) in candidates and any(s > 1 for _, s in candidates)
    assert len(candidates) == len(set(candidates))
    assert gemm.gemm_candidates(100_000, 512, 9, tiles) == [(tile.suffix, 1) for tile in tiles]
    # Past CUDA's 65535 column tiles in 64 columns, the 64- and 32-column tiles cannot launch.
    wide = gemm.gemm_candidates(10, gemm.MAX_GRID_Y * 64 + 1, 9, tiles)
    assert [suffix for suffix, _ in wide] == ["128x128", "32x128"]


@pytest.mark.parametrize("precision", ["highest", "high", "medium"])
def test_only_fp32_backward_filter_has_the_two_blocks_candidate(emulated, precision):
    """The __launch_bounds__(256, 2) tile exists in kernels/conv.cu for backward-filter only."""
    rng = np.random.default_rng(3)
    x, w = random((2, 6, 6, 3), rng), random((3, 3, 3, 5), rng)
    dy = random(reference.conv2d_forward(x, w, None, 1, "valid").shape, rng)
    with autotune.recording() as calls:
        conv_launchers.conv2d_forward(x, w, None, 1, "valid", precision=precision)
        conv_launchers.conv2d_backward_filter(x, dy, (3, 3), 1, "valid", precision=precision)
        dense_launchers.dense_backward_weights(random((12, 9), rng), random((12, 5), rng), precision=precision)
    two_blocks = gemm.LARGE_TILE_TWO_BLOCKS.suffix
    has_two_blocks = [any(suffix == two_blocks for suffix, _ in candidates) for _, candidates in calls]
    assert has_two_blocks == [False, precision == "highest", False]


def test_with_block_sets_the_switch_and_restores_the_previous_one(monkeypatch):
    monkeypatch.setattr(autotune, "_enabled", None)
    monkeypatch.setenv(autotune.AUTOTUNE_ENV, "1")
    with autotune.autotuning(False):
        assert not autotune.autotune_enabled()
        with autotune.autotuning(None):  # None: as it is
            assert not autotune.autotune_enabled()
    assert autotune._enabled is None and autotune.autotune_enabled()
    with pytest.raises(TypeError, match="`enabled`"), autotune.autotuning("off"):
        pass
    assert autotune._enabled is None


def test_switch_and_environment_variable(monkeypatch):
    monkeypatch.setattr(autotune, "_enabled", None)
    monkeypatch.setenv(autotune.AUTOTUNE_ENV, "0")
    assert not autotune.autotune_enabled()
    monkeypatch.setenv(autotune.AUTOTUNE_ENV, "yes")
    with pytest.raises(ValueError, match="GPUCNN_AUTOTUNE must be '0' .* got 'yes'"):
        autotune.autotune_enabled()
    autotune.set_autotune(True)
    assert autotune.autotune_enabled()
    with pytest.raises(TypeError, match="`enabled`"):
        autotune.set_autotune("off")


def test_off_the_gpu_the_heuristic_picks(emulated, monkeypatch):
    monkeypatch.setattr(autotune, "_enabled", True)
    assert autotune.current_tuner() is None
    assert autotune.choose(["p"], "gemm.cu", CANDIDATES, lambda c: pytest.fail("timed"), ("64x64", 1)) == ("64x64", 1)


def test_launcher_runs_the_tuned_choice_and_never_times_during_capture(emulated, monkeypatch, launches, tmp_path):
    # On the emulated backend with an injected tuner that finds 32x128 fastest (the heuristic picks 128x32).
    times = dict.fromkeys(gemm.gemm_candidates(70, 9, 10, gemm.BASE_TILES), 10.0)
    times[("32x128", 1)] = 1.0
    tuner, timer = _tuner(tmp_path, times)
    monkeypatch.setattr(autotune, "current_tuner", lambda: tuner)
    monkeypatch.setattr(autotune, "capturing", lambda: True)
    rng = np.random.default_rng(0)
    x, w = random((70, 80), rng), random((80, 9), rng)
    y = dense_launchers.dense_forward(x, w, None)  # capturing: heuristic, nothing timed
    assert timer.timed == [] and [launch.name for launch in launches] == ["gemm_nn_128x32"]
    monkeypatch.setattr(autotune, "capturing", lambda: False)
    launches.clear()
    y = dense_launchers.dense_forward(x, w, None, "relu")
    np.testing.assert_allclose(y, reference.dense_forward(x, w, None, "relu"), rtol=1e-4, atol=1e-4)
    assert set(timer.timed) == set(times)
    assert launches[-1].name == "gemm_nn_32x128" and launches[-1].grid[2] == 1
    launches.clear()
    dense_launchers.dense_forward(x, w, None)
    assert [launch.name for launch in launches] == ["gemm_nn_32x128"]  # known: one launch, no timing


@pytest.mark.gpu
def test_on_gpu_the_tuner_times_with_cuda_events_and_stores_the_winner(gpu, monkeypatch, tmp_path):
    import cupy
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path / "autotune.json"))
    monkeypatch.setattr(autotune, "_enabled", True)
    rng = np.random.default_rng(1)
    x, w = random((1000, 300), rng), random((300, 200), rng)
    y = dense_launchers.dense_forward(cupy.asarray(x), cupy.asarray(w), None)
    np.testing.assert_allclose(y.get(), reference.dense_forward(x, w, None), rtol=1e-3, atol=1e-3)
    (winner,) = json.loads((tmp_path / "autotune.json").read_text()).values()
    assert tuple(winner) in gemm.gemm_candidates(1000, 200, 300 // gemm.TILE_DEPTH + 1, gemm.BASE_TILES)
    assert autotune.cuda_event_timer(lambda: cupy.zeros(10**6).sum()) > 0


def test_recording_and_forcing_a_candidate(emulated, launches):
    rng = np.random.default_rng(2)
    x, w = random((70, 80), rng), random((80, 9), rng)
    with autotune.recording() as calls:
        dense_launchers.dense_forward(x, w, None)
    candidates = gemm.gemm_candidates(70, 9, 10, gemm.BASE_TILES)
    assert calls == [(["gemm_nn", 70, 9, 80], candidates)]
    launches.clear()
    with autotune.forced(("64x64", 2)):
        y = dense_launchers.dense_forward(x, w, None)
    assert [launch.name for launch in launches] == ["gemm_nn_64x64", "split_k_reduce"]
    assert launches[0].grid[2] == 2
    np.testing.assert_allclose(y, reference.dense_forward(x, w, None), rtol=1e-4, atol=1e-4)
    launches.clear()
    dense_launchers.dense_forward(x, w, None)  # outside: the heuristic again
    assert [launch.name for launch in launches] == ["gemm_nn_128x32"]
