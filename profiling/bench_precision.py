"""Validate, then benchmark the conv passes and Dense GEMMs at every precision of gpucnn.config against
PyTorch at the same precision.  Needs a GPU, CuPy and PyTorch:

    python profiling/bench_precision.py [results_dir] [--batch 128] [--warmup 3] [--repeat 20] [--candidates]

Pairs: 'highest' (our FP32 kernels) vs PyTorch strict FP32 (fp32_precision 'ieee'), 'high' (TF32 tensor
cores) vs PyTorch TF32 ('tf32'), 'medium' (BF16 tensor cores) vs PyTorch on bfloat16 operands (the cuDNN /
cuBLAS BF16 kernels with FP32 accumulation that autocast runs; the casts are not timed).  Each case is
first validated: the relative error ‖result − oracle‖ / ‖oracle‖ of ours and of PyTorch's against a
float64 oracle (the NumPy reference in float64 on the unrounded inputs of the first VALIDATION_SAMPLES
samples) must stay below MAX_RELATIVE_ERROR[precision].  Then both are timed with CUDA events (median of
--repeat after --warmup) at the full batch: ours with the autotuned choice and, with --candidates, every
tile / split-K candidate of the launcher.  One case per (shape, precision): a failed validation fails
that case and the run goes on.  Results (errors, ms, TFLOP/s, PyTorch/ours per pass) go to
<results_dir>/precision-<gpu>-<date>.json, rewritten after every case; the exit status is 1 when a case
failed.

--dry-run needs neither a GPU nor PyTorch: every case of ours runs on the cpu backend (the NumPy reference
with the kernels' operand rounding) and is validated against the oracle; nothing is timed and the report
records no speed.  It checks the script and the error bounds, not the kernels (tests/kernels does that).
"""
import contextlib
import functools
import math
import sys

import numpy as np
from bench_conv import SHAPES as CONV_SHAPES
from bench_conv import make_inputs, torch_ops
from benchlib import Report, ValidationError, argument_parser, device_time_ms

from gpucnn import backend, profiler, reference
from gpucnn.contract.precision import PRECISIONS

# (name, input features, units) of the Dense GEMMs: the article model's last layer and a large square one.
DENSE_SHAPES = [("article-dense 512->1", 512, 1), ("dense 4096->4096", 4096, 4096)]
# ‖ours − float64‖ / ‖float64‖ allowed per precision: float32 accumulation lands far below 1e-4; TF32
# operands (2⁻¹¹ relative rounding each) and BF16 ones (2⁻⁸) land near their rounding error.
MAX_RELATIVE_ERROR = {"highest": 1e-4, "high": 4e-3, "medium": 3e-2}
VALIDATION_SAMPLES = 2
PASSES = ("forward", "backward_data", "backward_filter")


def conv_case(ops, x, w, b, dy, strides, padding, precision):
    """{pass: our op at ``precision`` on these arrays} for one convolution (``ops``: a backend's ops)."""
    return {"forward": lambda: ops.conv2d_forward(x, w, b, strides, padding, "relu", precision=precision),
            "backward_data": lambda: ops.conv2d_backward_data(dy, w, x.shape, strides, padding, precision=precision),
            "backward_filter": lambda: ops.conv2d_backward_filter(x, dy, w.shape[:2], strides, padding,
                                                                  precision=precision)}


def dense_inputs(xp, features, units, batch):
    rng = xp.random.default_rng(0)
    x = rng.standard_normal((batch, features), dtype=xp.float32)
    w = rng.standard_normal((features, units), dtype=xp.float32) / np.float32(math.sqrt(features))
    b = rng.standard_normal(units, dtype=xp.float32)
    dy = rng.standard_normal((batch, units), dtype=xp.float32)
    return x, w, b, dy


def dense_case(ops, x, w, b, dy, precision):
    return {"forward": lambda: ops.dense_forward(x, w, b, "relu", precision=precision),
            "backward_data": lambda: ops.dense_backward_data(dy, w, precision=precision),
            "backward_filter": lambda: ops.dense_backward_weights(x, dy, precision=precision)}


