"""The profiling/ scripts: every one answers --help (imports resolve), the shared result writer names
files as documented, the dry run of profile_steps works on the cpu backend, and (GPU) event timing."""
import inspect
import json
import os
import pathlib
import subprocess
import sys
import tarfile

import numpy as np
import pytest

PROFILING = pathlib.Path(__file__).resolve().parent.parent / "profiling"
SCRIPTS = sorted(PROFILING.glob("*.py"))


@pytest.fixture
def benchlib(monkeypatch):
    monkeypatch.syspath_prepend(str(PROFILING))
    import benchlib
    return benchlib


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.name != "benchlib.py"], ids=lambda s: s.name)
def test_script_help(script):
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                            timeout=120, cwd=PROFILING.parent)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_write_report_names_the_file_by_kind_gpu_and_date(benchlib, tmp_path):
    report = {"date": "2026-11-25T10:00:00+00:00", "gpu": {"name": "NVIDIA H100 80GB HBM3"}, "x": [1, 2]}
    path = benchlib.write_report(tmp_path / "out", "conv", report)
    assert path == tmp_path / "out" / "conv-nvidia-h100-80gb-hbm3-2026-11-25.json"
    assert json.loads(path.read_text()) == report
    no_gpu = benchlib.write_report(tmp_path, "reference", {"date": "2026-11-25", "gpu": None})
    assert no_gpu.name == "reference-no-gpu-2026-11-25.json"


def test_device_time_ms_rejects_an_unknown_library(benchlib):
    with pytest.raises(ValueError, match="`library` must be 'cupy' or 'torch'"):
        benchlib.device_time_ms(lambda: None, "numpy", warmup=0, repeat=1)


@pytest.mark.parametrize("warmup", ["0", "1"])  # gpu_suite.sh's ncu stage runs one step and no warm-up
def test_profile_steps_dry_run_on_cpu(warmup):
    result = subprocess.run([sys.executable, str(PROFILING / "profile_steps.py"), "--model", "faces",
                             "--steps", "1", "--warmup", warmup, "--batch", "4"],
                            capture_output=True, text=True, timeout=300, cwd=PROFILING.parent,
                            env={**os.environ, "GPUCNN_BACKEND": "cpu"})
    assert result.returncode == 0, result.stderr
    assert "faces_cnn on cpu: batch 4" in result.stdout
    assert "1 steps done, last loss" in result.stdout


@pytest.mark.gpu
def test_device_time_ms_measures_device_work(gpu, benchlib):
    import cupy
    x = cupy.ones(1 << 24, dtype=cupy.float32)
    small = benchlib.device_time_ms(lambda: x[:1024] * 2, "cupy", warmup=2, repeat=5)
    large = benchlib.device_time_ms(lambda: x * 2, "cupy", warmup=2, repeat=5, calls_per_sample=3)
    assert 0 < small["min_ms"] <= small["median_ms"] <= small["max_ms"]
    assert large["median_ms"] > small["median_ms"]


@pytest.fixture
def bench_conv(monkeypatch):
    monkeypatch.syspath_prepend(str(PROFILING))
    import bench_conv
    return bench_conv


