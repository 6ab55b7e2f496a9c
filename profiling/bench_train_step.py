"""Benchmark whole training steps of gpucnn against PyTorch eager on the same GPU, in one run.

1. The article's model (examples/textures_cnn.py at full width: Conv2D 512/256/128 3x3 + MaxPooling2D 3x3
   on 100x100x1, sigmoid output), batch 128: gpucnn (eager launches and CUDA graph) vs PyTorch eager with
   cuDNN in strict FP32 and in TF32.  Goal: gpucnn <= 1.0x PyTorch's step time.
2. A small launch-bound model on faces()-sized inputs (25x25x1), batch 32: gpucnn with CUDA graphs vs
   PyTorch eager.  Goal: gpucnn >= 2x faster.
3. Peak device memory of a training step of the article model, gpucnn vs PyTorch (allocator peaks:
   CuPy's pool in use vs torch.cuda.max_memory_allocated).  Goal: <= 1.2x.

A step is forward + loss + backward + Adam on a batch already on the device (both sides cycle through
several batches).  Before timing, each model's forward pass is checked against PyTorch strict FP32 with
the same weights (relative error of the outputs).  Times: CUDA events around a run of steps, after
warm-up, median over repeats.  The JSON report (GPU, driver, versions, date, times, ratios, the per-layer
``model.profile()`` table of the article model) goes to <results_dir>/train_step-<gpu>-<date>.json.

    python profiling/bench_train_step.py [results_dir] [--repeat 10] [--steps 5] [--warmup 3]
"""
import argparse
import gc
import importlib.util
import itertools
import pathlib

import numpy as np
from benchlib import RESULTS_DIR, device_time_ms, write_report

ROOT = pathlib.Path(__file__).resolve().parent.parent
FACES_SHAPE = (25, 25, 1)
BATCHES_IN_ROTATION = 4  # distinct device batches cycled through, so no step re-reads a cached batch
MAX_FORWARD_ERROR = 1e-3  # strict FP32 on both sides lands far below this


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("results_dir", nargs="?", default=str(RESULTS_DIR),
                        help="folder for the JSON report (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=10, help="timed samples per case (median)")
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed sample")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    parser.add_argument("--article-batch", type=int, default=128)
    parser.add_argument("--faces-batch", type=int, default=32)
    parser.add_argument("--width-divisor", type=int, default=1,
                        help="divide the article model's filter counts (1: the article's width)")
    return parser.parse_args(argv)


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


def gpucnn_case(build, input_shape, batch, jit_graph, args, profile=False):
    """Time gpucnn's training step (and measure its peak memory) on a fresh model."""
    import cupy

    import gpucnn
    from gpucnn import profiler, step_runners

    gc.collect()
    pool = cupy.get_default_memory_pool()
    gpucnn.utils.set_random_seed(0)
    used_before = pool.used_bytes()
    meter = profiler.CudaMemoryMeter()
    with meter:
        model = build()
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"],
                      jit_graph=jit_graph)
        x, y = model.prepare_training(*host_batches(input_shape, batch))
        batches = [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch])
                   for i in range(BATCHES_IN_ROTATION)]
        runner = step_runners.make_step_runner(model, jit_graph)
        result = median_step_ms(runner, batches, "cupy", args)
    result["peak_bytes"] = meter.peak_in_use - used_before
    result["runner"] = type(runner).__name__
    if isinstance(runner, step_runners.GraphStep):
        result.update(captures=runner.captures, replays=runner.replays)
    if profile:
        result["profile"] = model.profile(*batches[0], steps=args.steps, print_fn=print).to_dict()
    model.release_activations()
    return result, model, batches[0]