def cases(batch):
    """(name, flops per pass, inputs(xp, batch), our ops(ops, inputs, precision), PyTorch's ops(inputs)) of
    every conv and Dense shape."""
    for name, x_hwc, kernel, strides, padding in CONV_SHAPES:
        out_h, out_w = (math.ceil(s / t) if padding == "same" else (s - k) // t + 1
                        for s, k, t in zip(x_hwc[:2], kernel[:2], strides))
        flops = 2.0 * batch * out_h * out_w * kernel[2] * kernel[0] * kernel[1] * x_hwc[2]
        yield (name, flops,
               lambda xp, n, shape=(x_hwc, kernel, strides, padding): make_inputs(xp, *shape, n),
               lambda ops, inputs, p, geometry=(strides, padding): conv_case(ops, *inputs, *geometry, p),
               lambda inputs, geometry=(strides, padding): torch_conv(inputs, *geometry))
    for name, features, units in DENSE_SHAPES:
        yield (name, 2.0 * batch * features * units,
               lambda xp, n, shape=(features, units): dense_inputs(xp, *shape, n),
               lambda ops, inputs, p: dense_case(ops, *inputs, p), torch_dense)


def torch_conv(inputs, strides, padding):
    """PyTorch's conv passes (bench_conv's calls) on our arrays (CuPy arrays or tensors, in our layouts),
    each result viewed in our layout (NHWC, HWIO: a permute, no copy).  The forward is the convolution
    with bias alone: our fused ReLU is applied to its result when validating."""
    import torch
    x, w, b, dy = (torch.as_tensor(a) for a in inputs)
    ops = torch_ops(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last),
                    b, dy.permute(0, 3, 1, 2), strides, padding)
    layouts = {"forward": (0, 2, 3, 1), "backward_data": (0, 2, 3, 1), "backward_filter": (2, 3, 1, 0)}
    return {op: lambda run=entry[0], axes=layouts[op]: run().permute(*axes) for op, entry in ops.items()}


def torch_dense(inputs):
    """PyTorch's Dense passes on our arrays; the forward is x·w + b (ReLU applied when validating)."""
    import torch
    x, w, b, dy = (torch.as_tensor(a) for a in inputs)
    return {"forward": lambda: torch.addmm(b, x, w), "backward_data": lambda: dy @ w.T,
            "backward_filter": lambda: x.T @ dy}


@contextlib.contextmanager
def torch_at(torch, precision):
    """PyTorch's float32 convolutions and matmuls in the mode that matches our ``precision`` ('medium':
    strict FP32 flags, the operands themselves are bfloat16)."""
    saved = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    mode = "tf32" if precision == "high" else "ieee"
    torch.backends.cudnn.conv.fp32_precision = torch.backends.cuda.matmul.fp32_precision = mode
    try:
        yield
    finally:
        torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved


def relative_error(result, oracle):
    result = np.asarray(result.get() if hasattr(result, "get") else result, dtype=np.float64)
    return float(np.linalg.norm(result - oracle) / np.linalg.norm(oracle))


def float64_oracle(make, ours_for):
    """(float32 inputs of VALIDATION_SAMPLES samples, {pass: the float64 NumPy reference on them})."""
    host = make(np, VALIDATION_SAMPLES)
    return host, {op: run() for op, run in ours_for(reference, [a.astype(np.float64) for a in host], None).items()}


def validate(name, host, oracle, ours_for, torch_for, precision, on_gpu):
    """Errors of ours (and PyTorch's, on the GPU) against the float64 oracle on the inputs ``host``."""
    if on_gpu:
        import cupy
        import torch
        device = [cupy.asarray(a) for a in host]
        ours = {op: run() for op, run in ours_for(backend.current().ops, device, precision).items()}
        if precision == "medium":
            device = [torch.as_tensor(a).bfloat16() for a in device]
        with torch_at(torch, precision):
            theirs = {op: run().float().cpu().numpy() for op, run in torch_for(device).items()}
        theirs["forward"] = np.maximum(theirs["forward"], 0)
    else:
        ours = {op: run() for op, run in ours_for(backend.current().ops, host, precision).items()}
        theirs = {}
    errors = {op: {"ours": relative_error(ours[op], oracle[op]),
                   "torch": relative_error(theirs[op], oracle[op]) if theirs else None} for op in PASSES}
    for op, error in errors.items():
        if not error["ours"] < MAX_RELATIVE_ERROR[precision]:
            raise ValidationError(f"{name} {op} at {precision!r}: relative error {error['ours']:.2e} > "
                                  f"{MAX_RELATIVE_ERROR[precision]:.0e}; not timing a wrong kernel.")
    return errors


