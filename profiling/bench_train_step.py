"""Benchmark whole training steps of gpucnn against PyTorch on the same GPU, in one run.

1. The article's model (examples/textures_cnn.py at full width: Conv2D 512/256/128 3x3 + MaxPooling2D 3x3
   on 100x100x1, sigmoid output), batch 128: gpucnn (eager launches and CUDA graph) vs PyTorch eager with
   cuDNN in strict FP32, and at each tensor-core precision gpucnn's CUDA graph vs PyTorch at the same
   precision ('high': TF32, fp32_precision 'tf32'; 'medium': BF16, autocast to bfloat16).  Goals: gpucnn
   <= 1.0x PyTorch's step time in FP32 and in TF32.
2. A small launch-bound model on faces()-sized inputs (25x25x1), batch 32: gpucnn with CUDA graphs vs
   PyTorch eager and vs PyTorch with its own CUDA graph (torch.cuda.graphs, capturable Adam): against
   eager alone the comparison would measure launch overhead only.  Goal: gpucnn >= 2x faster than eager.
3. Peak device memory of a training step of the article model, gpucnn vs PyTorch (allocator peaks:
   CuPy's pool in use, measured on untimed steps, vs torch.cuda.max_memory_allocated).  Goal: <= 1.2x.

PyTorch runs as fairly as we know how: cudnn.benchmark=True, channels-last tensors and weights (our layout
is NHWC), precision set with ``fp32_precision`` ('ieee' or 'tf32').  A step is forward + loss + backward
+ Adam on a batch already on the device (both sides cycle through several batches).  Each model is first
validated: gpucnn's and PyTorch's forward outputs at each precision on the first few samples, with the
same weights, against PyTorch in float64 (relative errors, all recorded; each within its precision's bound,
so a TF32 peer cannot pass as FP32).
gpucnn's graph runner must capture exactly once (a failed capture would time eager steps as "graph").
Times: CUDA events around runs of steps, after warm-up, median over repeats.  Last, the article model's
per-layer ``model.profile()`` table.  Every case (validation, each runner, the ratios, the profile) is
one entry of the JSON report, rewritten after each, to
<results_dir>/train_step-<gpu>-<date>.json; a failed case is recorded and the run goes on.

    python profiling/bench_train_step.py [results_dir] [--repeat 10] [--steps 5] [--warmup 3]
                                         [--precisions highest,high,medium]
"""
import argparse
import contextlib
import gc
import importlib.util
import itertools
import pathlib
import sys
import warnings

