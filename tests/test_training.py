"""Step runners (gpucnn/step_runners.py), the fused Conv2D-ReLU + MaxPooling2D unit
(gpucnn/execution.py) and the per-model settings of compile (matmul_precision, autotune).

On the host backends the graph runner uses its eager stand-in for capture, so everything but the CuPy
stream capture itself is checked here; the tests marked `gpu` check the real capture on a device.
"""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import gpucnn
from gpucnn import backend, config, execution, step_runners
from gpucnn.data import x_on_backend
from gpucnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D

# What the warnings-as-errors tests mean: gpucnn's own warnings (a failed graph capture falls back to
# eager with a RuntimeWarning) and Numba's low-occupancy warning (numba and numba-cuda each have their own
# NumbaPerformanceWarning class, so it is matched by its text).  A third-party deprecation is not one.
OCCUPANCY_WARNING = r"Grid size \d+ will likely result in GPU under-utilization"


def error_on_meant_warnings():
    warnings.simplefilter("error", RuntimeWarning)
    warnings.filterwarnings("error", message=OCCUPANCY_WARNING)

HOST_BACKENDS = ["cpu", "emulated"]


@pytest.fixture(params=HOST_BACKENDS)
def host_backend(request):
    if request.param == "emulated":
        request.getfixturevalue("small_numba_launches")
        request.getfixturevalue("emulated")
        yield "emulated"
    else:
        with backend.using_backend("cpu"):
            yield "cpu"


