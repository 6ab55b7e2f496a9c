"""model.profile() and the NVTX ranges (gpucnn/profiler.py)."""
import sys
import types

import numpy as np
import pytest

import gpucnn
from gpucnn import backend, profiler
from gpucnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D

BATCH, SIDE, FILTERS = 8, 24, 16


def profiled_model():
    gpucnn.utils.set_random_seed(0)
    model = gpucnn.Sequential([
        Conv2D(FILTERS, (3, 3), activation="relu", input_shape=(SIDE, SIDE, 1)), MaxPooling2D((2, 2)),
        Conv2D(8, (3, 3), activation="relu"), Flatten(), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def batch(n=BATCH):
    rng = np.random.default_rng(1)
    return (rng.random((n, SIDE, SIDE, 1), dtype=np.float32),
            (rng.random(n) > 0.5).astype(np.float32))


def test_profile_table_on_cpu(cpu):
    model = profiled_model()
    x, y = batch()
    printed = []
    result = model.profile(x, y, steps=3, warmup=1, print_fn=printed.append)

    names = [row["name"] for row in result.rows]
    conv, pool, conv_1, flatten, dense = model.layers
    assert names == [f"{conv.name}+{pool.name}", conv_1.name, flatten.name, dense.name, "loss",
                     "optimizer"]
    assert sum(row["share"] for row in result.rows) == pytest.approx(1.0, abs=1e-9)
    assert all(0 <= row["share"] <= 1 and row["total_ms"] >= 0 for row in result.rows)
    by_name = dict(zip(names, result.rows))
    # Real timings: a 16-filter convolution over 24x24 costs more than a reshape.
    assert by_name[names[0]]["share"] > by_name[flatten.name]["share"]
    assert result.step_ms > 0 and result.batch_size == BATCH and result.steps == 3

    # Achieved rate of the fused unit from an independent count: conv forward plus the filter
    # gradient (the first unit needs no input gradient), 2 FLOPs per multiply-add.
    fused = by_name[names[0]]
    flops = 2 * 2 * BATCH * (SIDE - 2) ** 2 * FILTERS * 3 * 3 * 1
    assert fused["rate_unit"] == "TFLOP/s"
    assert fused["rate"] == pytest.approx(flops / ((fused["forward_ms"] + fused["backward_ms"]) * 1e-3)
                                          / 1e12)
    assert by_name[flatten.name]["rate"] is None
    assert by_name["optimizer"]["rate_unit"] == "GB/s" and by_name["optimizer"]["rate"] > 0

    # The fused unit holds at least the convolution's float32 output while it runs.
    assert fused["peak_bytes"] >= 4 * BATCH * (SIDE - 2) ** 2 * FILTERS
    assert result.peak_bytes == max(row["peak_bytes"] for row in result.rows)

    assert len(printed) == 1
    table = printed[0]
    assert table == result.table() == str(result)
    for name in names:
        assert name in table
    assert "TFLOP/s" in table and "GB/s" in table and "step:" in table
    assert set(result.to_dict()) >= {"backend", "step_ms", "peak_bytes", "rows"}


def test_profile_leaves_the_model_as_it_was(cpu):
    model = profiled_model()
    x, y = batch()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    weights = model.get_weights()
    state = {name: array.copy() for name, array in model.optimizer.state.items()}
    iterations = model.optimizer.iterations
    model.profile(x, y, steps=2, print_fn=None)
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    for name, array in model.optimizer.state.items():
        np.testing.assert_array_equal(array, state[name])
    assert model.optimizer.iterations == iterations
    assert all(layer._cache is None for layer in model.layers)


def test_profile_does_not_change_later_training(cpu):
    """Dropout seeds, the global RNG and BatchNormalization's moving statistics are put back too: a run
    profiled halfway ends with the same weights as one that was not."""
    x, y = batch()

    def train(profile_halfway):
        gpucnn.utils.set_random_seed(5)
        model = gpucnn.Sequential([
            Conv2D(4, (3, 3), input_shape=(SIDE, SIDE, 1)), BatchNormalization(), MaxPooling2D((2, 2)),
            Flatten(), Dropout(0.5), Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        if profile_halfway:
            model.profile(x, y, steps=2, print_fn=None)
        model.fit(x, y, batch_size=4, epochs=2, verbose=0)
        return model.get_weights()

    for got, want in zip(train(True), train(False)):
        np.testing.assert_array_equal(got, want)


def test_profile_argument_errors(cpu):
    model = profiled_model()
    x, y = batch()
    with pytest.raises(ValueError, match="`steps`.*0"):
        model.profile(x, y, steps=0)
    with pytest.raises(ValueError, match="`warmup`"):
        model.profile(x, y, warmup=-1)
    uncompiled = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(1)])
    with pytest.raises(ValueError, match="compile"):
        uncompiled.profile(x, y)


# -- NVTX -------------------------------------------------------------------------------------------
def test_nvtx_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "nvtx", None)  # makes `import nvtx` raise ImportError
    assert profiler._load_nvtx() is None
    monkeypatch.setattr(profiler, "_NVTX", None)
    with profiler.nvtx_range("conv2d", "forward") as entered:
        assert entered is None
    with backend.using_backend("cpu"):
        model = profiled_model()
        x, y = batch(4)
        model.fit(x, y, epochs=1, verbose=0)


def fake_nvtx(events):
    module = types.ModuleType("nvtx")
    module.push_range = lambda message, domain=None: events.append(("push", message, domain))
    module.pop_range = lambda domain=None: events.append(("pop", domain))
    return module


def test_nvtx_ranges_cover_every_unit_the_loss_and_the_optimizer(monkeypatch):
    events = []
    monkeypatch.setattr(profiler, "_NVTX", fake_nvtx(events))
    with backend.using_backend("cpu"):
        model = profiled_model()
        x, y = batch(4)
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    units = [unit.name for unit in model.execution_plan()]
    expected = ([f"{u} forward" for u in units] + ["loss"] +
                [f"{u} backward" for u in reversed(units)] + ["optimizer"])
    pushed = [event[1] for event in events if event[0] == "push"]
    assert pushed[:len(expected)] == expected
    depth = 0
    for event in events:  # every range is closed before the next opens, all in gpucnn's domain
        depth += 1 if event[0] == "push" else -1
        assert depth in (0, 1) and event[-1] == profiler.NVTX_DOMAIN
    assert depth == 0


def test_environment_record():
    info = profiler.environment()
    assert info["date"][:2] == "20" and info["python"].count(".") == 2
    assert "numpy" in info["versions"] and "gpucnn" in info["versions"]
    if backend.cuda_device_count() == 0:
        assert info["gpu"] is None
    else:
        assert info["gpu"]["name"]


@pytest.mark.gpu
def test_profile_with_cuda_events(gpu):
    model = profiled_model()
    x, y = batch(32)
    result = model.profile(x, y, steps=5, print_fn=None)
    assert result.backend == "cuda"
    assert sum(row["share"] for row in result.rows) == pytest.approx(1.0, abs=1e-6)
    assert result.step_ms > 0 and all(row["total_ms"] > 0 for row in result.rows
                                      if row["name"] != model.layers[3].name)
    assert result.rows[0]["peak_bytes"] >= 4 * 32 * (SIDE - 2) ** 2 * FILTERS
    assert result.memory_in_use > 0
