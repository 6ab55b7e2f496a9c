"""Preflight of the GPU suite: can this machine give trustworthy numbers?  Seconds, not minutes.

    python profiling/preflight.py OUTPUT_JSON     run the checks, write OUTPUT_JSON after each one
    python profiling/preflight.py --exports       print the `export` lines gpu_suite.sh evaluates first
    python profiling/preflight.py --compile       compile kernels/*.cu into CuPy's disk cache (best effort)

The checks, in order; the first that fails stops the rest (they all build on it), and the exit status is 1:
  versions      CuPy, numba, numba-cuda, cuda-core, cuda-bindings, NVVM, driver, torch (always recorded)
  device        CuPy sees a GPU; the cuda backend starts (it refuses a numba-cuda that syncs on CuPy arrays)
  numba_kernel  one Numba kernel (relu_forward) on CuPy arrays, checked against NumPy
  cuda_c_kernel one CUDA C kernel through a CuPy RawModule (dense_forward), checked against float64
  graph_capture three graph-captured training steps of the faces model: exactly one capture and two
                replays (a failed capture would silently fall back to eager in every benchmark)

``--compile`` is the suite's install stage: NVRTC + ptxas of kernels/*.cu (FP32 and tensor-core) for this
GPU take longer on a fresh machine than the whole preflight may, and CuPy keeps the result on disk
(``CUPY_CACHE_DIR``) for every later process.  Without a GPU it says so and exits 0: the preflight is
what fails, with the reason.

``--exports`` sets what numba-cuda needs on a machine with pip-installed CUDA wheels and no toolkit:
CUDA_HOME (where unset) at the wheel folder that holds ``nvvm/`` (numba-cuda cannot find NVVM from a
pip-installed NVRTC without it), and NUMBA_CUDA_ARRAY_INTERFACE_SYNC=0 (where unset), so that a numba-cuda
older than 0.25 does not synchronise the stream for every CuPy array it is given.
"""
import argparse
import json
import os
import pathlib
import shlex
import sys
import time
import traceback
import warnings

import numpy as np

FACES_BATCH = 32


def cuda_home_in(paths):
    """The first pip-installed CUDA wheel folder under ``paths`` (site-packages folders) that holds
    ``nvvm/``: ``nvidia/cu13`` (CUDA 13 wheels) or ``nvidia/cuda_nvcc`` (CUDA 12 wheels); else None."""
    for path in paths:
        nvidia = pathlib.Path(path) / "nvidia"
        for candidate in sorted(nvidia.glob("cu[0-9]*"), reverse=True) + [nvidia / "cuda_nvcc"]:
            if (candidate / "nvvm").is_dir():
                return str(candidate)
    return None


def environment_exports(environ, paths):
    """{variable: value} to export before numba is imported; variables already set are left alone."""
    exports = {}
    if not environ.get("CUDA_HOME") and not environ.get("CUDA_PATH"):
        cuda_home = cuda_home_in(paths)
        if cuda_home:
            exports["CUDA_HOME"] = cuda_home
    if "NUMBA_CUDA_ARRAY_INTERFACE_SYNC" not in environ:
        exports["NUMBA_CUDA_ARRAY_INTERFACE_SYNC"] = "0"
    return exports


# -- checks: each returns a JSON-able detail and raises when the machine fails it ------------------
def check_versions():
    from gpucnn import profiler
    environment = profiler.environment()
    detail = {"packages": environment["versions"], "python": environment["python"], "gpu": environment["gpu"],
              "environment": {name: os.environ.get(name) for name in
                              ("CUDA_HOME", "CUDA_PATH", "NUMBA_CUDA_ARRAY_INTERFACE_SYNC", "CUPY_CACHE_DIR")}}
    try:
        from numba.cuda.cudadrv import nvvm
        detail["nvvm"] = ".".join(map(str, nvvm.NVVM().get_version()))
    except Exception as error:  # recorded, not fatal: the Numba kernel check below says whether it matters
        detail["nvvm"] = f"unavailable ({type(error).__name__}: {error})"
    return detail


def check_device():
    from gpucnn import backend
    reason = backend.cuda_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"{reason}: nothing in this suite can run here")
    backend.set_backend("cuda")
    return {"backend": backend.get_backend()}


def check_numba_kernel():
    import cupy

    from gpucnn import backend
    x = np.linspace(-3, 3, 1000, dtype=np.float32)
    y = backend.current().ops.relu_forward(cupy.asarray(x)).get()
    if not np.array_equal(y, np.maximum(x, 0)):
        raise AssertionError(f"relu_forward differs from NumPy at {int(np.sum(y != np.maximum(x, 0)))} "
                             f"of {x.size} elements")
    return {"kernel": "relu_forward", "elements": x.size}