def small_model(input_shape=(6, 6, 1), filters=2, seed=3, dropout=0.0):
    gpucnn.utils.set_random_seed(seed)
    model = gpucnn.Sequential([Conv2D(filters, (3, 3), activation="relu", input_shape=input_shape),
                               MaxPooling2D((2, 2)), Flatten(), Dropout(dropout, seed=seed),
                               Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.setup_training()
    return model


def batches(sizes, input_shape=(6, 6, 1), seed=0):
    """Distinct random batches on the current backend, so a runner replaying stale data is caught."""
    rng = np.random.default_rng(seed)
    as_array = backend.current().xp.asarray
    return [(as_array(rng.normal(size=(n,) + input_shape).astype(np.float32)),
             as_array((rng.random((n, 1)) > 0.5).astype(np.float32))) for n in sizes]


# -- fused conv-relu-pool ---------------------------------------------------------------------------
def test_only_conv_relu_followed_by_max_pooling_is_fused():
    with backend.using_backend("cpu"):
        layers = [Conv2D(2, 3, activation="relu", input_shape=(8, 8, 1)), MaxPooling2D(2),
                  Conv2D(2, 2, activation="sigmoid"), MaxPooling2D(1), Conv2D(2, 1, activation="relu"),
                  Conv2D(2, 1, activation="relu"), Flatten(), Dense(1)]
        model = gpucnn.Sequential(layers)
    kinds = [type(unit).__name__ for unit in execution.plan_units(model.layers)]
    assert kinds == ["ConvReluPool", "LayerUnit", "LayerUnit", "LayerUnit", "LayerUnit", "LayerUnit",
                     "LayerUnit"]
    assert execution.plan_units(model.layers)[0].name == f"{layers[0].name}+{layers[1].name}"
    assert all(type(u).__name__ == "LayerUnit" for u in execution.plan_units(model.layers, fuse=False))


@pytest.mark.parametrize("pool_size, strides, padding", [((3, 3), None, "valid"),
                                                         ((2, 2), (1, 1), "same")])
def test_fused_conv_relu_pool_equals_the_layers_one_after_the_other(host_backend, pool_size, strides,
                                                                    padding):
    rng = np.random.default_rng(1)
    xp = backend.current().xp
    conv = Conv2D(3, (3, 3), activation="relu")
    conv.build((9, 9, 2))
    # A negative bias makes some whole pooling windows negative, where ReLU's gradient is zero.
    conv.bias.assign(np.array([-3.0, 0.0, 0.3], np.float32))
    pool = MaxPooling2D(pool_size, strides=strides, padding=padding)
    pool.build(conv.output_shape)
    x = xp.asarray(rng.normal(size=(2, 9, 9, 2)).astype(np.float32))
    dy = xp.asarray(rng.normal(size=(2,) + pool.output_shape).astype(np.float32))

    def gradients():
        return [backend.current().to_numpy(w.grad).copy() for w in (conv.kernel, conv.bias)]

    y_layers = pool.call(conv.call(x, training=True), training=True)
    dx_layers = conv.backward(pool.backward(dy), need_input_grad=True)
    grads_layers = gradients()

    fused = execution.ConvReluPool(conv, pool)
    y_fused = fused.forward(x, training=True)
    dx_fused = fused.backward(dy, need_input_grad=True)
    grads_fused = gradients()

    y_host = backend.current().to_numpy(y_layers)
    assert (y_host == 0).any() and (y_host > 0).any()  # both sides of the ReLU are exercised
    np.testing.assert_array_equal(backend.current().to_numpy(y_fused), y_host)
    np.testing.assert_allclose(backend.current().to_numpy(dx_fused),
                               backend.current().to_numpy(dx_layers), rtol=1e-6, atol=1e-7)
    for got, want in zip(grads_fused, grads_layers):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert conv.output_logits is False  # the fused unit restores the layer's flag


def test_model_predictions_do_not_change_with_fusion():
    with backend.using_backend("cpu"):
        model = small_model()
        (x, _), = batches([5])
        fused = model.call(x, training=False)
        unfused = x
        for layer in model.layers:
            unfused = layer.call(unfused, training=False)
    assert type(model.execution_plan()[0]) is execution.ConvReluPool
    np.testing.assert_allclose(fused, unfused, rtol=1e-6, atol=1e-7)


# -- step runners -----------------------------------------------------------------------------------
def run_steps(runner, data):
    losses = []
    for x, y in data:
        loss, _ = runner(x, y)
        losses.append(float(backend.current().to_numpy(loss)))
    return losses


def test_graph_runner_matches_eager_runner(host_backend):
    data = batches([3, 3, 2, 3])  # few steps: each costs seconds in the CUDA simulator
    eager_model, graph_model = small_model(dropout=0.5), small_model(dropout=0.5)
    runner = step_runners.GraphStep(graph_model, capture=step_runners.EagerCapture())
    eager_losses = run_steps(step_runners.EagerStep(eager_model), data)
    graph_losses = run_steps(runner, data)
    assert graph_losses == eager_losses
    for got, want in zip(graph_model.get_weights(), eager_model.get_weights()):
        np.testing.assert_array_equal(got, want)
    # Step 1 warms up and captures; full batches replay; the partial batches run eagerly.
    assert (runner.captures, runner.replays, runner.eager_steps) == (1, 2, 2)
    assert graph_model.optimizer.iterations == len(data)
    assert graph_model.layers[3].get_seed_state()["step"] == len(data)


def test_a_new_learning_rate_is_captured_anew():
    """A graph holds the learning rate as a kernel argument: changing it must not be ignored."""
    with backend.using_backend("cpu"):
        data = batches([4] * 5)
        eager_model, graph_model = small_model(), small_model()
        runner = step_runners.GraphStep(graph_model, capture=step_runners.EagerCapture())
        eager, graph = step_runners.EagerStep(eager_model), runner
        for index, (x, y) in enumerate(data):
            if index == 3:
                eager_model.optimizer.learning_rate = graph_model.optimizer.learning_rate = 0.1
            assert run_steps(graph, [(x, y)]) == run_steps(eager, [(x, y)])
    # steps 1 and 4 warm up and capture (the second time with the new rate); the rest replay
    assert (runner.captures, runner.replays, runner.eager_steps) == (2, 3, 2)
    for got, want in zip(graph_model.get_weights(), eager_model.get_weights()):
        np.testing.assert_array_equal(got, want)


class BufferReusingCapture(step_runners.EagerCapture):
    """Like a real graph, every replay writes its outputs into the same arrays."""

    def capture(self, function):
        outputs = []

        class Graph:
            def replay(self):
                results = function()
                if not outputs:
                    outputs.extend(r.copy() for r in results)
                for kept, new in zip(outputs, results):
                    kept[...] = new
                return tuple(outputs)

        return Graph()


def test_graph_runner_hands_out_a_loss_that_later_replays_do_not_overwrite():
    with backend.using_backend("cpu"):
        data = batches([4, 4, 4, 4])
        eager_losses = run_steps(step_runners.EagerStep(small_model()), data)
        runner = step_runners.GraphStep(small_model(), capture=BufferReusingCapture())
        kept = [runner(x, y)[0] for x, y in data]
    assert [float(loss) for loss in kept] == eager_losses
    assert runner.replays == 3


class RefusingCapture(step_runners.EagerCapture):
    def capture(self, function):
        raise RuntimeError("operation not permitted when stream is capturing")


def test_failed_capture_warns_once_and_trains_eagerly():
    with backend.using_backend("cpu"):
        data = batches([4, 4, 4])
        eager_model, graph_model = small_model(), small_model()
        eager_losses = run_steps(step_runners.EagerStep(eager_model), data)
        runner = step_runners.GraphStep(graph_model, capture=RefusingCapture())
        with pytest.warns(RuntimeWarning, match="operation not permitted") as record:
            graph_losses = run_steps(runner, data)
    assert len(record) == 1 and "jit_graph=False" in str(record[0].message)
    assert graph_losses == eager_losses
    assert (runner.captures, runner.replays, runner.eager_steps) == (0, 0, 3)


def test_runner_choice_follows_jit_graph_and_the_backend():
    with backend.using_backend("cpu"):
        model = small_model()
        assert type(step_runners.make_step_runner(model, None)) is step_runners.EagerStep
        assert type(step_runners.make_step_runner(model, False)) is step_runners.EagerStep
        runner = step_runners.make_step_runner(model, True)
        assert type(runner) is step_runners.GraphStep
        assert type(runner._capture) is step_runners.EagerCapture
        with pytest.raises(ValueError, match="jit_graph"):
            step_runners.make_step_runner(model, "yes")


def test_a_new_learning_rate_before_a_partial_batch_is_captured_at_the_full_shape():
    with backend.using_backend("cpu"):
        data = batches([4, 4, 3, 4, 4])
        model = small_model()
        runner = step_runners.GraphStep(model, capture=step_runners.EagerCapture())
        for index, (x, y) in enumerate(data):
            if index == 2:
                model.optimizer.learning_rate = 0.1
            runner(x, y)
    # The partial batch runs eagerly; the next full batch captures anew and the last one replays.
    assert (runner.captures, runner.replays, runner.eager_steps) == (2, 2, 3)


def test_dropout_models_use_the_graph_runner():
    with backend.using_backend("cpu"):
        model = small_model(dropout=0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            assert type(step_runners.make_step_runner(model, True)) is step_runners.GraphStep


def test_fit_with_jit_graph_trains_exactly_like_eager(monkeypatch):
    runners = []
    make = step_runners.make_step_runner
    monkeypatch.setattr(step_runners, "make_step_runner", lambda *a: runners.append(make(*a)) or runners[-1])
    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, 6, 6, 1)).astype(np.float32)
    y = (rng.random(10) > 0.5).astype(np.float32)
    results = []
    with backend.using_backend("cpu"):
        for jit_graph in (False, True):
            model = small_model()
            model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"],
                          jit_graph=jit_graph)
            history = model.fit(x, y, batch_size=4, epochs=3, verbose=0)
            results.append((history.history, model.get_weights()))
    assert results[0][0] == results[1][0]
    for got, want in zip(results[1][1], results[0][1]):
        np.testing.assert_array_equal(got, want)
    assert type(runners[1]) is step_runners.GraphStep and runners[1].replays == 3 * 2 - 1


