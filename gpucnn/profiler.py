"""Profiling: NVTX ranges for Nsight Systems, and ``model.profile()``'s per-layer table.

NVTX
    ``nvtx_range(name, phase)`` opens an NVTX range ``"<name> <phase>"`` in the ``gpucnn`` domain when the
    optional ``nvtx`` package is installed (``pip install 'gpucnn[profile]'``) and does nothing otherwise.
    The model wraps every layer's forward and backward, the loss and the optimizer step in one, so an
    ``nsys profile -t cuda,nvtx`` timeline reads layer by layer (see profiling/README.md).

Per-layer table
    :func:`profile` runs training steps eagerly, unit by unit in the order ``fit`` uses (fused
    Conv2D-ReLU + MaxPooling2D pairs are one row), and marks the boundary after each piece of work:
    CUDA events on the ``cuda`` backend (read once, after the last step), ``time.perf_counter`` on the
    host backends, whose ops finish before they return.  Consecutive marks share their boundaries, so the
    rows partition the step and their shares add up to 100%.  A separate step measures memory: the peak
    of what the step has allocated (beyond the weights, optimizer state and batch already held) while
    each row ran — CuPy's pool on the GPU, ``tracemalloc`` (which NumPy reports to) on the host.
    Achieved rates use the minimum work: 2·MACs of convolutions and matrix products (TFLOP/s), or one
    read of every input and one write of every output for the memory-bound ops (GB/s).
"""
import contextlib
import datetime
import importlib.metadata
import math
import platform
import shutil
import statistics
import subprocess
import time
import tracemalloc

from gpucnn import backend, utils
from gpucnn.layers.convolutional import Conv2D, MaxPooling2D
from gpucnn.layers.core import Dense, Dropout, Flatten

NVTX_DOMAIN = "gpucnn"


def _load_nvtx():
    try:
        import nvtx
    except ImportError:
        return None
    return nvtx


_NVTX = _load_nvtx()
_NO_RANGE = contextlib.nullcontext()


class _NvtxRange:
    __slots__ = ("message",)

    def __init__(self, message):
        self.message = message

    def __enter__(self):
        _NVTX.push_range(self.message, domain=NVTX_DOMAIN)

    def __exit__(self, *exc_info):
        _NVTX.pop_range(domain=NVTX_DOMAIN)
        return False


def nvtx_range(name, phase=None):
    """Context manager for an NVTX range ``"name phase"``; a shared no-op without the nvtx package."""
    if _NVTX is None:
        return _NO_RANGE
    return _NvtxRange(name if phase is None else f"{name} {phase}")


# -- clocks and memory meters -----------------------------------------------------------------------
class _HostClock:
    """Marks from perf_counter: host-backend ops are done when they return."""

    def mark(self):
        return time.perf_counter()

    def finish(self):
        pass

    def elapsed_ms(self, start, end):
        return (end - start) * 1e3


class _CudaClock:
    """Marks are CUDA events recorded on the current stream; nothing waits until ``finish``."""

    def __init__(self):
        import cupy
        self._cupy = cupy

    def mark(self):
        event = self._cupy.cuda.Event()
        event.record()
        return event

    def finish(self):
        self._cupy.cuda.get_current_stream().synchronize()

    def elapsed_ms(self, start, end):
        return self._cupy.cuda.get_elapsed_time(start, end)


class _HostMemory:
    """Peak bytes NumPy allocated (and had not freed) since the last ``interval_peak`` call."""

    def __enter__(self):
        self._was_tracing = tracemalloc.is_tracing()
        if not self._was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._baseline = tracemalloc.get_traced_memory()[0]
        return self

    def interval_peak(self):
        peak = tracemalloc.get_traced_memory()[1] - self._baseline
        tracemalloc.reset_peak()
        return max(peak, 0)

    def __exit__(self, *exc_info):
        if not self._was_tracing:
            tracemalloc.stop()
        return False

    def in_use(self):
        return None


class CudaMemoryMeter:
    """Peak bytes in use in CuPy's default pool while the ``with`` block runs: every allocation goes
    through a wrapper that samples the pool right after it.  ``interval_peak()`` gives the peak above
    what was in use on entry since its last call; ``peak_in_use`` the absolute peak of the whole block."""

    def __init__(self):
        import cupy
        self._cupy = cupy
        self._pool = cupy.get_default_memory_pool()

    def __enter__(self):
        allocate = self._cupy.cuda.get_allocator()

        def sampling_allocator(size):
            pointer = allocate(size)
            used = self._pool.used_bytes()
            self._peak = max(self._peak, used)
            self.peak_in_use = max(self.peak_in_use, used)
            return pointer

        self._cupy.cuda.get_current_stream().synchronize()
        self._baseline = self._peak = self.peak_in_use = self._pool.used_bytes()
        self._context = self._cupy.cuda.using_allocator(sampling_allocator)
        self._context.__enter__()
        return self

    def interval_peak(self):
        peak = self._peak - self._baseline
        self._peak = self._pool.used_bytes()
        return max(peak, 0)

    def __exit__(self, *exc_info):
        self._context.__exit__(*exc_info)
        return False

    def in_use(self):
        return self._baseline


