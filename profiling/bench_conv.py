"""Validate, then benchmark our CUDA C convolutions (forward with bias + ReLU epilogue, backward-data,
backward-filter) against cuDNN through PyTorch in strict FP32, on the article model's three conv layers at
batch 128 and two common shapes.  Needs a GPU, CuPy and PyTorch:

    python profiling/bench_conv.py [results_dir] [--repeat 20] [--warmup 3] [--batch 128]

Each (shape, op) is one case.  First our result and cuDNN's are checked against a float64 PyTorch oracle
on the first few samples of the batch (forward and backward-data: those rows of the full-batch result;
backward-filter: both sides run on those samples), ``‖ours − oracle‖ / ‖oracle‖``; cuDNN's own error is
recorded beside ours, so a TF32 run cannot pass as FP32.  A mismatch on either side fails the case and the
run goes on.  Then both are timed with CUDA events (median of --repeat runs after --warmup).  The JSON
(GPU, driver, versions, date, per-op time and TFLOP/s) is rewritten after every case, to
<results_dir>/conv-<gpu>-<date>.json, by default profiling/results/.
"""
import contextlib
import sys

import numpy as np
from benchlib import (
    Report,
    ValidationError,
    argument_parser,
    device_time_ms,
    set_torch_fp32_precision,
)

from gpucnn.contract import shapes

# (name, x shape without batch, kernel (kh, kw, filters), strides, padding)
SHAPES = [
    ("article-conv1 100x100x1->512", (100, 100, 1), (3, 3, 512), (1, 1), "valid"),
    ("article-conv2 32x32x512->256", (32, 32, 512), (3, 3, 256), (1, 1), "valid"),
    ("article-conv3 10x10x256->128", (10, 10, 256), (3, 3, 128), (1, 1), "valid"),
    ("3x3 64->64 at 56x56", (56, 56, 64), (3, 3, 64), (1, 1), "same"),
    ("3x3 1->32 at 28x28", (28, 28, 1), (3, 3, 32), (1, 1), "same"),
]
MAX_RELATIVE_ERROR = 1e-4  # float32 accumulation over K <= 1.3M terms lands far below this; TF32 does not
VALIDATION_SAMPLES = 2     # the float64 oracle runs on this many samples, not on the batch of 128


def relative_error(ours, reference):
    import torch
    ours = torch.from_dlpack(ours).double()
    return float(torch.linalg.vector_norm(ours - reference) / torch.linalg.vector_norm(reference))


def torch_padding(padding, x_hw, kernel_hw, strides):
    """PyTorch's (pad_h, pad_w) for our ``padding`` (TensorFlow arithmetic).  Not the string 'same':
    ``torch.nn.grad.conv2d_input`` / ``conv2d_weight`` take only integers."""
    if padding == "valid":
        return 0, 0
    pads = [shapes.same_padding(size, k, s) for size, k, s in zip(x_hw, kernel_hw, strides)]
    if any(before != after for before, after in pads):
        raise ValueError(f"Argument `padding`: 'same' pads {pads} ((before, after) per axis) for input "
                         f"{tuple(x_hw)}, kernel {tuple(kernel_hw)}, strides {tuple(strides)}; PyTorch's "
                         f"integer padding is symmetric. Fix: benchmark a shape with an odd kernel and "
                         f"stride 1.")
    return tuple(before for before, _ in pads)


