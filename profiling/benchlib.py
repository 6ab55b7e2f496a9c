"""What the GPU benchmarks share: device-event timing, PyTorch's precision setting and the result file,
written after every case so that a run killed at its time limit still leaves valid JSON.

Imported as a sibling module (``python profiling/bench_x.py`` puts this folder on ``sys.path``).
"""
import argparse
import json
import pathlib
import re
import statistics
import sys
import traceback

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def argument_parser(doc, warmup=3, repeat=20):
    """The arguments every GPU benchmark takes (the folder of its JSON report, untimed and timed runs per
    case), with ``doc`` (the script's docstring) as its help; a script adds its own arguments."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], epilog=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", nargs="?", default=str(RESULTS_DIR),
                        help="folder for the JSON report (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed runs before timing")
    parser.add_argument("--repeat", type=int, default=repeat, help="timed samples per case (median)")
    return parser


def _events(library):
    """A (start, end, elapsed_ms) triple of device events for ``'cupy'`` or ``'torch'``; both record on
    their library's current stream, where the timed work is launched."""
    if library == "cupy":
        import cupy
        return cupy.cuda.Event(), cupy.cuda.Event(), cupy.cuda.get_elapsed_time
    if library == "torch":
        import torch
        return (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True),
                lambda start, end: start.elapsed_time(end))
    raise ValueError(f"Argument `library` must be 'cupy' or 'torch', got {library!r}.")


def device_time_ms(run, library, warmup, repeat, calls_per_sample=1):
    """Device milliseconds per call of ``run()``: each of ``repeat`` samples brackets
    ``calls_per_sample`` consecutive calls with two events, after ``warmup`` untimed calls.
    Returns the median, min and max over the samples."""
    start, end, elapsed_ms = _events(library)
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeat):
        start.record()
        for _ in range(calls_per_sample):
            run()
        end.record()
        end.synchronize()
        samples.append(elapsed_ms(start, end) / calls_per_sample)
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "max_ms": max(samples)}


def report_path(results_dir, kind, report):
    """``<results_dir>/<kind>-<gpu>-<date>.json`` for ``report`` (which carries
    ``gpucnn.profiler.environment()``'s ``date`` and ``gpu``)."""
    gpu = (report.get("gpu") or {}).get("name") or "no-gpu"
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")
    return pathlib.Path(results_dir) / f"{kind}-{slug}-{report['date'][:10]}.json"


class ValidationError(AssertionError):
    """A kernel's result differs from the oracle: its case fails and nothing of it is timed."""


def set_torch_fp32_precision(torch, precision):
    """Float32 convolutions and matmuls of PyTorch in ``'ieee'`` (strict FP32) or ``'tf32'``, with the
    current API only (mixing it with the deprecated ``allow_tf32`` flags raises)."""
    if precision not in ("ieee", "tf32"):
        raise ValueError(f"Argument `precision` must be 'ieee' or 'tf32', got {precision!r}.")
    torch.backends.cudnn.conv.fp32_precision = precision
    torch.backends.cuda.matmul.fp32_precision = precision


class Report:
    """One benchmark's JSON file: ``header`` plus a ``results`` list with one entry per case, each
    ``status`` 'passed' or 'failed' (with its ``error``).  Rewritten after every case."""

    def __init__(self, results_dir, kind, header):
        self.data = {**header, "status": "running", "results": []}
        self.path = report_path(results_dir, kind, header)
        self.write()

    def write(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=1, default=str) + "\n")

    def case(self, name, measure):
        """Run ``measure()`` (returns a dict) as case ``name``; an exception fails the case, not the run."""
        print(f"-- {name}", flush=True)
        try:
            entry = {"case": name, "status": "passed", **measure()}
        except Exception as error:
            traceback.print_exc()
            entry = {"case": name, "status": "failed", "error": f"{type(error).__name__}: {error}"}
            print(f"FAILED {name}: {entry['error']}", file=sys.stderr, flush=True)
        self.data["results"].append(entry)
        self.write()
        return entry

    def finish(self, **extra):
        """Record ``extra`` and the overall status; returns the exit status (1 when a case failed)."""
        failed = [r["case"] for r in self.data["results"] if r["status"] != "passed"]
        self.data.update(extra, status="failed" if failed else "passed", failed_cases=failed)
        self.write()
        print(f"wrote {self.path}" + (f"; failed cases: {failed}" if failed else ""))
        return 1 if failed else 0