def torch_case(model, batch, tf32, args):
    """Time PyTorch eager on the twin of ``model`` (same initial weights) and measure its peak."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    net = torch_twin(model)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x_host, y_host = host_batches(model.input_shape[1:], batch)
    x = torch.from_numpy(x_host).cuda().permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(y_host).cuda()[:, None]
    batches = [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch])
               for i in range(BATCHES_IN_ROTATION)]

    def step(xb, yb):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(xb), yb)
        loss.backward()
        optimizer.step()

    result = median_step_ms(step, batches, "torch", args)
    result["peak_bytes"] = torch.cuda.max_memory_allocated()
    return result


def forward_error(model, batch_data):
    """‖gpucnn − PyTorch‖ / ‖PyTorch‖ of the output probabilities on one batch, strict FP32."""
    import torch

    from gpucnn import backend
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    x, _ = batch_data
    ours = torch.from_numpy(model.predict(x)).double()
    with torch.no_grad():
        x_torch = torch.from_dlpack(x).permute(0, 3, 1, 2).contiguous()
        theirs = torch.sigmoid(torch_twin(model)(x_torch)).double().cpu()
    backend.current().synchronize()
    return float(torch.linalg.vector_norm(ours - theirs) / torch.linalg.vector_norm(theirs))


# -- main -------------------------------------------------------------------------------------------
def run_model(title, build, input_shape, batch, args, profile):
    import cupy
    print(f"== {title}, batch {batch}")
    cases, memory = {}, {}
    graph, model, first = gpucnn_case(build, input_shape, batch, True, args, profile=profile)
    error = forward_error(model, first)
    print(f"forward check vs PyTorch strict FP32: relative error {error:.2e}")
    if not error < MAX_FORWARD_ERROR:
        raise SystemExit(f"{title}: gpucnn's forward differs from PyTorch's (relative error {error}); "
                         f"not timing a wrong result")
    eager, _, _ = gpucnn_case(build, input_shape, batch, False, args)
    cases["gpucnn_graph"], cases["gpucnn_eager"] = graph, eager
    del first
    cupy.get_default_memory_pool().free_all_blocks()  # hand CuPy's cached blocks back for PyTorch
    for name, tf32 in (("torch_eager_fp32", False), ("torch_eager_tf32", True)):
        cases[name] = torch_case(model, batch, tf32, args)
    for name, case in cases.items():
        memory[name] = case["peak_bytes"]
        print(f"{name:20s} {case['median_ms']:9.3f} ms/step  (min {case['min_ms']:.3f}, "
              f"max {case['max_ms']:.3f})  peak {case['peak_bytes'] / 2**20:9.1f} MiB")
    best = min(cases["gpucnn_graph"]["median_ms"], cases["gpucnn_eager"]["median_ms"])
    ratios = {f"gpucnn_best_over_{name}": best / cases[name]["median_ms"]
              for name in ("torch_eager_fp32", "torch_eager_tf32")}
    ratios["torch_fp32_over_gpucnn_graph"] = (cases["torch_eager_fp32"]["median_ms"]
                                              / cases["gpucnn_graph"]["median_ms"])
    ratios["peak_memory_gpucnn_graph_over_torch"] = memory["gpucnn_graph"] / memory["torch_eager_fp32"]
    ratios["peak_memory_gpucnn_eager_over_torch"] = memory["gpucnn_eager"] / memory["torch_eager_fp32"]
    for name, value in ratios.items():
        print(f"{name:40s} {value:6.3f}")
    return {"model": title, "batch": batch, "input_shape": list(input_shape),
            "forward_relative_error_vs_torch_fp32": error, "cases": cases, "ratios": ratios}


def main(argv=None):
    args = parse_args(argv)
    import gpucnn
    from gpucnn import profiler

    gpucnn.set_backend("cuda")
    info = profiler.environment()
    print(f"{info['gpu']['name']}, driver {info['gpu']['driver']}, {info['versions']}")
    results = [
        run_model("article model (textures_cnn, full width)" if args.width_divisor == 1 else
                  f"article model (textures_cnn, width / {args.width_divisor})",
                  lambda: article_model(args.width_divisor), (100, 100, 1), args.article_batch, args,
                  profile=True),
        run_model("faces small model", faces_model, FACES_SHAPE, args.faces_batch, args, profile=False),
    ]
    article, faces = results
    goals = {
        "article_step_time_ratio_le_1.0": article["ratios"]["gpucnn_best_over_torch_eager_fp32"] <= 1.0,
        "faces_speedup_vs_torch_ge_2": faces["ratios"]["torch_fp32_over_gpucnn_graph"] >= 2.0,
        "article_peak_memory_ratio_le_1.2": article["ratios"]["peak_memory_gpucnn_graph_over_torch"] <= 1.2,
    }
    print("goals met:", goals)
    report = {**info, "settings": vars(args), "results": results, "goals_met": goals}
    write_report(args.results_dir, "train_step", report)


if __name__ == "__main__":
    main()