def check_cuda_c_kernel():
    import cupy

    from gpucnn import backend
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(shape).astype(np.float32) for shape in ((70, 300), (300, 40), (40,)))
    y = backend.current().ops.dense_forward(cupy.asarray(x), cupy.asarray(w), cupy.asarray(b), "relu").get()
    expected = np.maximum(x.astype(np.float64) @ w + b, 0)
    error = float(np.linalg.norm(y - expected) / np.linalg.norm(expected))
    if not error < 1e-5:
        raise AssertionError(f"dense_forward's relative error vs float64 is {error:.2e} (> 1e-5)")
    return {"kernel": "dense_forward (gemm_nn)", "relative_error_vs_float64": error}


def check_graph_capture():
    from bench_train_step import FACES_SHAPE, faces_model, host_batches

    from gpucnn import backend, step_runners
    model = faces_model()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], jit_graph=True)
    x, y = model.prepare_training(*host_batches(FACES_SHAPE, FACES_BATCH))
    runner = step_runners.GraphStep(model)
    if type(runner._capture) is not step_runners.CudaGraphCapture:
        raise AssertionError(f"the graph runner uses {type(runner._capture).__name__}, not a CUDA graph")
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the failed-capture warning: fail, don't fall back
        for i in range(3):
            loss, _ = runner(x[i * FACES_BATCH:(i + 1) * FACES_BATCH], y[i * FACES_BATCH:(i + 1) * FACES_BATCH])
            losses.append(float(backend.current().to_numpy(loss)))
    counts = {"captures": runner.captures, "replays": runner.replays, "eager_steps": runner.eager_steps}
    if counts != {"captures": 1, "replays": 2, "eager_steps": 1}:
        raise AssertionError(f"three steps should be 1 eager warm-up + 1 capture + 2 replays, got {counts}")
    if not np.all(np.isfinite(losses)):
        raise AssertionError(f"non-finite losses {losses}")
    return {**counts, "losses": losses}


CHECKS = (("versions", check_versions), ("device", check_device), ("numba_kernel", check_numba_kernel),
          ("cuda_c_kernel", check_cuda_c_kernel), ("graph_capture", check_graph_capture))


def compile_cuda_c():
    from gpucnn import backend
    from gpucnn.cuda import nvrtc, runtime
    reason = backend.cuda_unavailable_reason()
    if reason is not None:
        print(f"not compiled: {reason}")
        return 0
    backend.set_backend("cuda")
    for filename in nvrtc.cuda_sources():
        begin = time.perf_counter()
        runtime.compile_module(filename)
        print(f"compiled {filename} in {time.perf_counter() - begin:.1f} s", flush=True)
    return 0


def run(output):
    """Run every check in order, writing ``output`` after each; returns the exit status."""
    report = {"status": "running", "checks": []}
    failed = None
    for name, check in CHECKS:
        begin = time.perf_counter()
        entry = {"check": name}
        if failed:
            entry.update(status="not run", reason=f"{failed} failed")
        else:
            try:
                entry.update(status="passed", detail=check())
            except Exception as error:
                traceback.print_exc()
                failed = name
                entry.update(status="failed", error=f"{type(error).__name__}: {error}")
        entry["seconds"] = round(time.perf_counter() - begin, 3)
        report["checks"].append(entry)
        print(f"preflight {name:14s} {entry['status']:8s} {entry['seconds']:7.2f} s  "
              f"{entry.get('error') or entry.get('reason') or ''}", flush=True)
        report["status"] = "failed" if failed else "running"
        output.write_text(json.dumps(report, indent=1, default=str) + "\n")
    report["status"] = "failed" if failed else "passed"
    output.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 1 if failed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("output", nargs="?", type=pathlib.Path, help="the JSON report to write")
    parser.add_argument("--exports", action="store_true", help="print export lines for the shell and exit")
    parser.add_argument("--compile", action="store_true", help="compile kernels/*.cu for this GPU and exit")
    args = parser.parse_args(argv)
    if args.compile:
        return compile_cuda_c()
    if args.exports:
        for name, value in environment_exports(os.environ, sys.path).items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if args.output is None:
        parser.error("give OUTPUT_JSON (or --exports)")
    return run(args.output)


if __name__ == "__main__":
    sys.exit(main())