import numpy as np
from benchlib import (
    Report,
    ValidationError,
    argument_parser,
    device_time_ms,
    set_torch_fp32_precision,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
FACES_SHAPE = (25, 25, 1)
BATCHES_IN_ROTATION = 4  # distinct device batches cycled through, so no step re-reads a cached batch
# Relative error of the forward output vs float64, per precision: strict FP32 lands far below 1e-4 (TF32
# does not); TF32 / BF16 operands (2⁻¹¹ / 2⁻⁸ relative rounding each) land near their rounding error.
MAX_FORWARD_ERROR = {"highest": 1e-4, "high": 4e-3, "medium": 3e-2}
PRECISION_TAGS = {"highest": "fp32", "high": "tf32", "medium": "bf16"}  # case names: gpucnn_graph_tf32, ...
VALIDATION_SAMPLES = 4     # the float64 oracle runs on this many samples


def parse_args(argv=None):
    parser = argument_parser(__doc__, warmup=3, repeat=10)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed sample")
    parser.add_argument("--article-batch", type=int, default=128)
    parser.add_argument("--faces-batch", type=int, default=32)
    parser.add_argument("--width-divisor", type=int, default=1,
                        help="divide the article model's filter counts (1: the article's width)")
    parser.add_argument("--precisions", type=precision_list, default=("highest", "high", "medium"),
                        help="gpucnn.config precisions to time, comma-separated (default: all three)")
    return parser.parse_args(argv)


def precision_list(text):
    from gpucnn.contract.precision import PRECISIONS
    names = tuple(text.split(","))
    if not names or not set(names) <= set(PRECISIONS) or "highest" not in names:
        raise argparse.ArgumentTypeError(f"must be a comma-separated list of {', '.join(PRECISIONS)} that "
                                         f"holds 'highest' (the FP32 cases the goals compare), got {text!r}")
    return names


# -- models -----------------------------------------------------------------------------------------
def article_model(width_divisor):
    """The example's model, loaded from examples/textures_cnn.py so both always agree."""
    spec = importlib.util.spec_from_file_location("textures_cnn", ROOT / "examples" / "textures_cnn.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example.build_model(width_divisor)


def faces_model():
    """A small CNN for 25x25 grayscale faces: a handful of tiny kernels, so launch overhead dominates."""
    import gpucnn
    from gpucnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
    return gpucnn.Sequential([
        Conv2D(16, (3, 3), activation="relu", input_shape=FACES_SHAPE), MaxPooling2D((2, 2)),
        Conv2D(32, (3, 3), activation="relu"), MaxPooling2D((2, 2)),
        Flatten(), Dense(1, activation="sigmoid")], name="faces_cnn")


def torch_twin(model, device="cuda"):
    """The same network in PyTorch (NCHW), with gpucnn's initial weights, and a logits output."""
    import torch

    from gpucnn.layers import Conv2D, Dense, Flatten, MaxPooling2D

    class NhwcFlatten(torch.nn.Module):
        """Flatten in gpucnn's (h, w, c) order so the Dense weights mean the same thing."""

        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)

    modules = []
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            kernel = torch.from_numpy(layer.kernel.numpy()).permute(3, 2, 0, 1).contiguous()
            conv = torch.nn.Conv2d(kernel.shape[1], kernel.shape[0], layer.kernel_size,
                                   stride=layer.strides, padding=layer.padding)
            conv.weight.data.copy_(kernel)
            conv.bias.data.copy_(torch.from_numpy(layer.bias.numpy()))
            modules += [conv, torch.nn.ReLU()] if layer.activation == "relu" else [conv]
        elif isinstance(layer, MaxPooling2D):
            modules.append(torch.nn.MaxPool2d(layer.pool_size, stride=layer.strides))
        elif isinstance(layer, Flatten):
            modules.append(NhwcFlatten())
        elif isinstance(layer, Dense):  # sigmoid head: the loss takes logits (BCEWithLogits)
            dense = torch.nn.Linear(*layer.kernel.shape)
            dense.weight.data.copy_(torch.from_numpy(layer.kernel.numpy().T))
            dense.bias.data.copy_(torch.from_numpy(layer.bias.numpy()))
            modules.append(dense)
        else:
            raise ValueError(f"torch_twin: no PyTorch equivalent written for layer {layer!r}")
    return torch.nn.Sequential(*modules).to(device)


def host_batches(input_shape, batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((BATCHES_IN_ROTATION * batch,) + tuple(input_shape), dtype=np.float32)
    y = (rng.random(BATCHES_IN_ROTATION * batch) > 0.5).astype(np.float32)
    return x, y


# -- timing -----------------------------------------------------------------------------------------
def median_step_ms(step, batches, library, args):
    """Device time per training step: ``benchlib.device_time_ms`` over samples of ``args.steps``
    consecutive steps, cycling through the device ``batches``."""
    batch_cycle = itertools.cycle(batches)
    return device_time_ms(lambda: step(*next(batch_cycle)), library, args.warmup, args.repeat,
                          calls_per_sample=args.steps)


def device_batches(x, y, batch):
    return [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(BATCHES_IN_ROTATION)]


def gpucnn_case(build, input_shape, batch, jit_graph, args, precision="highest"):
    """Peak memory of two untimed steps (the meter wraps every allocation, so it stays out of the timed
    loop; the first also autotunes the kernels), then the time of gpucnn's training step on a fresh model
    compiled with ``matmul_precision=precision``.  The graph runner must have captured exactly once and
    never fallen back to eager."""
    import cupy

    import gpucnn
    from gpucnn import profiler, step_runners

    gc.collect()
    pool = cupy.get_default_memory_pool()
    gpucnn.utils.set_random_seed(0)
    used_before = pool.used_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed capture fails the case
        meter = profiler.CudaMemoryMeter()
        with meter:
            model = build()
            model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"],
                          jit_graph=jit_graph, matmul_precision=precision)
            batches = device_batches(*model.prepare_training(*host_batches(input_shape, batch)), batch)
            runner = step_runners.make_step_runner(model, jit_graph)
            with model.compiled_settings():
                for x, y in batches[:2]:
                    runner(x, y)
            cupy.cuda.get_current_stream().synchronize()
        with model.compiled_settings():
            result = median_step_ms(runner, batches, "cupy", args)
    result["peak_bytes"] = meter.peak_in_use - used_before
    result["runner"] = type(runner).__name__
    result["matmul_precision"] = precision
    if isinstance(runner, step_runners.GraphStep):
        result.update(captures=runner.captures, replays=runner.replays, eager_steps=runner.eager_steps)
        if runner.captures != 1 or runner.eager_steps != 1:
            raise AssertionError(f"the graph runner captured {runner.captures} times and ran "
                                 f"{runner.eager_steps} eager steps (want 1 and 1): not a graph timing")
    model.release_activations()
    return result


def torch_case(model, batch, precision, args, graph=False):
    """Time PyTorch on the twin of ``model`` (same initial weights, channels-last) at ``precision`` (ours:
    see :func:`torch_precision`), eager or with the whole step captured in one CUDA graph, and measure its
    peak memory."""
    import torch

    fp32_precision, autocast = torch_precision(torch, precision)
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    net = torch_twin(model).to(memory_format=torch.channels_last)
    # capturable: Adam's step count stays on the device, so the captured update is replayable.
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7, capturable=graph)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x_host, y_host = host_batches(model.input_shape[1:], batch)
    x = torch.from_numpy(x_host).cuda().permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(y_host).cuda()[:, None]
    batches = device_batches(x, y, batch)

    def step(xb, yb):
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(net(xb), yb)
        loss.backward()
        optimizer.step()

    if graph:
        step = torch_graph_step(step, batches[0])
    result = median_step_ms(step, batches, "torch", args)
    result["peak_bytes"] = torch.cuda.max_memory_allocated()
    result["memory_format"] = "channels_last"
    result["fp32_precision"] = fp32_precision
    result["autocast"] = "bfloat16" if precision == "medium" else None
    return result


