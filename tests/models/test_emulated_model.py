"""A whole model trained on the emulated backend — every op a real kernel (Numba kernels in the CUDA
simulator, CUDA C through the C++ emulator) — matches the same model trained on the cpu backend."""
import numpy as np

import gpucnn
from gpucnn import backend, cuda, reference
from gpucnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D


def test_emulated_backend_runs_only_our_kernels(emulated):
    assert emulated.ops is cuda
    for name in reference.__all__:
        assert getattr(cuda, name).__module__.startswith("gpucnn.cuda."), name


def train(name, x, y, steps=2):
    with backend.using_backend(name):
        gpucnn.utils.set_random_seed(7)
        model = gpucnn.Sequential([
            Conv2D(3, (3, 3), strides=2, padding="same", activation="relu", input_shape=(7, 6, 2)),
            MaxPooling2D((2, 2), strides=1),
            BatchNormalization(),
            Conv2D(4, (2, 2)),
            Flatten(),
            Dropout(0.25, seed=3),
            Dense(1, activation="sigmoid"),
        ])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, batch_size=3, epochs=steps, shuffle=False, verbose=0)
        return model.get_weights(), history.history, model.predict(x)


def test_whole_model_trains_the_same_on_emulated_and_cpu(emulated, small_numba_launches):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 6, 2)).astype(np.float32)
    y = np.array([0, 1, 1], np.float32)
    cpu_weights, cpu_history, cpu_predictions = train("cpu", x, y)
    emu_weights, emu_history, emu_predictions = train("emulated", x, y)
    for got, want in zip(emu_weights, cpu_weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emu_history["loss"], cpu_history["loss"], rtol=1e-5)
    assert emu_history["accuracy"] == cpu_history["accuracy"]
    np.testing.assert_allclose(emu_predictions, cpu_predictions, rtol=1e-4, atol=1e-6)