def torch_ops(x_t, w_t, b_t, dy_t, strides, padding):
    """{op: (PyTorch's op on these tensors, the float64 PyTorch oracle in our layout, the conversion of
    the op's result to our layout)}.  The tensors are NCHW (x, dy) and OIHW (w) in logical order; our
    layouts are NHWC (forward with ReLU, backward-data) and HWIO (backward-filter)."""
    import torch
    import torch.nn.functional as F

    pad = torch_padding(padding, x_t.shape[2:], w_t.shape[2:], strides)

    def forward(x_, w_, b_):
        return F.conv2d(x_, w_, b_, stride=strides, padding=pad)

    def backward_data(dy_, w_):
        return torch.nn.grad.conv2d_input(x_t.shape, w_, dy_, stride=strides, padding=pad)

    def backward_filter(x_, dy_):
        return torch.nn.grad.conv2d_weight(x_, w_t.shape, dy_, stride=strides, padding=pad)

    def nhwc(t):
        return t.permute(0, 2, 3, 1)

    def hwio(t):
        return t.permute(2, 3, 1, 0)

    def relu_nhwc(t):  # our forward fuses the ReLU; PyTorch's timed op is the convolution alone
        return nhwc(torch.relu(t))

    return {
        "forward": (lambda: forward(x_t, w_t, b_t),
                    lambda: relu_nhwc(forward(x_t.double(), w_t.double(), b_t.double())), relu_nhwc),
        "backward_data": (lambda: backward_data(dy_t, w_t),
                          lambda: nhwc(backward_data(dy_t.double(), w_t.double())), nhwc),
        "backward_filter": (lambda: backward_filter(x_t, dy_t),
                            lambda: hwio(backward_filter(x_t.double(), dy_t.double())), hwio),
    }


def make_inputs(xp, x_hwc, kernel, strides, padding, batch):
    """Random float32 x, w, b and dy of one shape in our layouts (NHWC, HWIO), made by ``xp`` (CuPy for the
    benchmark, NumPy for the CPU test of the PyTorch side)."""
    kh, kw, filters = kernel
    rng = xp.random.default_rng(0)
    x = rng.standard_normal((batch, *x_hwc), dtype=xp.float32)
    w = rng.standard_normal((kh, kw, x_hwc[2], filters), dtype=xp.float32)
    # A float32 scale: dividing by NumPy's float64 scalar would make w float64 (NEP 50 promotion).
    w /= np.float32(np.sqrt(kh * kw * x_hwc[2]))
    b = rng.standard_normal(filters, dtype=xp.float32)
    out_h, out_w, _, _ = shapes.window_geometry(x_hwc[0], x_hwc[1], (kh, kw), strides, padding)
    dy = rng.standard_normal((batch, out_h, out_w, filters), dtype=xp.float32)
    return x, w, b, dy


@contextlib.contextmanager
def tile_replaced(tile, only_instead_of=None):
    """While active, the launchers take ``tile`` wherever the heuristic would take ``only_instead_of``
    (None: everywhere), with the autotuner off; yields the list of (m, n, k) problems it was taken for."""
    from gpucnn.cuda import autotune, gemm
    choose, replaced = gemm.choose_tile, []

    def choose_variant(m, n, k):
        chosen = choose(m, n, k)
        if only_instead_of is not None and chosen != only_instead_of:
            return chosen
        replaced.append((m, n, k))
        return tile

    gemm.choose_tile = choose_variant
    try:
        with autotune.autotuning(False):
            yield replaced
    finally:
        gemm.choose_tile = choose


def two_blocks_candidate(run, run_few, reference, warmup, repeat):
    """Time of the __launch_bounds__(256, 2) backward-filter tile where the default choice is 128x128
    (checked against the float64 oracle like the default); {} where the default is another tile."""
    from gpucnn.cuda import gemm
    variant = gemm.LARGE_TILE_TWO_BLOCKS
    with tile_replaced(variant, only_instead_of=gemm.LARGE_TILE) as replaced:
        run()
        if not replaced:
            return {}
        ms = device_time_ms(run, "cupy", warmup, repeat)["median_ms"]
    with tile_replaced(variant):
        error = relative_error(run_few(), reference)
    if not error < MAX_RELATIVE_ERROR:
        raise ValidationError(f"the two-blocks-per-SM tile's relative error vs float64 is {error:.2e}")
    return {"ours_two_blocks_ms": ms, "two_blocks_relative_error": error}


