"""The profiling/ scripts: every one answers --help (imports resolve), the shared result writer names
files as documented, the dry run of profile_steps works on the cpu backend, and (GPU) event timing."""
import inspect
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import time

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


def test_report_path_names_the_file_by_kind_gpu_and_date(benchlib, tmp_path):
    report = {"date": "2026-11-25T10:00:00+00:00", "gpu": {"name": "NVIDIA H100 80GB HBM3"}, "x": [1, 2]}
    path = benchlib.report_path(tmp_path / "out", "conv", report)
    assert path == tmp_path / "out" / "conv-nvidia-h100-80gb-hbm3-2026-11-25.json"
    no_gpu = benchlib.report_path(tmp_path, "reference", {"date": "2026-11-25", "gpu": None})
    assert no_gpu.name == "reference-no-gpu-2026-11-25.json"


def test_set_torch_fp32_precision_accepts_only_ieee_or_tf32(benchlib):
    with pytest.raises(ValueError, match="`precision` must be 'ieee' or 'tf32'"):
        benchlib.set_torch_fp32_precision(None, "highest")


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
    for op, (their_op, reference64, to_ours) in ops.items():
        assert tuple(to_ours(their_op()).shape) == ours[op].shape, (name, op)
        assert bench_conv.relative_error(ours[op], reference64()) < bench_conv.MAX_RELATIVE_ERROR, (name, op)
        assert bench_conv.relative_error(to_ours(their_op()), reference64()) < bench_conv.MAX_RELATIVE_ERROR


def test_bench_conv_tile_replacement_swaps_only_the_default_large_tile(bench_conv, monkeypatch):
    from gpucnn.cuda import autotune, gemm
    monkeypatch.setattr(autotune, "_enabled", True)
    choose = gemm.choose_tile
    with bench_conv.tile_replaced(gemm.LARGE_TILE_TWO_BLOCKS, only_instead_of=gemm.LARGE_TILE) as replaced:
        assert not autotune.autotune_enabled()  # the tuner would not ask the heuristic
        assert gemm.choose_tile(10_000, 512, 9) == gemm.LARGE_TILE_TWO_BLOCKS
        assert gemm.choose_tile(1000, 64, 64) == gemm.SMALL_TILE
    assert replaced == [(10_000, 512, 9)] and gemm.choose_tile is choose
    with bench_conv.tile_replaced(gemm.LARGE_TILE_TWO_BLOCKS):
        assert gemm.choose_tile(1000, 64, 64) == gemm.LARGE_TILE_TWO_BLOCKS
    assert gemm.choose_tile is choose and autotune.autotune_enabled()


def test_bench_conv_refuses_an_asymmetric_same_padding(bench_conv):
    with pytest.raises(ValueError, match="`padding`: 'same' pads"):
        bench_conv.torch_padding("same", (8, 8), (2, 2), (1, 1))


