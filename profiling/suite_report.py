"""The GPU suite's reports: suite.json (everything, for tools) and summary.md (for a person, read first).

    python profiling/suite_report.py RESULTS_DIR LOGS_DIR

Reads LOGS_DIR/stages.tsv (stage, status, exit code, seconds, command, one line each, as gpu_suite.sh
writes it), RESULTS_DIR/preflight.json and the benchmarks' JSON files in RESULTS_DIR, which may be
partial (a stage killed at its limit leaves the cases done so far).  gpu_suite.sh calls it on every exit.
"""
import argparse
import csv
import json
import pathlib

ARCHIVE = "gpu_suite_logs.tar.gz"
BENCHMARKS = ("train_step", "conv", "elementwise", "precision")


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_stages(logs):
    path = logs / "stages.tsv"
    if not path.exists():
        return []
    with open(path, newline="") as stages:
        rows = list(csv.reader(stages, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [dict(zip(("stage", "status", "rc", "seconds", "command"), row)) for row in rows]


def benchmark_reports(results):
    """{kind: (file name, report)} of the newest result file of each benchmark in ``results``."""
    found = {}
    for kind in BENCHMARKS:
        paths = sorted(results.glob(f"{kind}-*.json"))
        if paths:
            found[kind] = (paths[-1].name, read_json(paths[-1]))
    return found


def headlines(kind, report):
    """Lines of the headline numbers of one benchmark report (ratios vs the peer measured beside it)."""
    lines = []
    passed = [r for r in report.get("results", []) if r.get("status") == "passed"]
    if kind == "train_step":
        for result in passed:
            for name, value in result.get("ratios", {}).items():
                lines.append(f"{result['case']}: {name} = {value:.3f}")
    elif kind == "conv":
        for r in passed:
            variant = (f"; two-blocks-per-SM tile {r['ours_two_blocks_ms']:.3f} ms vs {r['ours_ms']:.3f} ms"
                       if "ours_two_blocks_ms" in r else "")
            lines.append(f"{r['case']}: cuDNN/ours time {r['ratio_vs_cudnn']:.2f} ({r['ours_tflops']:.1f} vs "
                         f"{r['cudnn_fp32_tflops']:.1f} TFLOP/s; error {r['relative_error']:.1e}, cuDNN "
                         f"{r['cudnn_relative_error']:.1e}){variant}")
    elif kind == "precision":
        for r in passed:
            for op, p in r["passes"].items():
                if p.get("ours_ms") is not None:
                    theirs = "n/a" if p["torch_error"] is None else f"{p['torch_error']:.1e}"
                    lines.append(f"{r['case']} {op}: PyTorch/ours time {p['torch_over_ours']:.2f} "
                                 f"({p['ours_tflops']:.1f} vs {p['torch_tflops']:.1f} TFLOP/s; error "
                                 f"{p['ours_error']:.1e}, PyTorch {theirs})")
    elif kind == "elementwise":
        for r in passed:
            lines.append(f"{r['case']}: {100 * r['fraction_of_copy']:.0f} % of copy bandwidth, launch "
                         f"{r['launch_overhead_us']:.1f} µs")
    return lines


def summary_markdown(stages, preflight, reports):
    lines = ["# GPU suite summary", ""]
    if preflight:
        versions = next((c.get("detail") for c in preflight["checks"] if c["check"] == "versions"), None) or {}
        gpu = versions.get("gpu")
        lines += [(f"GPU: {gpu['name'] if gpu else 'none visible'}; driver {(gpu or {}).get('driver')}; "
                   f"packages {versions.get('packages')}; NVVM {versions.get('nvvm')}"), ""]
    lines += ["| stage | status | seconds | exit code |", "|---|---|---|---|"]
    lines += [f"| {s['stage']} | {s['status']} | {s['seconds']} | {s['rc']} |" for s in stages]
    failures = [f"stage `{s['stage']}` {s['status']}: log `gpu_suite_logs/{s['stage']}.log` in {ARCHIVE}"
                for s in stages if s["status"] in ("failed", "timeout")]
    if preflight:
        failures += [f"preflight check `{c['check']}`: {c['error']} (preflight.json)"
                     for c in preflight["checks"] if c["status"] == "failed"]
    for kind, (name, report) in reports.items():
        if report is None:
            failures.append(f"{name}: not valid JSON")
            continue
        failures += [f"{kind} case `{r['case']}`: {r.get('error')} ({name})"
                     for r in report.get("results", []) if r.get("status") != "passed"]
    lines += ["", "## Failures", ""] + ([f"- {f}" for f in failures] or ["none"])
    lines += ["", "## Headline numbers", ""]
    numbers = [(kind, name, headlines(kind, report)) for kind, (name, report) in reports.items() if report]
    for kind, name, rows in numbers:
        lines += [f"### {kind} ({name})", ""] + [f"- {row}" for row in rows or ["no passed case"]] + [""]
    if not numbers:
        lines.append("no benchmark ran")
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=pathlib.Path)
    parser.add_argument("logs", type=pathlib.Path)
    args = parser.parse_args(argv)
    stages = read_stages(args.logs)
    preflight = read_json(args.results / "preflight.json")
    reports = benchmark_reports(args.results)
    suite = {"stages": stages, "preflight": preflight, "benchmarks": {k: name for k, (name, _) in reports.items()},
             "logs": ARCHIVE}
    (args.results / "suite.json").write_text(json.dumps(suite, indent=1) + "\n")
    (args.results / "summary.md").write_text(summary_markdown(stages, preflight, reports))
    for stage in stages:
        print(f"{stage['stage']:20s} {stage['status']:8s} {stage['seconds']:>4s} s")


if __name__ == "__main__":
    main()