# -- cost model -------------------------------------------------------------------------------------
def _elements(shape, batch):
    return batch * math.prod(shape)


def _unit_work(unit, batch, need_input_grad):
    """(forward, backward, unit) minimum work of a unit: FLOPs ('TFLOP/s') or bytes ('GB/s')."""
    first = unit.layers[0]
    if isinstance(first, (Conv2D, Dense)):
        if isinstance(first, Conv2D):
            kh, kw = first.kernel_size
            out_h, out_w, filters = first.output_shape
            flops = 2 * batch * out_h * out_w * filters * kh * kw * first.input_shape[-1]
        else:
            flops = 2 * batch * first.input_shape[0] * first.units
        # Backward: the filter gradient, plus the data gradient unless this is the first unit.
        return flops, flops * (2 if need_input_grad else 1), "TFLOP/s"
    if isinstance(first, Flatten):
        return 0, 0, None  # a view: no data moves
    last = unit.layers[-1]
    # A merge layer (Add, Concatenate) reads a list of tensors.
    input_shapes = first.input_shape if isinstance(first.input_shape, list) else [first.input_shape]
    inputs = sum(_elements(shape, batch) for shape in input_shapes)
    outputs = _elements(last.output_shape, batch)
    index_bytes = 4 * outputs if isinstance(last, MaxPooling2D) else 0
    forward = 4 * (inputs + outputs) + index_bytes
    # Backward reads dy and what forward saved (an output-sized tensor or the argmax), writes dx.
    backward = 4 * (2 * outputs + inputs) if need_input_grad else 0
    return forward, backward, "GB/s"


def _rate(work, milliseconds, unit):
    if unit is None or not work or milliseconds <= 0:
        return None
    return work / (milliseconds * 1e-3) / (1e12 if unit == "TFLOP/s" else 1e9)


# -- the profile ------------------------------------------------------------------------------------
class Profile:
    """What :func:`profile` measured.  ``rows`` holds one dict per execution unit, then the loss and the
    optimizer: ``name``, ``kind``, ``forward_ms``, ``backward_ms`` (None for the loss/optimizer rows),
    ``total_ms`` (medians over the steps), ``share`` (fraction of the step), ``rate`` with ``rate_unit``
    ('TFLOP/s', 'GB/s' or None) and ``peak_bytes``."""

    def __init__(self, backend_name, batch_size, steps, step_ms, rows, memory_in_use):
        self.backend = backend_name
        self.batch_size = batch_size
        self.steps = steps
        self.step_ms = step_ms
        self.rows = rows
        self.memory_in_use = memory_in_use

    @property
    def peak_bytes(self):
        """Peak memory a step allocates on top of the weights, optimizer state and batch."""
        return max(row["peak_bytes"] for row in self.rows)

    def to_dict(self):
        return {"backend": self.backend, "batch_size": self.batch_size, "steps": self.steps,
                "step_ms": self.step_ms, "peak_bytes": self.peak_bytes,
                "memory_in_use_before_step": self.memory_in_use, "rows": self.rows}

    def table(self):
        headers = ("unit", "kind", "fwd ms", "bwd ms", "total ms", "share", "achieved", "peak MiB")
        body = []
        for row in self.rows:
            rate = "-" if row["rate"] is None else f"{row['rate']:.3g} {row['rate_unit']}"
            body.append((row["name"], row["kind"], _ms(row["forward_ms"]), _ms(row["backward_ms"]),
                         _ms(row["total_ms"]), f"{100 * row['share']:.1f}%", rate,
                         f"{row['peak_bytes'] / 2**20:.2f}"))
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
        lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in
                           enumerate(zip(headers, widths)))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                  for r in body]
        footer = (f"step: {self.step_ms:.3f} ms median of {self.steps} (batch {self.batch_size}, "
                  f"backend {self.backend}); peak step memory {self.peak_bytes / 2**20:.2f} MiB")
        if self.memory_in_use is not None:
            footer += f" on top of {self.memory_in_use / 2**20:.2f} MiB already in use"
        return "\n".join(lines + [footer])

    __str__ = table


def _ms(value):
    return "-" if value is None else f"{value:.3f}"


def _one_step(model, x, y, mark):
    """One eager training step in ``fit``'s order, calling ``mark()`` after each piece of work:
    every unit's forward, the loss, every unit's backward (last to first), the optimizer."""
    out = model.forward(x, True, after_unit=mark)
    with nvtx_range("loss"):
        _, dy, _ = model.loss_and_gradient(out, y)
    mark()
    model.backward(dy, after_unit=mark)
    model.apply_optimizer()
    mark()


def _snapshot(model):
    """Everything a training step changes: the model's training state, Dropout seed counters and the
    global RNG (which draws a Dropout layer's first seed)."""
    return (model.get_training_state(),
            [layer.get_seed_state() for layer in model.layers if isinstance(layer, Dropout)],
            utils.get_rng_state())