def test_gpu_suite_without_a_gpu_stops_in_preflight_within_seconds_and_says_why(tmp_path):
    """A dry run of gpu_suite.sh on this machine: pip is not run (a stand-in python answers it), the
    preflight fails at its device check and the suite stops with a non-zero exit, leaving suite.json,
    summary.md (which names the failed check), preflight.json and the packed logs."""
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "pip not run: $*"; exit 0; fi\n'
                      f'exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    results = tmp_path / "results"
    begin = time.monotonic()
    result = subprocess.run(["bash", str(PROFILING / "gpu_suite.sh"), str(results)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHON": str(python)})
    assert time.monotonic() - begin < 30
    assert result.returncode == 1, result.stdout + result.stderr
    assert "preflight failed" in result.stderr
    assert sorted(p.name for p in results.iterdir()) == [
        "gpu_suite_logs.tar.gz", "preflight.json", "suite.json", "summary.md"]
    suite = json.loads((results / "suite.json").read_text())
    assert [(s["stage"], s["status"]) for s in suite["stages"]] == [("install", "passed"), ("preflight", "failed")]
    checks = {c["check"]: c["status"] for c in suite["preflight"]["checks"]}
    assert checks == {"versions": "passed", "device": "failed", "numba_kernel": "not run",
                      "cuda_c_kernel": "not run", "graph_capture": "not run"}
    summary = (results / "summary.md").read_text()
    assert "| preflight | failed |" in summary
    assert "preflight check `device`: RuntimeError: CuPy" in summary
    assert "`gpu_suite_logs/preflight.log` in gpu_suite_logs.tar.gz" in summary
    with tarfile.open(results / "gpu_suite_logs.tar.gz") as archive:
        names = set(archive.getnames())
    assert {f"gpu_suite_logs/{name}" for name in ("install.log", "preflight.log", "stages.tsv",
                                                  "nvidia-smi.txt")} <= names


def test_gpu_suite_stage_limits_add_up_to_the_budget_in_order_of_value():
    plan = subprocess.run(["bash", str(PROFILING / "gpu_suite.sh"), "--plan"], capture_output=True, text=True,
                          timeout=30, check=True).stdout.split("\n")
    stages = [line.split("\t") for line in plan if line]
    assert [name for name, _ in stages] == ["install", "preflight", "pytest_gpu", "bench_train_step", "memcheck",
                                            "bench_conv", "ncu", "bench_elementwise", "bench_precision"]
    assert sum(int(limit) for _, limit in stages) == 330
    assert dict(stages)["preflight"] == "20"
    script = (PROFILING / "gpu_suite.sh").read_text()
    assert "GPU_SUITE_SECONDS:-330" in script
    # The stages run in the plan's order.
    runs = [script.index(f"run_stage {name} ") for name, _ in stages]
    assert runs == sorted(runs)


def test_preflight_exports_cuda_home_from_the_pip_wheels_and_no_sync(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PROFILING))
    import preflight
    (tmp_path / "site" / "nvidia" / "cu13" / "nvvm").mkdir(parents=True)
    (tmp_path / "site" / "nvidia" / "cuda_runtime").mkdir()
    paths = [str(tmp_path / "nowhere"), str(tmp_path / "site")]
    assert preflight.environment_exports({}, paths) == {
        "CUDA_HOME": str(tmp_path / "site" / "nvidia" / "cu13"), "NUMBA_CUDA_ARRAY_INTERFACE_SYNC": "0"}
    assert preflight.environment_exports({"CUDA_HOME": "/usr/local/cuda",
                                          "NUMBA_CUDA_ARRAY_INTERFACE_SYNC": "1"}, paths) == {}
    assert preflight.environment_exports({}, [str(tmp_path / "nowhere")]) == {
        "NUMBA_CUDA_ARRAY_INTERFACE_SYNC": "0"}


def test_suite_report_summarises_partial_benchmark_files(tmp_path):
    """summary.md from a run killed during bench_conv: stage table, the failed case and the headline
    ratios of the cases that finished."""
    results, logs = tmp_path, tmp_path / "logs"
    logs.mkdir()
    (logs / "stages.tsv").write_text("preflight\tpassed\t0\t12\tpython preflight.py\n"
                                     "bench_conv\ttimeout\t124\t50\tpython bench_conv.py\n")
    (results / "preflight.json").write_text(json.dumps({"status": "passed", "checks": [
        {"check": "versions", "status": "passed", "detail": {"gpu": {"name": "NVIDIA H200", "driver": "580"},
                                                             "packages": {"numba-cuda": "0.30.4"}}}]}))
    conv = {"status": "running", "results": [
        {"case": "a forward", "status": "passed", "ratio_vs_cudnn": 0.5, "ours_tflops": 10.0,
         "cudnn_fp32_tflops": 20.0, "relative_error": 1e-6, "cudnn_relative_error": 2e-6},
        {"case": "a backward_data", "status": "failed", "error": "ValidationError: relative error 3e-2"},
        {"case": "a backward_filter", "status": "passed", "ratio_vs_cudnn": 1.25, "ours_tflops": 25.0,
         "cudnn_fp32_tflops": 20.0, "relative_error": 1e-6, "cudnn_relative_error": 2e-6, "ours_ms": 2.0,
         "ours_two_blocks_ms": 1.5}]}
    (results / "conv-nvidia-h200-2026-12-05.json").write_text(json.dumps(conv))
    precision = {"status": "done", "results": [
        {"case": "dense high", "status": "passed", "passes": {
            "forward": {"ours_ms": 2.0, "torch_ms": 1.0, "ours_tflops": 50.0, "torch_tflops": 100.0,
                        "torch_over_ours": 0.5, "ours_error": 3e-4, "torch_error": 2e-4}}}]}
    (results / "precision-nvidia-h200-2026-12-05.json").write_text(json.dumps(precision))
    subprocess.run([sys.executable, str(PROFILING / "suite_report.py"), str(results), str(logs)], check=True,
                   timeout=60, capture_output=True)
    summary = (results / "summary.md").read_text()
    assert "GPU: NVIDIA H200; driver 580" in summary
    assert "| bench_conv | timeout | 50 | 124 |" in summary
    assert "stage `bench_conv` timeout: log `gpu_suite_logs/bench_conv.log`" in summary
    assert "conv case `a backward_data`: ValidationError: relative error 3e-2" in summary
    assert "a forward: cuDNN/ours time 0.50 (10.0 vs 20.0 TFLOP/s; error 1.0e-06, cuDNN 2.0e-06)\n" in summary
    assert ("a backward_filter: cuDNN/ours time 1.25 (25.0 vs 20.0 TFLOP/s; error 1.0e-06, cuDNN 2.0e-06); "
            "two-blocks-per-SM tile 1.500 ms vs 2.000 ms") in summary
    suite = json.loads((results / "suite.json").read_text())
    assert ("dense high forward: PyTorch/ours time 0.50 (50.0 vs 100.0 TFLOP/s; error 3.0e-04, PyTorch "
            "2.0e-04)") in summary
    assert suite["benchmarks"] == {"conv": "conv-nvidia-h200-2026-12-05.json",
                                   "precision": "precision-nvidia-h200-2026-12-05.json"}


def test_report_is_valid_json_after_every_case_and_a_failure_does_not_stop_the_run(benchlib, tmp_path):
    report = benchlib.Report(tmp_path, "conv", {"date": "2026-12-05T00:00:00+00:00", "gpu": None})
    assert json.loads(report.path.read_text())["results"] == []
    report.case("ok", lambda: {"ms": 1.5})
    assert json.loads(report.path.read_text())["results"] == [{"case": "ok", "status": "passed", "ms": 1.5}]

    def mismatch():
        raise benchlib.ValidationError("relative error 1e-2")

    report.case("bad", mismatch)
    report.case("after", lambda: {"ms": 2.0})
    assert report.finish() == 1
    written = json.loads(report.path.read_text())
    assert [(r["case"], r["status"]) for r in written["results"]] == [
        ("ok", "passed"), ("bad", "failed"), ("after", "passed")]
    assert written["results"][1]["error"] == "ValidationError: relative error 1e-2"
    assert written["status"] == "failed" and written["failed_cases"] == ["bad"]


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


def test_bench_train_step_per_layer_profile_runs_on_the_cpu_backend(cpu, bench_train_step):
    result = bench_train_step.per_layer_profile(bench_train_step.faces_model, bench_train_step.FACES_SHAPE,
                                                batch=4, steps=1)
    profile = result["profile"]
    assert profile["backend"] == "cpu" and profile["batch_size"] == 4 and profile["steps"] == 1
    json.dumps(result)  # goes into the report as it is


@pytest.fixture
def bench_train_step(monkeypatch):
    monkeypatch.syspath_prepend(str(PROFILING))
    import bench_train_step
    return bench_train_step


def test_bench_train_step_ratios_pair_each_precision_with_pytorchs(bench_train_step):
    def case(ms, peak=100):
        return {"median_ms": ms, "peak_bytes": peak}
    times = {"gpucnn_graph": case(4.0, 90), "gpucnn_eager": case(5.0), "torch_eager_fp32": case(8.0, 120),
             "gpucnn_graph_tf32": case(2.0), "torch_eager_tf32": case(2.5), "gpucnn_graph_bf16": case(1.5),
             "torch_eager_bf16": case(1.0)}
    assert bench_train_step.ratios_of(times) == {
        "gpucnn_best_over_torch_eager_fp32": 0.5, "torch_fp32_over_gpucnn_graph": 2.0,
        "peak_memory_gpucnn_graph_over_torch": 0.75, "gpucnn_best_over_torch_eager_tf32": 1.6,
        "gpucnn_graph_tf32_over_torch_eager_tf32": 0.8, "gpucnn_graph_bf16_over_torch_eager_bf16": 1.5}
    fp32_only = {name: times[name] for name in ("gpucnn_graph", "gpucnn_eager", "torch_eager_fp32")}
    assert set(bench_train_step.ratios_of(fp32_only)) == {
        "gpucnn_best_over_torch_eager_fp32", "torch_fp32_over_gpucnn_graph", "peak_memory_gpucnn_graph_over_torch"}


def test_bench_train_step_precisions_argument(bench_train_step, capsys):
    assert bench_train_step.parse_args([]).precisions == ("highest", "high", "medium")
    assert bench_train_step.parse_args(["--precisions", "highest,medium"]).precisions == ("highest", "medium")
    for bad in ("high", "highest,tf32"):
        with pytest.raises(SystemExit):
            bench_train_step.parse_args(["--precisions", bad])
        assert "holds 'highest'" in capsys.readouterr().err


def test_bench_reference_times_the_residual_model_without_torch(tmp_path):
    result = subprocess.run([sys.executable, str(PROFILING / "bench_reference.py"), "--models", "resnet",
                             "--repeats", "1", "--resnet-batch", "2", "--no-torch", "--json",
                             str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300,
                            cwd=PROFILING.parent, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert "--no-torch: timing gpucnn alone" in result.stdout and "(no PyTorch peer)" in result.stdout
    written = json.loads((tmp_path / "r.json").read_text())
    # the thread settings a comparison ran under are part of its result
    assert written["environment"]["OMP_NUM_THREADS"] == "1" and written["environment"]["torch_threads"] is None
    [row] = written["models"]
    assert row["batch"] == 2 and row["gpucnn_ms_per_step"] > 0 and row["torch_ms_per_step"] is None
