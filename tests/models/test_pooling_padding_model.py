"""A Sequential model with ZeroPadding2D, AveragePooling2D ('same') and GlobalAveragePooling2D trains the
same on the emulated backend (every op a real kernel) as on the cpu backend, learns on the cpu backend,
and survives save/load."""
import numpy as np

import gpucnn
from gpucnn import backend
from gpucnn.layers import AveragePooling2D, Conv2D, Dense, GlobalAveragePooling2D, ZeroPadding2D


def build_model():
    gpucnn.utils.set_random_seed(5)
    model = gpucnn.Sequential([
        ZeroPadding2D(((1, 0), (0, 2)), input_shape=(5, 4, 2)),
        Conv2D(3, 3, activation="relu"),
        AveragePooling2D(pool_size=2, strides=1, padding="same"),
        Conv2D(4, 2),
        GlobalAveragePooling2D(),
        Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train(name, x, y, epochs):
    with backend.using_backend(name):
        model = build_model()
        history = model.fit(x, y, batch_size=3, epochs=epochs, shuffle=False, verbose=0)
        return model, history.history, model.predict(x, verbose=0)


def data(n, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 5, 4, 2)).astype(np.float32)
    return x, (x[..., 0].mean(axis=(1, 2)) > 0).astype(np.float32)


def test_trains_the_same_on_emulated_and_cpu(emulated, small_numba_launches):
    x, y = data(3)
    cpu_model, cpu_history, cpu_predictions = train("cpu", x, y, epochs=2)
    emu_model, emu_history, emu_predictions = train("emulated", x, y, epochs=2)
    assert cpu_model.layers[-2].output_shape == (4,)
    for got, want in zip(emu_model.get_weights(), cpu_model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emu_history["loss"], cpu_history["loss"], rtol=1e-5)
    np.testing.assert_allclose(emu_predictions, cpu_predictions, rtol=1e-4, atol=1e-6)


def test_learns_on_cpu_and_round_trips_through_save(cpu, tmp_path):
    x, y = data(48)
    model, history, predictions = train("cpu", x, y, epochs=30)
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    model.save(tmp_path / "m.gpucnn")
    loaded = gpucnn.load_model(tmp_path / "m.gpucnn")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), predictions)
