"""Step runners: how ``fit`` runs one training step of any model (:mod:`gpucnn.trainer`) — eager
launches, or one CUDA graph replayed per step.

``make_step_runner(model, jit_graph)`` returns a callable ``runner(x, y, sample_weight=None) -> (loss,
correct)`` doing one optimizer step on a batch (and its per-sample loss weights) already on the
backend.  :class:`EagerStep` launches every op each
step.  :class:`GraphStep` runs the first batch eagerly (which also compiles every kernel and fills
the memory pool), then captures the whole step (forward, loss, backward and optimizer) for that
batch shape once, reading from static input/label/sample-weight buffers; each later step of that shape copies
the batch into the static buffers (an on-device copy) and replays the graph.  What changes from
step to step lives on the device: the optimizer's update count (Adam's bias correction) and each
Dropout layer's step count (its mask seed) are :class:`gpucnn.counters.StepCounter` arrays that
the graph itself advances.  Host scalars that a graph freezes (the optimizer's learning rate and
other settings, and the float32 matmul precision that chose its conv and Dense kernels) are compared
before each replay, and a change leads to a new capture.  Batches of
any other shape (the last, partial batch of an epoch) run eagerly.  On the ``cuda`` backend the
capture is a CuPy stream capture; elsewhere :class:`EagerCapture` stands in for it (its "replay"
runs the captured function again), so the runner's host logic is the same code on every backend
and is tested in CI without a GPU.
"""
import contextlib
import warnings

from gpucnn import backend, config


def check_jit_graph(jit_graph):
    if jit_graph not in (None, True, False):
        raise ValueError(f"Argument `jit_graph` must be None (CUDA graphs on the cuda backend, off "
                         f"elsewhere), True or False, got {jit_graph!r}.")
    return jit_graph


def make_step_runner(model, jit_graph=None):
    """The runner ``fit`` uses for ``model``.  ``jit_graph=None`` means graphs on the ``cuda`` backend
    and eager launches elsewhere; ``True`` asks for the graph runner on any backend (with the eager
    stand-in for capture off the GPU)."""
    check_jit_graph(jit_graph)
    wanted = backend.current().name == "cuda" if jit_graph is None else jit_graph
    return GraphStep(model) if wanted else EagerStep(model)


class EagerStep:
    """Launch every op of every step (forward, loss, backward, optimizer)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x, y, sample_weight=None):
        return self.model.train_step(x, y, sample_weight)


class EagerCapture:
    """Stand-in for CUDA-graph capture off the GPU: capturing records the function without running it
    (as a stream capture records kernels without executing them) and each replay calls it again."""

    def warm_up(self, step):
        return step()

    def capture(self, function):
        return _EagerGraph(function)


class _EagerGraph:
    def __init__(self, function):
        self._function = function

    def replay(self):
        return self._function()


class CudaGraphCapture:
    """CuPy stream capture on a private non-blocking stream (capture refuses the default streams);
    replays go to the caller's current stream, so they stay ordered with the batch copies before and the
    optimizer and metric updates after.

    Every allocation made while capturing is recorded and kept alive with the graph: the kernels'
    addresses are baked into it, so memory that Python code drops during the capture (temporaries,
    rebound layer caches) must never return to the pool for someone else to reuse.
    """

    def __init__(self):
        import cupy
        self._cupy = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def warm_up(self, step):
        """Run ``step`` eagerly on the capture stream: compiles and loads every kernel, creates Numba's
        external stream for it and fills that stream's memory pool before anything is captured."""
        self._cupy.cuda.get_current_stream().synchronize()
        with self.stream:
            outputs = step()
        self.stream.synchronize()
        return outputs

    def capture(self, function):
        cupy = self._cupy
        kept = []
        allocate = cupy.cuda.get_allocator()

        def recording_allocator(size):
            pointer = allocate(size)
            kept.append(pointer)
            return pointer

        with cupy.cuda.using_allocator(recording_allocator), self.stream:
            self.stream.begin_capture()
            try:
                outputs = function()
            except BaseException:
                # End the (broken) capture so the stream is usable again; the original error is what
                # the caller needs to see, not the end-capture error that usually follows it.
                with contextlib.suppress(Exception):
                    self.stream.end_capture()
                raise
            graph = self.stream.end_capture()
        return _CudaGraph(graph, outputs, kept)