def test_compile_rejects_a_bad_jit_graph():
    with backend.using_backend("cpu"):
        model = small_model()
        with pytest.raises(ValueError, match="jit_graph.*'on'"):
            model.compile(optimizer="adam", loss="binary_crossentropy", jit_graph="on")


def test_a_new_matmul_precision_is_captured_anew(monkeypatch):
    """The precision picks the conv and Dense kernels a graph holds: a change (here by a callback's hand on
    the global setting) must capture anew."""
    with backend.using_backend("cpu"):
        model = small_model()
        runner = step_runners.GraphStep(model, capture=step_runners.EagerCapture())
        data = batches([4] * 4)
        run_steps(runner, data[:2])
        monkeypatch.setattr(config, "_precision", "medium")
        run_steps(runner, data[2:])
    # steps 1 and 3 warm up and capture (the second time with the BF16 kernels); 2 and 4 replay
    assert (runner.captures, runner.replays, runner.eager_steps) == (2, 2, 2)


class _SettingsSeen(gpucnn.callbacks.Callback):
    """Records the precision and autotune switch in force at each training and test batch."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def _record(self, *_):
        from gpucnn.cuda import autotune
        self.seen.append((config.get_float32_matmul_precision(), autotune.autotune_enabled()))

    on_train_batch_begin = on_test_batch_begin = _record


def test_compiled_precision_and_autotune_apply_during_the_models_steps_only(emulated, monkeypatch):
    from gpucnn.cuda import autotune
    monkeypatch.setattr(config, "_precision", None)
    monkeypatch.delenv(config.PRECISION_ENV, raising=False)
    monkeypatch.setattr(autotune, "_enabled", True)
    model = small_model(input_shape=(5, 5, 1))
    model.compile(optimizer="adam", loss="binary_crossentropy", matmul_precision="high", autotune=False)
    x, y = (backend.current().to_numpy(a) for a in batches([2], input_shape=(5, 5, 1))[0])
    seen = _SettingsSeen()
    with autotune.recording() as launches:
        model.fit(x, y, batch_size=2, verbose=0, callbacks=[seen])
        model.evaluate(x, y, verbose=0, callbacks=[seen])
        model.predict(x)
    assert seen.seen == [("high", False)] * 2
    kernels = [problem[0] for problem, _ in launches]
    assert kernels and all(kernel.endswith("_tf32") for kernel in kernels), kernels
    assert (config.get_float32_matmul_precision(), autotune.autotune_enabled()) == ("highest", True)
    model.compile(optimizer="adam", loss="binary_crossentropy")  # None: the global settings again
    with autotune.recording() as launches:
        model.predict(x)
    assert [problem[0] for problem, _ in launches] == ["conv2d_forward", "gemm_nn"]


@pytest.mark.parametrize("argument, value, message", [
    ("matmul_precision", "tf32", "Argument `matmul_precision` must be one of 'highest', 'high', 'medium'"),
    ("autotune", "yes", r"Argument `autotune` must be None \(the global switch\), True or False, got 'yes'")])
def test_compile_rejects_a_bad_matmul_precision_or_autotune(argument, value, message):
    with backend.using_backend("cpu"):
        model = small_model()
        with pytest.raises(ValueError, match=message):
            model.compile(optimizer="adam", loss="binary_crossentropy", **{argument: value})


_SMALL_GRID_CHECK = textwrap.dedent(f"""
    import warnings
    from numba.cuda import dispatcher
    from gpucnn.cuda import runtime
    from gpucnn.kernels import elementwise
    warnings.filterwarnings("error", message={OCCUPANCY_WARNING!r})

    def configure():  # what kernel[grid, block, stream] builds on a new stream: graph warm-up and capture
        dispatcher._LaunchConfiguration(elementwise.dropout, (1, 1, 1), (256, 1, 1), 0, 0)

    try:
        configure()
    except Warning:
        pass
    else:
        raise SystemExit("the filter let Numba's occupancy warning through: its text changed")
    runtime.quiet_numba_occupancy_warning()
    configure()