def torch_precision(torch, precision):
    """PyTorch set up as our ``precision``: ('ieee' | 'tf32', the autocast context each step runs in).
    'medium' is autocast to bfloat16 (BF16 tensor-core convolutions and matmuls, FP32 accumulation) with
    strict FP32 flags for what autocast leaves in float32."""
    fp32_precision = "tf32" if precision == "high" else "ieee"
    set_torch_fp32_precision(torch, fp32_precision)
    if precision == "medium":
        return fp32_precision, lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return fp32_precision, contextlib.nullcontext


def torch_graph_step(step, example):
    """``step`` captured in a CUDA graph (PyTorch's whole-network recipe: warm up on a side stream,
    capture with static input buffers); returns a step that copies its batch in and replays."""
    import torch

    static_x, static_y = (t.clone() for t in example)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step(static_x, static_y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(static_x, static_y)

    def replay(xb, yb):
        static_x.copy_(xb)
        static_y.copy_(yb)
        graph.replay()

    return replay


def validation(build, input_shape, precisions):
    """Relative errors of gpucnn's and PyTorch's output probabilities at each of ``precisions`` vs PyTorch
    in float64, on the first samples of a batch, with the same weights."""
    import torch

    import gpucnn
    from gpucnn import config
    gpucnn.utils.set_random_seed(0)
    model = build()
    x_host, _ = host_batches(input_shape, VALIDATION_SAMPLES)
    x_host = x_host[:VALIDATION_SAMPLES]
    x = torch.from_numpy(x_host).cuda().permute(0, 3, 1, 2)
    twin = torch_twin(model)
    outputs = {}
    for precision in precisions:
        tag = PRECISION_TAGS[precision]
        with config.float32_matmul_precision(precision):
            outputs[f"gpucnn_{tag}"] = torch.from_numpy(model.predict(x_host)).double()
        _, autocast = torch_precision(torch, precision)
        with torch.no_grad(), autocast():
            logits = twin(x.contiguous(memory_format=torch.channels_last))
        outputs[f"torch_{tag}"] = torch.sigmoid(logits.float()).double().cpu()
    with torch.no_grad():
        oracle = torch.sigmoid(twin.double()(x.double())).cpu()  # last: .double() converts the twin itself
    errors = {"samples": VALIDATION_SAMPLES}
    for name, output in outputs.items():
        error = float(torch.linalg.vector_norm(output - oracle) / torch.linalg.vector_norm(oracle))
        errors[f"{name}_relative_error_vs_float64"] = error
        precision = next(p for p, tag in PRECISION_TAGS.items() if name.endswith(tag))
        if not error < MAX_FORWARD_ERROR[precision]:
            raise ValidationError(f"{name}'s relative error vs float64 = {error:.2e} >= "
                                  f"{MAX_FORWARD_ERROR[precision]:.0e} ({precision!r}): not timing a wrong (or "
                                  f"less precise) forward")
    return errors


def per_layer_profile(build, input_shape, batch, steps):
    """``model.profile()``'s table (CUDA events per layer, forward and backward) as a dict."""
    import gpucnn
    gpucnn.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x, y = host_batches(input_shape, batch)
    profile = model.profile(x[:batch], y[:batch], steps=steps, print_fn=print).to_dict()
    model.release_activations()
    return {"profile": profile}


# -- main -------------------------------------------------------------------------------------------
def ratios_of(times):
    """The headline ratios from the passed cases' {name: result}: time ratios < 1 mean gpucnn is faster."""
    ms = {name: case["median_ms"] for name, case in times.items()}
    best = min(ms["gpucnn_graph"], ms["gpucnn_eager"])
    ratios = {"gpucnn_best_over_torch_eager_fp32": best / ms["torch_eager_fp32"],
              "torch_fp32_over_gpucnn_graph": ms["torch_eager_fp32"] / ms["gpucnn_graph"],
              "peak_memory_gpucnn_graph_over_torch": (times["gpucnn_graph"]["peak_bytes"]
                                                      / times["torch_eager_fp32"]["peak_bytes"])}
    if "torch_eager_tf32" in ms:  # TF32: what PyTorch's cuDNN convolutions allow by default
        ratios["gpucnn_best_over_torch_eager_tf32"] = best / ms["torch_eager_tf32"]
    for tag in ("tf32", "bf16"):  # the tensor-core precisions, each against PyTorch at the same one
        if f"gpucnn_graph_{tag}" in ms and f"torch_eager_{tag}" in ms:
            ratios[f"gpucnn_graph_{tag}_over_torch_eager_{tag}"] = ms[f"gpucnn_graph_{tag}"] / ms[f"torch_eager_{tag}"]
    if "torch_graph_fp32" in ms:
        ratios["torch_graph_fp32_over_gpucnn_graph"] = ms["torch_graph_fp32"] / ms["gpucnn_graph"]
    return ratios


def run_model(report, title, build, input_shape, batch, args, torch_graph):
    """Every case of one model, the most telling first (a run killed at its time limit keeps those);
    returns its ratios (None when a case they need failed)."""
    import cupy
    print(f"== {title}, batch {batch}", flush=True)
    validated = report.case(f"{title}: validation", lambda: validation(build, input_shape, args.precisions))
    if validated["status"] != "passed":
        return None
    model = build()  # the PyTorch twins copy this model's initial weights
    cases = {"gpucnn_graph": lambda: gpucnn_case(build, input_shape, batch, True, args),
             "torch_eager_fp32": lambda: torch_case(model, batch, "highest", args)}
    for precision in (p for p in args.precisions if p != "highest"):
        tag = PRECISION_TAGS[precision]
        cases[f"gpucnn_graph_{tag}"] = lambda p=precision: gpucnn_case(build, input_shape, batch, True, args, p)
        cases[f"torch_eager_{tag}"] = lambda p=precision: torch_case(model, batch, p, args)
    cases["gpucnn_eager"] = lambda: gpucnn_case(build, input_shape, batch, False, args)
    if torch_graph:
        cases["torch_graph_fp32"] = lambda: torch_case(model, batch, "highest", args, graph=True)
    times = {}
    for name, measure in cases.items():
        if name.startswith("torch"):
            cupy.get_default_memory_pool().free_all_blocks()  # hand CuPy's cached blocks back for PyTorch
        entry = report.case(f"{title}: {name}", measure)
        if entry["status"] == "passed":
            times[name] = entry
            print(f"{name:20s} {entry['median_ms']:9.3f} ms/step  (min {entry['min_ms']:.3f}, max "
                  f"{entry['max_ms']:.3f})  peak {entry['peak_bytes'] / 2**20:9.1f} MiB", flush=True)
    entry = report.case(f"{title}: ratios", lambda: {"model": title, "batch": batch, "ratios": ratios_of(times)})
    return entry.get("ratios")


def main(argv=None):
    args = parse_args(argv)
    import torch

    import gpucnn
    from gpucnn import profiler

    gpucnn.set_backend("cuda")
    torch.backends.cudnn.benchmark = True
    info = profiler.environment()
    print(f"{info['gpu']['name']}, driver {info['gpu']['driver']}, {info['versions']}")
    report = Report(args.results_dir, "train_step", {**info, "settings": vars(args)})
    article_title = ("article model (textures_cnn, full width)" if args.width_divisor == 1 else
                     f"article model (textures_cnn, width / {args.width_divisor})")
    article = run_model(report, article_title, lambda: article_model(args.width_divisor), (100, 100, 1),
                        args.article_batch, args, torch_graph=False)
    faces = run_model(report, "faces small model", faces_model, FACES_SHAPE, args.faces_batch, args,
                      torch_graph=True)
    # Last, as the least important: where the article model's step time goes, layer by layer.
    report.case(f"{article_title}: per-layer profile",
                lambda: per_layer_profile(lambda: article_model(args.width_divisor), (100, 100, 1),
                                          args.article_batch, args.steps))
    goals = {
        "article_step_time_ratio_le_1.0": article and article["gpucnn_best_over_torch_eager_fp32"] <= 1.0,
        "article_tf32_step_time_ratio_le_1.0": (article and "gpucnn_graph_tf32_over_torch_eager_tf32" in article
                                                and article["gpucnn_graph_tf32_over_torch_eager_tf32"] <= 1.0),
        "faces_speedup_vs_torch_ge_2": faces and faces["torch_fp32_over_gpucnn_graph"] >= 2.0,
        "article_peak_memory_ratio_le_1.2": article and article["peak_memory_gpucnn_graph_over_torch"] <= 1.2,
    }
    print("goals met:", goals)
    return report.finish(goals_met=goals)


if __name__ == "__main__":
    sys.exit(main())