# Marked gpu because it needs PyTorch, which is no dependency of ours (CI lacks it) but is on the GPU
# machine where bench_conv runs; there `pytest -m gpu` runs it (on the CPU) before the benchmark.
@pytest.mark.gpu
@pytest.mark.parametrize("shape", range(5), ids=lambda i: f"shape{i}")
def test_bench_conv_torch_side_matches_the_reference_ops_on_cpu(bench_conv, shape):
    """The PyTorch calls bench_conv times and validates against, run on the CPU at batch 1: each
    runs with our padding and layouts and its float64 result equals our NumPy reference op's."""
    import torch
    from gpucnn import reference

    name, x_hwc, kernel, strides, padding = bench_conv.SHAPES[shape]
    x, w, b, dy = bench_conv.make_inputs(np, x_hwc, kernel, strides, padding, batch=1)
    assert {a.dtype for a in (x, w, b, dy)} == {np.dtype(np.float32)}
    ops = bench_conv.torch_ops(torch.from_numpy(x).permute(0, 3, 1, 2),
                               torch.from_numpy(w).permute(3, 2, 0, 1).contiguous(
                                   memory_format=torch.channels_last),
                               torch.from_numpy(b), torch.from_numpy(dy).permute(0, 3, 1, 2), strides, padding)
    ours = {"forward": reference.conv2d_forward(x, w, b, strides, padding, "relu"),
            "backward_data": reference.conv2d_backward_data(dy, w, x.shape, strides, padding),
            "backward_filter": reference.conv2d_backward_filter(x, dy, kernel[:2], strides, padding)}
    for op, (their_op, reference64) in ops.items():
        assert their_op().numel() == ours[op].size, (name, op)
        assert bench_conv.relative_error(ours[op], reference64()) < bench_conv.MAX_RELATIVE_ERROR, (name, op)


def test_bench_conv_refuses_an_asymmetric_same_padding(bench_conv):
    with pytest.raises(ValueError, match="`padding`: 'same' pads"):
        bench_conv.torch_padding("same", (8, 8), (2, 2), (1, 1))


def test_gpu_suite_without_a_gpu_stops_early_and_still_writes_suite_json(tmp_path):
    """A dry run of gpu_suite.sh on this machine: pip is not run (a stand-in python answers it), the
    environment is recorded, the GPU check fails and the suite stops, leaving only suite.json and the
    packed logs in the results folder."""
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "pip not run: $*"; exit 0; fi\n'
                      f'exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    results = tmp_path / "results"
    result = subprocess.run(["bash", str(PROFILING / "gpu_suite.sh"), str(results)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHON": str(python)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no GPU visible to CuPy" in result.stderr
    assert sorted(p.name for p in results.iterdir()) == ["gpu_suite_logs.tar.gz", "suite.json"]
    suite = json.loads((results / "suite.json").read_text())
    assert [(s["stage"], s["status"]) for s in suite["stages"]] == [
        ("install", "passed"), ("environment", "passed"), ("gpu_check", "failed")]
    assert suite["environment"]["gpu"] is None
    with tarfile.open(results / "gpu_suite_logs.tar.gz") as archive:
        names = set(archive.getnames())
    assert {f"gpu_suite_logs/{name}" for name in ("install.log", "environment.log", "gpu_check.log",
                                                  "stages.tsv", "environment.json", "nvidia-smi.txt")} <= names


def test_bench_elementwise_cases_follow_the_op_contract(monkeypatch):
    """Every op bench_elementwise times gets arguments that bind to its gpucnn.cuda launcher (step counters
    as 1-element int64 arrays) and run through the NumPy reference op its validation compares with."""
    monkeypatch.syspath_prepend(str(PROFILING))
    import bench_elementwise

    import gpucnn.cuda
    from gpucnn import reference
    for name, args, _ in bench_elementwise.cases(1 << 16):
        inspect.signature(getattr(gpucnn.cuda, name)).bind(*args)
        getattr(reference, name)(*(a.copy() if isinstance(a, np.ndarray) else a for a in args))


def test_bench_reference_times_the_residual_model_without_torch(tmp_path):
    result = subprocess.run([sys.executable, str(PROFILING / "bench_reference.py"), "--models", "resnet",
                             "--repeats", "1", "--resnet-batch", "2", "--no-torch", "--json",
                             str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300,
                            cwd=PROFILING.parent)
    assert result.returncode == 0, result.stderr
    assert "--no-torch: timing gpucnn alone" in result.stdout and "(no PyTorch peer)" in result.stdout
    [row] = json.loads((tmp_path / "r.json").read_text())["models"]
    assert row["batch"] == 2 and row["gpucnn_ms_per_step"] > 0 and row["torch_ms_per_step"] is None
