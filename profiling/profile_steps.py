"""Run a few training steps of a model, for Nsight Systems, Nsight Compute and compute-sanitizer.

    python profiling/profile_steps.py [--model article|faces] [--steps 5] [--warmup 2] [--batch N]
                                      [--jit-graph on|off] [--table] [--no-memory-pool]

``article`` is the example's model (examples/textures_cnn.py, full width, batch 128 by default),
``faces`` the small 25x25 model of bench_train_step.py (batch 32).  Random data, already on the device.
The warm-up steps (kernel compilation, graph capture) come first; the measured steps are wrapped in one
NVTX range ``steps`` so ``nsys profile --capture-range=nvtx --nvtx-capture=steps`` records only them.
With ``--jit-graph off`` every layer's forward/backward appears as its own NVTX range and kernels; with
``on`` (the cuda default) the steps are graph replays.  ``--table`` also prints ``model.profile()``.
Runs on any backend (GPUCNN_BACKEND=cpu for a dry run).
"""
import argparse

from bench_train_step import FACES_SHAPE, article_model, faces_model, host_batches


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", choices=("article", "faces"), default="article")
    parser.add_argument("--steps", type=int, default=5, help="profiled training steps")
    parser.add_argument("--warmup", type=int, default=2, help="steps before the profiled ones")
    parser.add_argument("--batch", type=int, default=None, help="default: 128 article, 32 faces")
    parser.add_argument("--width-divisor", type=int, default=1, help="narrow the article model")
    parser.add_argument("--jit-graph", choices=("on", "off"), default=None,
                        help="CUDA graphs (default: the backend's default, on for cuda)")
    parser.add_argument("--table", action="store_true", help="print model.profile()'s per-layer table")
    parser.add_argument("--no-memory-pool", action="store_true",
                        help="cuda: allocate every array with its own cudaMalloc (for compute-sanitizer)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import gpucnn
    from gpucnn import backend, profiler, step_runners

    if args.no_memory_pool and gpucnn.get_backend() == "cuda":
        import cupy
        cupy.cuda.set_allocator(None)
    if args.model == "article":
        model, shape, batch = article_model(args.width_divisor), (100, 100, 1), args.batch or 128
    else:
        model, shape, batch = faces_model(), FACES_SHAPE, args.batch or 32
    jit_graph = None if args.jit_graph is None else args.jit_graph == "on"
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], jit_graph=jit_graph)
    x, y = model.prepare_training(*host_batches(shape, batch))
    batches = [(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]
    run_step = step_runners.make_step_runner(model, jit_graph)
    print(f"{model.name} on {gpucnn.get_backend()}: batch {batch}, runner {type(run_step).__name__}")
    for i in range(args.warmup):
        run_step(*batches[i % len(batches)])
    backend.current().synchronize()
    with profiler.nvtx_range("steps"):
        for i in range(args.steps):
            loss, _ = run_step(*batches[i % len(batches)])
        backend.current().synchronize()
    print(f"{args.steps} steps done, last loss {float(backend.current().to_numpy(loss)):.4f}")
    if args.table:
        model.profile(*batches[0], steps=args.steps)


if __name__ == "__main__":
    main()
