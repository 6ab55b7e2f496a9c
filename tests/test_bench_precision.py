"""profiling/bench_precision.py in its dry-run mode (no GPU, no PyTorch): every conv and Dense case at
every precision is validated against the float64 oracle within its bound, nothing is timed, and the report
says so."""
import json
from pathlib import Path

import pytest

PROFILING = Path(__file__).resolve().parents[1] / "profiling"


@pytest.fixture
def bench_precision(monkeypatch):
    monkeypatch.syspath_prepend(str(PROFILING))
    import bench_precision
    return bench_precision


def _report(tmp_path):
    (path,) = tmp_path.glob("precision-*.json")
    return json.loads(path.read_text())


def test_dry_run_validates_every_case_and_times_nothing(bench_precision, tmp_path, capsys):
    from gpucnn import backend
    with backend.using_backend("cpu"):
        assert bench_precision.main([str(tmp_path), "--dry-run", "--batch", "8"]) == 0
    report = _report(tmp_path)
    assert report["timed"] is False and report["status"] == "passed"
    cases = report["results"]
    shapes = [name for name, *_ in bench_precision.CONV_SHAPES] + [name for name, *_ in bench_precision.DENSE_SHAPES]
    assert [(c["shape"], c["precision"]) for c in cases] == [
        (shape, precision) for shape in shapes for precision in ("highest", "high", "medium")]
    for case in cases:
        assert list(case["passes"]) == list(bench_precision.PASSES)
        bound = bench_precision.MAX_RELATIVE_ERROR[case["precision"]]
        # Rounded operands show their format's error; strict FP32 stays far below the TF32 one.
        low = {"highest": 0, "high": 1e-5, "medium": 1e-4}[case["precision"]]
        for row in case["passes"].values():
            assert row["ours_ms"] is None and row["torch_ms"] is None and row["torch_error"] is None
            assert low < row["ours_error"] < bound, case
    dense = next(c for c in cases if c["shape"] == "dense 4096->4096")
    assert dense["flops"] == 2.0 * 8 * 4096 * 4096
    conv1 = next(c for c in cases if c["shape"].startswith("article-conv1"))
    assert conv1["flops"] == 2.0 * 8 * 98 * 98 * 512 * 9 * 1
    assert "no GPU: dry run, nothing timed" in capsys.readouterr().out


def test_a_kernel_beyond_its_error_bound_fails_its_case(bench_precision, monkeypatch, tmp_path):
    monkeypatch.setitem(bench_precision.MAX_RELATIVE_ERROR, "medium", 1e-6)
    monkeypatch.setattr(bench_precision, "CONV_SHAPES", [])
    from gpucnn import backend
    with backend.using_backend("cpu"):
        assert bench_precision.main([str(tmp_path), "--dry-run"]) == 1
    report = _report(tmp_path)
    failed = [c for c in report["results"] if c["status"] == "failed"]
    assert [c["case"] for c in failed] == [f"{name} medium" for name, *_ in bench_precision.DENSE_SHAPES]
    assert "article-dense 512->1 forward at 'medium': relative error" in failed[0]["error"]
    assert "not timing a wrong kernel" in failed[0]["error"]
    assert report["failed_cases"] == [c["case"] for c in failed]
