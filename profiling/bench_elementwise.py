"""Validate, then benchmark the Numba kernels (activations, bias, dropout, pooling, batch-norm, optimizers,
losses) on a CUDA GPU, llm.c style, and one CUDA C kernel (a skinny dense_forward, K = 64, nearly
memory-bound) whose launch overhead is that of every CUDA C launcher (the cached kernel lookup).

First a device-to-device copy of the large size (the bandwidth ceiling), then one case per op:
1. Validate the op on the ``cuda`` backend against the NumPy reference on mid-size inputs; a mismatch
   fails the case (nothing of it is timed) and the run goes on.
2. Benchmark it on large tensors, timed with CUDA events (warm-up, then the median of repeats), as GB/s
   of the bytes it must move, next to the copy (goal: >= 80 % of it for relu, bias add, dropout, Adam).
3. Its launch overhead: Python-side µs per call on a tiny tensor (enqueue only, no sync).

The JSON report (GPU, driver, library versions, date, numbers) is rewritten after every case, to
``<output_dir>/elementwise-<gpu>-<date>.json`` (default output_dir: profiling/results).

    python profiling/bench_elementwise.py [output_dir] [--elements N] [--repeats R]
"""
import argparse
import os
import sys
import time

import numpy as np
from benchlib import RESULTS_DIR, Report, ValidationError, device_time_ms


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", nargs="?", default=str(RESULTS_DIR),
                        help="folder for the JSON report (default: %(default)s)")
    parser.add_argument("--elements", type=int, default=1 << 26,
                        help="float32 elements of the large tensors (default: %(default)s = 256 MiB)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per op (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per op (default: %(default)s)")
    parser.add_argument("--launches", type=int, default=200,
                        help="calls per op when measuring launch overhead (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.elements < 1 << 16 or args.repeats < 1 or args.warmup < 0 or args.launches < 1:
        parser.error("need --elements >= 65536, --repeats >= 1, --warmup >= 0, --launches >= 1")
    return args


MAX_ERROR = 1e-4  # max relative error vs the NumPy reference (float32 on both sides)


def cases(elements):
    """(name, call, bytes moved per call, inputs for validation) for every op at ``elements`` floats."""
    rng = np.random.default_rng(0)

    def host(shape, low=-2.0, high=2.0):
        return rng.uniform(low, high, shape).astype(np.float32)

    channels = 64
    side = int((elements // (channels * 16)) ** 0.5) // 2 * 2  # batch 16 of side x side x 64, even side
    nhwc = (16, side, side, channels)
    n = int(np.prod(nhwc))
    rows, classes = max(64, elements // 16384), 1000
    f = 4  # bytes per float32 / int32

    x, dy = host(nhwc), host(nhwc)
    y_sigmoid = 1 / (1 + np.exp(-x))
    b = host((channels,))
    gamma, beta = host((channels,), 0.5, 1.5), host((channels,))
    pooled = (16, side // 2, side // 2, channels)
    dy_pool = host(pooled)
    logits = host((rows, classes), -5, 5)
    labels = rng.integers(0, classes, rows).astype(np.int32)
    flat = host((n,))
    grad, m, v = host((n,)), host((n,)), np.abs(host((n,)))
    mean, inv_std = x.reshape(-1, channels).mean(0), 1 / np.sqrt(x.reshape(-1, channels).var(0) + 1e-3)
    argmax = rng.integers(0, 4, pooled).astype(np.int32)
    step = np.array([10], np.int64)  # a step counter, as the layers and the optimizer keep on the device
    dense_x, dense_w, dense_b = host((n // 64, 64)), host((64, 64)), host((64,))

    # Each entry: op name, positional arguments (host arrays are moved to the device once), bytes moved.
    return [
        ("relu_forward", (x,), 2 * n * f),
        ("relu_backward", (dy, x), 3 * n * f),
        ("leaky_relu_forward", (x, 0.2), 2 * n * f),
        ("sigmoid_forward", (x,), 2 * n * f),
        ("sigmoid_backward", (dy, y_sigmoid), 3 * n * f),
        ("bias_add", (x, b), 2 * n * f),
        ("bias_backward", (dy,), n * f),
        ("dropout_forward", (x, 0.5, 1234, step), 2 * n * f),
        ("max_pool_forward", (x, (2, 2), (2, 2), "valid"), n * f + 2 * (n // 4) * f),
        ("max_pool_backward", (dy_pool, argmax, nhwc, (2, 2), (2, 2), "valid"), n * f + 2 * (n // 4) * f),
        ("batchnorm_forward_training", (x, gamma, beta, 1e-3), 4 * n * f),
        ("batchnorm_backward", (dy, x, gamma, mean.astype(np.float32), inv_std.astype(np.float32)), 5 * n * f),
        ("softmax_forward", (logits,), 2 * rows * classes * f),
        ("sparse_softmax_categorical_crossentropy", (logits, labels), 2 * rows * classes * f),
        ("adam_update", (flat, grad, m, v, step, 1e-3, 0.9, 0.999, 1e-7), 7 * n * f),
        ("sgd_update", (flat, grad, m, 0.01, 0.9, True), 5 * n * f),
        ("dense_forward", (dense_x, dense_w, dense_b, "relu"), 2 * n * f),
    ]


def to_device(cp, args):
    return tuple(cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args)


def to_host(result):
    if isinstance(result, tuple):
        return tuple(to_host(r) for r in result)
    return None if result is None else result.get()


def max_error(actual, expected):
    actual = actual if isinstance(actual, tuple) else (actual,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    return max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(e, np.float64)) /
                             (1 + np.abs(np.asarray(e, np.float64))), initial=0))
               for a, e in zip(actual, expected))


def validate(cp, ops, reference, name, args):
    """Relative max error of the op vs the reference (in-place ops compare the updated first buffer)."""
    host_args = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
    device_args = to_device(cp, host_args)
    result = getattr(ops, name)(*device_args)
    expected = getattr(reference, name)(*host_args)
    if result is None:  # in place: compare the updated parameter buffer
        return max_error(device_args[0].get(), host_args[0])
    return max_error(to_host(result), expected)


def copy_ms_of(cp, n, args):
    """Device time of a device-to-device copy of ``n`` float32 (its buffers are freed on return)."""
    source, target = cp.ones(n, dtype=cp.float32), cp.empty(n, dtype=cp.float32)

    def copy():
        cp.cuda.runtime.memcpyAsync(target.data.ptr, source.data.ptr, n * 4,
                                    cp.cuda.runtime.memcpyDeviceToDevice, cp.cuda.get_current_stream().ptr)

    return device_time_ms(copy, "cupy", args.warmup, args.repeats)["median_ms"]


def launch_overhead_us(cp, call, launches):
    """Python-side µs per call (enqueue only) once compiled and warm."""
    call()
    cp.cuda.get_current_stream().synchronize()
    begin = time.perf_counter()
    for _ in range(launches):
        call()
    elapsed = time.perf_counter() - begin
    cp.cuda.get_current_stream().synchronize()
    return elapsed / launches * 1e6


def main(argv=None):
    args = parse_args(argv)
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        sys.exit("NUMBA_ENABLE_CUDASIM is set: unset it, this benchmark needs a real GPU.")
    import cupy as cp

    from gpucnn import backend, profiler, reference

    backend.set_backend("cuda")
    ops = backend.current().ops
    info = profiler.environment()
    print(f"{info['gpu']['name']}  driver {info['gpu']['driver']}  {info['versions']}")

    n = args.elements
    report = Report(args.output_dir, "elementwise", {**info, "elements": n, "repeats": args.repeats})
    copy_ms = copy_ms_of(cp, n, args)
    copy_gbs = 2 * n * 4 / copy_ms / 1e6
    report.data["copy"] = {"median_ms": copy_ms, "gb_per_s": copy_gbs}
    print(f"{'device-to-device copy':42s} {copy_ms:8.3f} ms  {copy_gbs:8.1f} GB/s")

    mid = {name: op_args for name, op_args, _ in cases(1 << 20)}
    tiny = {name: op_args for name, op_args, _ in cases(1 << 16)}

    def measure(name, op_args, moved):
        error = validate(cp, ops, reference, name, mid[name])
        if not error < MAX_ERROR:
            raise ValidationError(f"max relative error vs the NumPy reference {error:.2e} >= {MAX_ERROR:.0e}")
        device_args = to_device(cp, op_args)
        ms = device_time_ms(lambda: getattr(ops, name)(*device_args), "cupy", args.warmup,
                            args.repeats)["median_ms"]
        tiny_args = to_device(cp, tiny[name])
        overhead = launch_overhead_us(cp, lambda: getattr(ops, name)(*tiny_args), args.launches)
        gbs = moved / ms / 1e6
        print(f"{name:42s} {ms:8.3f} ms  {gbs:8.1f} GB/s  {100 * gbs / copy_gbs:5.1f} % of copy  "
              f"launch {overhead:6.1f} µs")
        return {"op": name, "bytes": moved, "median_ms": ms, "gb_per_s": gbs, "fraction_of_copy": gbs / copy_gbs,
                "launch_overhead_us": overhead, "validation_max_rel_error": error}

    for name, op_args, moved in cases(n):
        report.case(name, lambda name=name, op_args=op_args, moved=moved: measure(name, op_args, moved))
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
