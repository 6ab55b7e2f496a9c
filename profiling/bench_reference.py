"""Benchmark of the NumPy reference (cpu backend): one training step of the textures example's CPU
configuration, of the full article model and of the residual example's CPU configuration
(examples/resnet_cnn.py, a graph of layers), with PyTorch on the CPU as the peer measured in the same run.

Validates first (when torch is installed: the reference conv against PyTorch's, and the residual
model's predictions against the same network in PyTorch), then times:
- ms per training step (forward, loss, backward, Adam) for each model, gpucnn vs PyTorch eager;
- achieved GFLOP/s of each conv layer's forward, backward-data and backward-filter in the reference
  (the two stacks).
Goal (issues 3 and 14): reference step time within 1.5x of PyTorch's CPU step time.  Without torch
(or with --no-torch) it times gpucnn alone and says so.  On a machine shared with other jobs, run it as
OMP_NUM_THREADS=1 python profiling/bench_reference.py ... (NumPy's OpenBLAS and PyTorch both read it):
thread pools whose threads wait for busy cores make two-thread timings of either library vary tenfold.
The JSON records the thread settings, usable CPUs and load average.

    python profiling/bench_reference.py [--repeats 5] [--batch 8] [--models textures article resnet]
                                        [--no-torch] [--json results.json]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

from resnet_cnn import build_model as build_resnet  # noqa: E402
from textures_cnn import build_model  # noqa: E402

import gpucnn  # noqa: E402
from gpucnn import reference  # noqa: E402

ARTICLE_WIDTH = 1
CPU_WIDTH = 16


def article_model(width_divisor, relu):
    """The article's architecture: relu=False is the article verbatim (Conv2D without activation)."""
    model = build_model(width_divisor)
    if not relu:
        for layer in model.layers:
            if layer.activation == "relu":
                layer.activation = "linear"
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def median_ms(function, repeats, warmup=1):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def gpucnn_step_ms(model, x, y, repeats):
    x, labels = model.prepare_training(x, y)  # checked once, as fit does; the step alone is timed
    return median_ms(lambda: model.train_step(x, labels), repeats)


def torch_model(model):
    """The same architecture in PyTorch (NCHW), weights copied from the gpucnn model."""
    import torch
    modules = []
    for layer in model.layers:
        name = type(layer).__name__
        if name == "Conv2D":
            conv = torch.nn.Conv2d(layer.kernel.shape[2], layer.filters, layer.kernel_size)
            conv.weight.data = torch.from_numpy(layer.kernel.numpy().transpose(3, 2, 0, 1).copy())
            conv.bias.data = torch.from_numpy(layer.bias.numpy())
            modules.append(conv)
            if layer.activation == "relu":
                modules.append(torch.nn.ReLU())
        elif name == "MaxPooling2D":
            modules.append(torch.nn.MaxPool2d(layer.pool_size, layer.strides))
        elif name == "Flatten":
            modules.append(torch.nn.Flatten())
        elif name == "Dense":
            modules.append(torch.nn.Linear(*layer.kernel.shape))
    return torch.nn.Sequential(*modules)


def torch_step_ms(model, x, y, repeats):
    import torch
    net = torch_model(model)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    yt = torch.from_numpy(y.reshape(-1, 1))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(xt), yt).backward()
        optimizer.step()
    return median_ms(step, repeats)


