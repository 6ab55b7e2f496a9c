"""Validate, then benchmark our CUDA C convolutions (forward with bias + ReLU epilogue, backward-data,
backward-filter) against cuDNN through PyTorch in strict FP32, on the article model's three conv layers at
batch 128 and two common shapes.  Needs a GPU, CuPy and PyTorch:

    python profiling/bench_conv.py [results_dir] [--repeat 20] [--warmup 3] [--batch 128]

Each op is first checked against PyTorch in float64 (relative error ‖ours − ref‖ / ‖ref‖), then timed with
CUDA events (median of --repeat runs after --warmup).  Results (GPU, driver, versions, date, per-op time
and TFLOP/s) go to <results_dir>/conv-<gpu>-<date>.json, by default profiling/results/.
"""
import argparse

import numpy as np
from benchlib import RESULTS_DIR, device_time_ms, write_report

from gpucnn.contract import shapes

# (name, x shape without batch, kernel (kh, kw, filters), strides, padding)
SHAPES = [
    ("article-conv1 100x100x1->512", (100, 100, 1), (3, 3, 512), (1, 1), "valid"),
    ("article-conv2 32x32x512->256", (32, 32, 512), (3, 3, 256), (1, 1), "valid"),
    ("article-conv3 10x10x256->128", (10, 10, 256), (3, 3, 128), (1, 1), "valid"),
    ("3x3 64->64 at 56x56", (56, 56, 64), (3, 3, 64), (1, 1), "same"),
    ("3x3 1->32 at 28x28", (28, 28, 1), (3, 3, 32), (1, 1), "same"),
]
MAX_RELATIVE_ERROR = 1e-4  # float32 accumulation over K <= 1.3M terms lands far below this


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
    """{op: (PyTorch's op on these tensors, the float64 PyTorch reference in our layout)}.  The tensors are
    NCHW (x, dy) and OIHW (w) in logical order; the reference comes back as NHWC (forward with ReLU,
    backward-data) and HWIO (backward-filter), as our kernels return them."""
    import torch
    import torch.nn.functional as F

    pad = torch_padding(padding, x_t.shape[2:], w_t.shape[2:], strides)

    def forward(x_, w_, b_):
        return F.conv2d(x_, w_, b_, stride=strides, padding=pad)

    def backward_data(dy_, w_):
        return torch.nn.grad.conv2d_input(x_t.shape, w_, dy_, stride=strides, padding=pad)

    def backward_filter(x_, dy_):
        return torch.nn.grad.conv2d_weight(x_, w_t.shape, dy_, stride=strides, padding=pad)

    return {
        "forward": (lambda: forward(x_t, w_t, b_t),
                    lambda: torch.relu(forward(x_t.double(), w_t.double(), b_t.double())).permute(0, 2, 3, 1)),
        "backward_data": (lambda: backward_data(dy_t, w_t),
                          lambda: backward_data(dy_t.double(), w_t.double()).permute(0, 2, 3, 1)),
        "backward_filter": (lambda: backward_filter(x_t, dy_t),
                            lambda: backward_filter(x_t.double(), dy_t.double()).permute(2, 3, 1, 0)),
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


def bench_shape(name, x_hwc, kernel, strides, padding, batch, warmup, repeat):
    import cupy
    import torch
    from gpucnn.cuda import conv

    kh, kw, filters = kernel
    x, w, b, dy = make_inputs(cupy, x_hwc, kernel, strides, padding, batch)

    # PyTorch views of the same memory: NCHW logical order with channels-last strides, so cuDNN runs its
    # NHWC kernels on exactly our layout.
    theirs = torch_ops(torch.from_dlpack(x).permute(0, 3, 1, 2),
                       torch.from_dlpack(w).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last),
                       torch.from_dlpack(b), torch.from_dlpack(dy).permute(0, 3, 1, 2), strides, padding)
    ours = {"forward": lambda: conv.conv2d_forward(x, w, b, strides, padding, "relu"),
            "backward_data": lambda: conv.conv2d_backward_data(dy, w, x.shape, strides, padding),
            "backward_filter": lambda: conv.conv2d_backward_filter(x, dy, (kh, kw), strides, padding)}
    flops = 2.0 * batch * dy.shape[1] * dy.shape[2] * filters * kh * kw * x_hwc[2]
    rows = []
    for op, (their_op, reference64) in theirs.items():
        error = relative_error(ours[op](), reference64())
        torch.cuda.empty_cache()
        if not error < MAX_RELATIVE_ERROR:
            raise SystemExit(f"{name} {op}: relative error {error:.2e} > {MAX_RELATIVE_ERROR:.0e}; not timing "
                             f"a wrong kernel.")
        ours_ms = device_time_ms(ours[op], "cupy", warmup, repeat)["median_ms"]
        cudnn_ms = device_time_ms(their_op, "torch", warmup, repeat)["median_ms"]
        rows.append(dict(shape=name, op=op, batch=batch, flops=flops, relative_error=error,
                         ours_ms=ours_ms, cudnn_fp32_ms=cudnn_ms,
                         ours_tflops=flops / ours_ms / 1e9, cudnn_fp32_tflops=flops / cudnn_ms / 1e9,
                         ratio_vs_cudnn=cudnn_ms / ours_ms))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", nargs="?", default=str(RESULTS_DIR),
                        help="where the JSON goes (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    import torch
    torch.backends.cudnn.allow_tf32 = False   # strict FP32, as our kernels
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True     # let cuDNN pick its fastest algorithm
    from gpucnn import backend, profiler
    backend.set_backend("cuda")

    env = {**profiler.environment(), "cudnn": torch.backends.cudnn.version(),
           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}
    rows = []
    for shape in SHAPES:
        rows += bench_shape(*shape, batch=args.batch, warmup=args.warmup, repeat=args.repeat)
    print(f"{env['gpu']['name']}, batch {args.batch}, median of {args.repeat}")
    print(f"{'shape':<30} {'op':<16} {'ours ms':>9} {'cuDNN ms':>9} {'ours TF/s':>10} {'cuDNN TF/s':>11} "
          f"{'cuDNN/ours':>10} {'rel err':>8}")
    for r in rows:
        print(f"{r['shape']:<30} {r['op']:<16} {r['ours_ms']:>9.3f} {r['cudnn_fp32_ms']:>9.3f} "
              f"{r['ours_tflops']:>10.2f} {r['cudnn_fp32_tflops']:>11.2f} {r['ratio_vs_cudnn']:>10.2f} "
              f"{r['relative_error']:>8.1e}")
    write_report(args.results_dir, "conv", {**env, "settings": vars(args), "results": rows})


if __name__ == "__main__":
    main()