class _CudaGraph:
    def __init__(self, graph, outputs, kept_allocations):
        self._graph = graph
        self._outputs = outputs
        self._kept_allocations = kept_allocations

    def replay(self):
        self._graph.launch()
        return self._outputs


def default_capture():
    return CudaGraphCapture() if backend.current().name == "cuda" else EagerCapture()


class _CapturedStep:
    """A captured step: the batch shape and optimizer settings it was captured for, and the static
    buffers it reads its batch from (``sample_weight`` None for an unweighted step)."""

    def __init__(self, shape_key, settings, graph, x, y, sample_weight):
        self.shape_key = shape_key
        self.settings = settings
        self.graph = graph
        self.x = x
        self.y = y
        self.sample_weight = sample_weight


class GraphStep:
    """Replay one captured training step per batch (see the module docstring).

    ``captures``/``replays``/``eager_steps`` count what happened, for tests and benchmarks.  When the
    capture raises, the runner warns once and stays eager.
    """

    def __init__(self, model, capture=None):
        self.model = model
        self._capture = capture or default_capture()
        self._captured = None
        self._capture_failed = False
        self._shape_to_capture = None  # after a settings change: the shape of the dropped graph
        self.captures = self.replays = self.eager_steps = 0

    def _settings(self):
        # The precision picks the kernels a graph holds (a callback may change the global setting).
        return self.model.optimizer.get_config(), config.get_float32_matmul_precision()

    def __call__(self, x, y, sample_weight=None):
        key = (tuple(x.shape), tuple(y.shape), str(y.dtype), sample_weight is None)
        if self._captured is not None and self._captured.settings != self._settings():
            # The graph holds the old learning rate (and the like) as kernel arguments: capture anew,
            # at the old graph's batch shape, even if the next batch is the epoch's partial one.
            self._shape_to_capture = self._captured.shape_key
            self._captured = None
        if self._captured is not None and self._captured.shape_key == key:
            return self._replay(x, y, sample_weight)
        if self._captured is None and not self._capture_failed and self._shape_to_capture in (None, key):
            return self._warm_up_and_capture(x, y, sample_weight, key)
        self.eager_steps += 1
        return self.model.train_step(x, y, sample_weight)

    def _warm_up_and_capture(self, x, y, sample_weight, key):
        outputs = self._capture.warm_up(lambda: self.model.train_step(x, y, sample_weight))
        self.eager_steps += 1
        xp = backend.current().xp
        static_x, static_y = xp.empty(x.shape, x.dtype), xp.empty(y.shape, y.dtype)
        static_w = None if sample_weight is None else xp.empty(sample_weight.shape, sample_weight.dtype)
        try:
            graph = self._capture.capture(lambda: self.model.train_step(static_x, static_y, static_w))
        except Exception as error:  # any failure of capture means: train eagerly, but say so
            self._capture_failed = True
            warnings.warn(f"CUDA graph capture of model '{self.model.name}' failed "
                          f"({type(error).__name__}: {error}); training eagerly instead. "
                          f"Fix: compile(..., jit_graph=False) to skip the attempt.",
                          RuntimeWarning, stacklevel=3)
            return outputs
        self._captured = _CapturedStep(key, self._settings(), graph, static_x, static_y, static_w)
        self.captures += 1
        return outputs

    def _replay(self, x, y, sample_weight):
        captured = self._captured
        captured.x[...] = x
        captured.y[...] = y
        if sample_weight is not None:
            captured.sample_weight[...] = sample_weight
        loss, correct = captured.graph.replay()
        self.replays += 1
        # The graph writes its loss into the same buffer every replay; callers may keep a step's loss
        # for later (TerminateOnNaN checks a batch of them at once), so hand out a copy.
        return loss.copy(), correct