def bench_shape(report, name, x_hwc, kernel, strides, padding, batch, warmup, repeat):
    """One case per op of this shape, added to ``report``."""
    import cupy
    import torch

    from gpucnn.cuda import conv

    kh, kw, filters = kernel
    x, w, b, dy = make_inputs(cupy, x_hwc, kernel, strides, padding, batch)
    s = VALIDATION_SAMPLES

    def theirs_for(x_, dy_):
        # PyTorch views of the same memory: NCHW logical order with channels-last strides, so cuDNN runs
        # its NHWC kernels on exactly our layout.
        return torch_ops(torch.from_dlpack(x_).permute(0, 3, 1, 2),
                         torch.from_dlpack(w).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last),
                         torch.from_dlpack(b), torch.from_dlpack(dy_).permute(0, 3, 1, 2), strides, padding)

    def ours_for(x_, dy_):
        return {"forward": lambda: conv.conv2d_forward(x_, w, b, strides, padding, "relu"),
                "backward_data": lambda: conv.conv2d_backward_data(dy_, w, x_.shape, strides, padding),
                "backward_filter": lambda: conv.conv2d_backward_filter(x_, dy_, (kh, kw), strides, padding)}

    full_theirs, full_ours = theirs_for(x, dy), ours_for(x, dy)
    few_theirs, few_ours = theirs_for(x[:s], dy[:s]), ours_for(x[:s], dy[:s])
    flops = 2.0 * batch * dy.shape[1] * dy.shape[2] * filters * kh * kw * x_hwc[2]

    def measure(op):
        their_op, _, to_ours = full_theirs[op]
        _, oracle, _ = few_theirs[op]
        if op == "backward_filter":  # sums over the batch: both sides run on the validation samples
            ours_out, theirs_out = few_ours[op](), to_ours(few_theirs[op][0]())
        else:  # one output row per sample: the first rows of the full-batch results
            ours_out, theirs_out = full_ours[op]()[:s], to_ours(their_op())[:s]
        reference = oracle()
        error, cudnn_error = relative_error(ours_out, reference), relative_error(theirs_out, reference)
        del ours_out, theirs_out
        torch.cuda.empty_cache()
        if not cudnn_error < MAX_RELATIVE_ERROR:
            raise ValidationError(f"cuDNN's relative error vs float64 is {cudnn_error:.2e} (> "
                                  f"{MAX_RELATIVE_ERROR:.0e}): it is not running strict FP32 (TF32?)")
        if not error < MAX_RELATIVE_ERROR:
            raise ValidationError(f"relative error vs float64 {error:.2e} > {MAX_RELATIVE_ERROR:.0e}; not "
                                  f"timing a wrong kernel")
        ours_ms = device_time_ms(full_ours[op], "cupy", warmup, repeat)["median_ms"]
        cudnn_ms = device_time_ms(their_op, "torch", warmup, repeat)["median_ms"]
        result = dict(shape=name, op=op, batch=batch, flops=flops, relative_error=error,
                      cudnn_relative_error=cudnn_error, ours_ms=ours_ms, cudnn_fp32_ms=cudnn_ms,
                      ours_tflops=flops / ours_ms / 1e9, cudnn_fp32_tflops=flops / cudnn_ms / 1e9,
                      ratio_vs_cudnn=cudnn_ms / ours_ms)
        if op == "backward_filter":
            result.update(two_blocks_candidate(full_ours[op], few_ours[op], reference, warmup, repeat))
        return result

    for op in full_ours:
        entry = report.case(f"{name} {op}", lambda op=op: measure(op))
        if entry["status"] == "passed":
            print(f"{name:<30} {op:<16} ours {entry['ours_ms']:9.3f} ms  cuDNN {entry['cudnn_fp32_ms']:9.3f} ms  "
                  f"cuDNN/ours {entry['ratio_vs_cudnn']:5.2f}  error {entry['relative_error']:.1e} "
                  f"(cuDNN {entry['cudnn_relative_error']:.1e})", flush=True)


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args(argv)

    import torch
    set_torch_fp32_precision(torch, "ieee")  # strict FP32, as our kernels; verified per case
    torch.backends.cudnn.benchmark = True    # let cuDNN pick its fastest algorithm
    from gpucnn import backend, profiler
    backend.set_backend("cuda")

    env = {**profiler.environment(), "cudnn": torch.backends.cudnn.version(),
           "cudnn_conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision}
    report = Report(args.results_dir, "conv", {**env, "settings": vars(args)})
    print(f"{env['gpu']['name']}, batch {args.batch}, median of {args.repeat}")
    for shape in SHAPES:
        bench_shape(report, *shape, batch=args.batch, warmup=args.warmup, repeat=args.repeat)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