def timed_candidates(run, warmup, repeat):
    """{'tile/splits': ms} of ``run()`` (one GEMM launch) with each candidate of the launcher forced."""
    from gpucnn.cuda import autotune
    with autotune.recording() as calls:
        run()
    (_, candidates), = calls
    times = {}
    for candidate in candidates:
        with autotune.forced(candidate):
            times["/".join(map(str, candidate))] = device_time_ms(run, "cupy", warmup, repeat)["median_ms"]
    return times


def device_arrays():
    import cupy
    return cupy


def measure(report, args, on_gpu):
    """One case of ``report`` per (shape, precision): its errors and, on the GPU, its times per pass."""
    for name, flops, make, ours_for, torch_for in cases(args.batch):
        host, oracle = float64_oracle(make, ours_for)
        for precision in PRECISIONS:
            case = functools.partial(measure_case, name, flops, make, ours_for, torch_for, host, oracle, precision,
                                     args, on_gpu)
            entry = report.case(f"{name} {precision}", case)
            if entry["status"] == "passed":
                print_passes(entry)


def measure_case(name, flops, make, ours_for, torch_for, host, oracle, precision, args, on_gpu):
    errors = validate(name, host, oracle, ours_for, torch_for, precision, on_gpu)
    inputs = make(device_arrays(), args.batch) if on_gpu else None
    passes = {}
    for op in PASSES:
        passes[op] = {"ours_error": errors[op]["ours"], "torch_error": errors[op]["torch"],
                      "ours_ms": None, "torch_ms": None}
        if on_gpu:
            passes[op].update(time_pass(op, inputs, ours_for, torch_for, precision, flops, args))
    return {"shape": name, "precision": precision, "batch": args.batch, "flops": flops, "passes": passes}


def print_passes(entry):
    for op, r in entry["passes"].items():
        torch_error = f"{r['torch_error']:>9.1e}" if r["torch_error"] is not None else f"{'-':>9}"
        speeds = (f"{r['ours_tflops']:>10.2f} {r['torch_tflops']:>10.2f} {r['torch_over_ours']:>10.2f}"
                  if r["ours_ms"] is not None else f"{'-':>10} {'-':>10} {'-':>10}")
        print(f"{entry['shape']:<30} {op:<16} {entry['precision']:<9} {r['ours_error']:>9.1e} {torch_error} "
              f"{speeds}", flush=True)


def time_pass(op, inputs, ours_for, torch_for, precision, flops, args):
    import torch
    ours = ours_for(backend.current().ops, inputs, precision)[op]
    theirs_inputs = [torch.as_tensor(a).bfloat16() for a in inputs] if precision == "medium" else inputs
    with torch_at(torch, precision):
        theirs = torch_for(theirs_inputs)[op]
        torch_ms = device_time_ms(theirs, "torch", args.warmup, args.repeat)["median_ms"]
    ours_ms = device_time_ms(ours, "cupy", args.warmup, args.repeat)["median_ms"]
    result = {"ours_ms": ours_ms, "torch_ms": torch_ms, "ours_tflops": flops / ours_ms / 1e9,
              "torch_tflops": flops / torch_ms / 1e9, "torch_over_ours": torch_ms / ours_ms}
    if args.candidates:
        result["candidates_ms"] = timed_candidates(ours, args.warmup, args.repeat)
    return result


def parse_args(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--candidates", action="store_true", help="also time every tile / split-K candidate")
    parser.add_argument("--dry-run", action="store_true",
                        help="no GPU, no PyTorch: validate our ops on the cpu backend, time nothing")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    on_gpu = not args.dry_run
    backend.set_backend("cuda" if on_gpu else "cpu")
    env = profiler.environment()
    if on_gpu:
        import torch
        env["torch"] = torch.__version__
    report = Report(args.results_dir, "precision", {**env, "settings": vars(args), "timed": on_gpu})
    print(f"{(env.get('gpu') or {}).get('name', 'no GPU: dry run, nothing timed')}, batch {args.batch}")
    print(f"{'shape':<30} {'op':<16} {'precision':<9} {'ours err':>9} {'torch err':>9} {'ours TF/s':>10} "
          f"{'torch TF/s':>10} {'torch/ours':>10}")
    measure(report, args, on_gpu)
    return report.finish()

if __name__ == "__main__":
    sys.exit(main())
