"""What the GPU benchmarks share: device-event timing and the result file.

Imported as a sibling module (``python profiling/bench_x.py`` puts this folder on ``sys.path``).
"""
import json
import pathlib
import re
import statistics

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


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


def write_report(results_dir, kind, report):
    """Write ``report`` (which carries ``gpucnn.profiler.environment()``'s ``date`` and ``gpu``) to
    ``<results_dir>/<kind>-<gpu>-<date>.json`` and return the path."""
    gpu = (report.get("gpu") or {}).get("name") or "no-gpu"
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")
    path = pathlib.Path(results_dir) / f"{kind}-{slug}-{report['date'][:10]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")
    return path