def _restore(model, snapshot):
    training_state, seed_states, rng_state = snapshot
    model.set_training_state(training_state)
    for layer, seed_state in zip((layer for layer in model.layers if isinstance(layer, Dropout)), seed_states):
        layer.set_seed_state(seed_state)
    utils.set_rng_state(rng_state)


def _positive(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Argument `{name}` must be an int >= {minimum}, got {value!r}.")
    return value


def profile(model, x, y, steps=10, warmup=2, print_fn=print):
    """Profile training steps of the compiled ``model`` on one batch ``x``/``y`` (all of it is one
    batch); prints the table with ``print_fn`` (None: don't print) and returns a :class:`Profile`.

    ``warmup`` untimed steps come first (kernel compilation, memory pool growth).  The model's weights,
    optimizer state and step count are put back afterwards, so profiling does not train the model.
    """
    model.require_compiled("profile")
    steps = _positive(steps, "steps", 1)
    warmup = _positive(warmup, "warmup", 0)
    x, y = model.prepare_training(x, y)
    units = model.execution_plan()
    on_gpu = backend.current().name == "cuda"
    clock = _CudaClock() if on_gpu else _HostClock()
    saved = _snapshot(model)
    try:
        for _ in range(warmup):
            _one_step(model, x, y, lambda: None)
        marks = []
        for _ in range(steps):
            step_marks = [clock.mark()]
            _one_step(model, x, y, lambda: step_marks.append(clock.mark()))
            marks.append(step_marks)
        clock.finish()
        durations = [[clock.elapsed_ms(a, b) for a, b in zip(m, m[1:])] for m in marks]
        model.release_activations()
        with (CudaMemoryMeter() if on_gpu else _HostMemory()) as meter:
            peaks = []
            _one_step(model, x, y, lambda: peaks.append(meter.interval_peak()))
            memory_in_use = meter.in_use()
    finally:
        _restore(model, saved)
        model.release_activations()
    result = Profile(backend.current().name, len(x), steps,
                     statistics.median(sum(d) for d in durations),
                     _rows(model, units, len(x), durations, peaks), memory_in_use)
    if print_fn is not None:
        print_fn(result.table())
    return result


def _rows(model, units, batch, durations, peaks):
    """Table rows from per-step interval durations laid out as [forward of each unit, loss, backward
    of each unit from the last, optimizer]."""
    count = len(units)
    total = sum(sum(d) for d in durations)

    def column(index):
        return [d[index] for d in durations]

    rows = []
    for i, unit in enumerate(units):
        forward, backward = column(i), column(2 * count - i)
        work_fwd, work_bwd, rate_unit = _unit_work(unit, batch, need_input_grad=i > 0)
        fwd_ms, bwd_ms = statistics.median(forward), statistics.median(backward)
        rows.append({"name": unit.name, "kind": "+".join(type(l).__name__ for l in unit.layers),
                     "forward_ms": fwd_ms, "backward_ms": bwd_ms,
                     "total_ms": statistics.median(f + b for f, b in zip(forward, backward)),
                     "share": (sum(forward) + sum(backward)) / total,
                     "rate": _rate(work_fwd + work_bwd, fwd_ms + bwd_ms, rate_unit),
                     "rate_unit": rate_unit, "peak_bytes": max(peaks[i], peaks[2 * count - i])})
    outputs = batch * math.prod(model.output_layer.output_shape)
    params = model.flat_parameters.size
    extras = [("loss", type(model.loss).__name__, count, 4 * 3 * outputs),
              ("optimizer", type(model.optimizer).__name__, 2 * count + 1,
               4 * params * (2 * len(model.optimizer.state) + 3))]
    for name, kind, index, work in extras:
        times = column(index)
        rows.append({"name": name, "kind": kind, "forward_ms": None, "backward_ms": None,
                     "total_ms": statistics.median(times), "share": sum(times) / total,
                     "rate": _rate(work, statistics.median(times), "GB/s"), "rate_unit": "GB/s",
                     "peak_bytes": peaks[index]})
    return rows


# -- environment record for benchmark results -----------------------------------------------------
_PACKAGES = ("gpucnn", "numpy", "numba", "numba-cuda", "cupy-cuda13x", "cupy-cuda12x", "cuda-core",
             "cuda-bindings", "cuda-pathfinder", "nvidia-nvvm", "nvidia-cuda-nvrtc", "nvtx", "torch")


def environment():
    """Date, Python, package versions and (when CuPy sees one) the GPU, its driver and CUDA versions:
    the header of every benchmark result file."""
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "platform": platform.platform(),
            "versions": versions, "gpu": None}
    if backend.cuda_device_count() > 0:
        import cupy
        properties = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        info["gpu"] = {"name": properties["name"].decode() if isinstance(properties["name"], bytes)
                       else properties["name"],
                       "compute_capability": f"{properties['major']}.{properties['minor']}",
                       "multiprocessors": properties["multiProcessorCount"],
                       "memory_bytes": properties["totalGlobalMem"],
                       "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
                       "cuda_driver_api": cupy.cuda.runtime.driverGetVersion(),
                       "driver": _nvidia_smi_driver()}
    return info


def _nvidia_smi_driver():
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        output = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return output.strip().splitlines()[0] if output.strip() else None