""")


def test_small_numba_grids_do_not_warn():
    """numba-cuda warns for grids under 128 blocks (ours often are); where warnings are errors that
    would fail the graph warm-up and capture.  Run with the real numba.cuda (no simulator, no GPU
    needed to configure a launch)."""
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, "-c", _SMALL_GRID_CHECK], env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]


# -- on a GPU ---------------------------------------------------------------------------------------
GPU_INPUT = (64, 64, 1)


def gpu_model(dropout=0.0):
    gpucnn.utils.set_random_seed(11)
    model = gpucnn.Sequential([
        Conv2D(32, (3, 3), activation="relu", input_shape=GPU_INPUT), MaxPooling2D((3, 3)),
        Conv2D(16, (3, 3), activation="relu"), MaxPooling2D((3, 3)),
        Flatten(), Dropout(dropout, seed=5), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.setup_training()
    return model


@pytest.mark.gpu
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_cuda_graph_step_matches_eager_steps(gpu, dropout):
    """With Dropout, a graph that froze its step counter would repeat one mask and drift from eager."""
    import cupy
    data = batches([32] * 6 + [20] + [32] * 3, input_shape=GPU_INPUT)
    eager_model, graph_model = gpu_model(dropout), gpu_model(dropout)
    eager_losses = run_steps(step_runners.EagerStep(eager_model), data)
    runner = step_runners.GraphStep(graph_model)
    assert type(runner._capture) is step_runners.CudaGraphCapture
    graph_losses = []
    with warnings.catch_warnings():
        error_on_meant_warnings()  # a failed capture must fail this test, not fall back
        for x, y in data:
            loss, _ = runner(x, y)
            # Fill freed pool memory with NaN: a graph buffer that went back to the pool would show.
            junk = [cupy.full(size, cupy.nan, cupy.float32) for size in (1 << 10, 1 << 16, 1 << 20)]
            del junk
            graph_losses.append(float(loss))
    assert (runner.captures, runner.eager_steps) == (1, 2) and runner.replays == len(data) - 2
    np.testing.assert_allclose(graph_losses, eager_losses, rtol=1e-5)
    for got, want in zip(graph_model.get_weights(), eager_model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert graph_model.optimizer.iterations == len(data)
    assert graph_model.layers[4].get_seed_state()["step"] == len(data)


@pytest.mark.gpu
@pytest.mark.parametrize("runner_class", [step_runners.EagerStep, step_runners.GraphStep])
def test_training_steps_never_wait_for_the_gpu(gpu, runner_class):
    """A step only enqueues work: CuPy raises if anything in it synchronizes with the device."""
    import cupyx
    runner = runner_class(gpu_model(dropout=0.25))
    data = batches([32] * 5, input_shape=GPU_INPUT)
    for x, y in data[:2]:  # compilation, and the capture for GraphStep
        runner(x, y)
    with cupyx.allow_synchronize(False):
        for x, y in data[2:]:
            runner(x, y)


@pytest.mark.gpu
def test_numba_launches_of_small_grids_do_not_warn(gpu):
    import cupy
    x, step = cupy.ones(64, cupy.float32), cupy.ones(1, cupy.int64)
    with warnings.catch_warnings(), cupy.cuda.Stream(non_blocking=True) as stream:
        error_on_meant_warnings()
        gpu.ops.dropout_forward(x, 0.5, 7, step)  # one block, on a stream no launch has used yet
        stream.synchronize()


@pytest.mark.gpu
def test_fit_on_gpu_uses_graphs_by_default(gpu, monkeypatch):
    runners = []
    make = step_runners.make_step_runner
    monkeypatch.setattr(step_runners, "make_step_runner", lambda *a: runners.append(make(*a)) or runners[-1])
    rng = np.random.default_rng(2)
    x = rng.random((200,) + GPU_INPUT, dtype=np.float32)
    y = (rng.random(200) > 0.5).astype(np.float32)
    with warnings.catch_warnings():
        error_on_meant_warnings()
        gpu_model().fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert type(runners[0]) is step_runners.GraphStep
    assert runners[0].captures == 1 and runners[0].replays == 2 * 6 - 1


class DLPackOnly:
    """A device array that offers only DLPack (like a JAX array), wrapping a CuPy array."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


@pytest.mark.gpu
def test_cupy_and_dlpack_inputs_are_used_in_place(gpu):
    import cupy
    rng = np.random.default_rng(4)
    x_host = rng.random((96,) + GPU_INPUT, dtype=np.float32)
    y_host = (rng.random(96) > 0.5).astype(np.float32)
    x_device = cupy.asarray(x_host)
    model = gpu_model()
    assert x_on_backend(model, x_device).data.ptr == x_device.data.ptr
    assert x_on_backend(model, DLPackOnly(x_device)).data.ptr == x_device.data.ptr

    weights = []
    for x, y in ((x_host, y_host), (x_device, cupy.asarray(y_host))):
        model = gpu_model()
        gpucnn.utils.set_random_seed(0)  # same shuffling order
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        weights.append(model.get_weights())
    for got, want in zip(*weights):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x_device.get(), x_host)  # the caller's array is left untouched