def torch_graph(model):
    """The graph of layers of a gpucnn Functional model in PyTorch (NCHW), weights copied; 'same'
    padding as TensorFlow places it (the extra row/column at the bottom/right)."""
    import torch
    functional = torch.nn.functional

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleDict()
            for layer in model.layers:
                name = type(layer).__name__
                if name == "Conv2D":
                    kh, kw, cin, cout = layer.kernel.shape
                    conv = torch.nn.Conv2d(cin, cout, (kh, kw), layer.strides, bias=layer.use_bias)
                    conv.weight.data = torch.from_numpy(layer.kernel.numpy().transpose(3, 2, 0, 1).copy())
                    if layer.use_bias:
                        conv.bias.data = torch.from_numpy(layer.bias.numpy())
                    self.layers[layer.name] = conv
                elif name == "BatchNormalization":
                    norm = torch.nn.BatchNorm2d(layer.gamma.shape[0], eps=layer.epsilon,
                                                momentum=1 - layer.momentum)
                    for attribute, weight in (("weight", layer.gamma), ("bias", layer.beta),
                                              ("running_mean", layer.moving_mean),
                                              ("running_var", layer.moving_variance)):
                        getattr(norm, attribute).data = torch.from_numpy(weight.numpy())
                    self.layers[layer.name] = norm
                elif name == "Dense":
                    dense = torch.nn.Linear(*layer.kernel.shape)
                    dense.weight.data = torch.from_numpy(layer.kernel.numpy().T.copy())
                    dense.bias.data = torch.from_numpy(layer.bias.numpy())
                    self.layers[layer.name] = dense

        def run(self, layer, inputs):
            name = type(layer).__name__
            x = inputs[0]
            if name == "Conv2D":
                if layer.padding == "same":
                    pads = []
                    for size, k, s in zip(x.shape[2:], layer.kernel_size, layer.strides):
                        total = max((-(-size // s) - 1) * s + k - size, 0)
                        pads.append((total // 2, total - total // 2))
                    x = functional.pad(x, pads[1] + pads[0])
                x = self.layers[layer.name](x)
                return torch.relu(x) if layer.activation == "relu" else x
            if name == "Activation":
                return torch.relu(x)
            if name == "Add":
                return sum(inputs[1:], inputs[0])
            if name == "GlobalAveragePooling2D":
                return x.mean(dim=(2, 3))
            return self.layers[layer.name](x)  # BatchNormalization, Dense (logits: the loss adds softmax)

        def forward(self, x):
            values = {model.input: x}
            for node in model.nodes:
                values[node.output] = self.run(node.layer, [values[t] for t in node.inputs])
            return values[model.output]

    return Graph()


def torch_resnet_step_ms(model, x, y, repeats):
    import torch
    net = torch_graph(model).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    yt = torch.from_numpy(y.astype(np.int64))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(xt), yt).backward()
        optimizer.step()
    return median_ms(step, repeats)


def validate_resnet_against_torch(model, x):
    import torch
    with torch.no_grad():
        logits = torch_graph(model).eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(model.predict(x), torch.softmax(logits, dim=1).numpy(), rtol=1e-4, atol=1e-5)


def validate_conv_against_torch(rng):
    import torch
    x = rng.normal(size=(2, 11, 9, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 5)).astype(np.float32)
    ours = reference.conv2d_forward(x, w, None, (2, 2), "valid")
    theirs = torch.nn.functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                                        torch.from_numpy(w.transpose(3, 2, 0, 1).copy()), stride=2)
    np.testing.assert_allclose(ours, theirs.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


def conv_layer_rates(model, x, repeats):
    """GFLOP/s of the reference conv ops for each Conv2D of ``model`` on its real input."""
    rows = []
    activations = x
    for layer in model.layers:
        if type(layer).__name__ == "Conv2D":
            kernel = layer.kernel.value
            out = reference.conv2d_forward(activations, kernel, None, layer.strides, layer.padding)
            dy = np.ones_like(out)
            flops = 2.0 * out.size * np.prod(kernel.shape[:3])
            times = {
                "forward": median_ms(lambda: reference.conv2d_forward(
                    activations, kernel, None, layer.strides, layer.padding), repeats),
                "backward_data": median_ms(lambda: reference.conv2d_backward_data(
                    dy, kernel, activations.shape, layer.strides, layer.padding), repeats),
                "backward_filter": median_ms(lambda: reference.conv2d_backward_filter(
                    activations, dy, layer.kernel_size, layer.strides, layer.padding), repeats),
            }
            rows.append({"layer": layer.name, "input": list(activations.shape),
                         "kernel": list(kernel.shape), "flops": flops,
                         **{f"{k}_ms": v for k, v in times.items()},
                         **{f"{k}_gflops": flops / (v * 1e6) for k, v in times.items()}})
        activations = layer.call(activations)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="batch of the full article model")
    parser.add_argument("--cpu-batch", type=int, default=32, help="batch of the example's CPU model")
    parser.add_argument("--resnet-batch", type=int, default=32, help="batch of the residual example's model")
    parser.add_argument("--models", nargs="+", choices=("textures", "article", "resnet"),
                        default=["textures", "article", "resnet"], help="which models to time")
    parser.add_argument("--no-torch", action="store_true", help="time gpucnn alone even if torch is installed")
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args()

    gpucnn.set_backend("cpu")
    gpucnn.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    torch = None
    if args.no_torch:
        print("--no-torch: timing gpucnn alone, no PyTorch peer.")
    else:
        try:
            import torch
            torch.manual_seed(0)
        except ImportError:
            print("PyTorch is not installed: timing gpucnn alone (pip install torch==2.13.0 for the peer).")
    if torch is not None:
        validate_conv_against_torch(rng)
        print("validation: reference conv2d matches torch.nn.functional.conv2d")

    results = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "numpy": np.__version__,
               "torch": torch.__version__ if torch else None, "environment": environment(torch), "models": []}
    print("environment:", results["environment"])
    configs = [("textures", "example CPU configuration (32/16/8 filters, relu)", CPU_WIDTH, True, args.cpu_batch),
               ("article", "article model (512/256/128 filters, as published)", ARTICLE_WIDTH, False, args.batch)]
    for key, title, divisor, relu, batch in configs:
        if key not in args.models:
            continue
        model = article_model(divisor, relu)
        x = rng.random((batch, 100, 100, 1), dtype=np.float32)
        y = rng.integers(0, 2, batch).astype(np.float32)
        ours = gpucnn_step_ms(model, x, y, args.repeats)
        theirs = torch_step_ms(model, x, y, args.repeats) if torch else None
        layers = conv_layer_rates(model, x, args.repeats)
        report(results, title, batch, ours, theirs, layers)
    if "resnet" in args.models:
        model = build_resnet()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        x = rng.random((args.resnet_batch, 32, 32, 1), dtype=np.float32)
        y = rng.integers(0, 3, args.resnet_batch).astype(np.int32)
        if torch is not None:
            validate_resnet_against_torch(model, x)
            print("validation: the residual model's predictions match the same graph in PyTorch")
        ours = gpucnn_step_ms(model, x, y, args.repeats)
        theirs = torch_resnet_step_ms(model, x, y, args.repeats) if torch else None
        report(results, "residual example CPU configuration (examples/resnet_cnn.py, widths 8/16/32)",
               args.resnet_batch, ours, theirs, [])
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(results, stream, indent=2)
        print(f"\nwritten to {args.json}")


def environment(torch):
    """What sets the two libraries' thread counts and what else ran: on a shared machine both thread pools
    stall when their threads wait for cores other jobs hold, so a comparison names its settings."""
    return {"cpus_usable": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "torch_threads": torch.get_num_threads() if torch else None,
            **{name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                       "MKL_NUM_THREADS")}}


def report(results, title, batch, ours, theirs, layers):
    """Print one model's step times (and conv layer rates) and add them to ``results``."""
    ratio = f"{ours / theirs:.2f}x PyTorch" if theirs else "no peer"
    print(f"\n{title}, batch {batch}: gpucnn {ours:.1f} ms/step"
          + (f", PyTorch {theirs:.1f} ms/step -> {ratio}" if theirs else " (no PyTorch peer)"))
    for row in layers:
        print(f"  {row['layer']:10s} {str(tuple(row['kernel'])):18s} "
              + "  ".join(f"{k} {row[k + '_ms']:8.1f} ms {row[k + '_gflops']:6.1f} GFLOP/s"
                          for k in ("forward", "backward_data", "backward_filter")))
    results["models"].append({"model": title, "batch": batch, "gpucnn_ms_per_step": ours,
                              "torch_ms_per_step": theirs,
                              "ratio_to_torch": ours / theirs if theirs else None, "conv_layers": layers})


if __name__ == "__main__":
    main()
