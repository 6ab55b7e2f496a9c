"""sample_weight and class_weight with Keras 3 semantics, against NumPy on the model's own predictions:
a batch's loss is Σ wᵢ·lossᵢ / batch size ("sum_over_batch_size"), the epoch loss the batch losses
weighted by batch size, accuracy unweighted (Keras' ``metrics=``), the gradient that of the weighted
loss; on the cpu and emulated backends and through the CUDA-graph step runner's host logic."""
import numpy as np
import pytest

import gpucnn
from gpucnn.layers import Dense, Flatten
from gpucnn.optimizers import SGD

SAMPLES = 7
WEIGHTS = np.array([0.5, 0.0, 3.0, 1.25, 1.0, 2.0, 0.25], np.float32)

# (loss, output units, last activation): fused logits heads and probability heads.
CASES = [
    ("binary_crossentropy", 1, "sigmoid"),
    ("binary_crossentropy", 3, "sigmoid"),
    ("categorical_crossentropy", 3, "softmax"),
    ("categorical_crossentropy", 3, "sigmoid"),
    ("sparse_categorical_crossentropy", 3, "softmax"),
    ("mse", 1, "sigmoid"),
    ("mse", 3, None),
]


def frozen_model(loss, units, activation, metric="accuracy"):
    """A model whose weights training does not change (a learning rate below float32 resolution), so
    every reported number can be recomputed from ``predict``."""
    gpucnn.utils.set_random_seed(5)
    model = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(units, activation=activation)])
    model.compile(optimizer=SGD(learning_rate=1e-30), loss=loss,
                  metrics=[metric if units == 1 or loss != "binary_crossentropy" else "binary_accuracy"])
    return model


def inputs_and_labels(loss, units, seed=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, 2, 2, 1)).astype(np.float32)
    if loss == "mse":
        y = rng.random((SAMPLES, units)).astype(np.float32)
    elif loss == "binary_crossentropy":
        y = (rng.random((SAMPLES, units)) > 0.5).astype(np.float32)
    else:
        y = rng.integers(0, units, SAMPLES)
        y = y.astype(np.int32) if loss.startswith("sparse") else np.eye(units, dtype=np.float32)[y]
    return x, y


def per_sample_loss(loss, predictions, y):
    """Keras' per-sample losses from the predictions, in float64 (clipped as Keras clips)."""
    p = predictions.astype(np.float64)
    if loss == "mse":
        return np.mean((p - y) ** 2, axis=1)
    if loss == "binary_crossentropy":
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)), axis=1)
    one_hot = np.eye(p.shape[1])[y] if y.ndim == 1 else y
    q = np.clip(p / p.sum(axis=1, keepdims=True), 1e-7, 1 - 1e-7)
    return -np.sum(one_hot * np.log(q), axis=1)


def accuracy(loss, predictions, y):
    if loss == "binary_crossentropy" or predictions.shape[1] == 1:
        return np.mean((predictions > 0.5) == y)
    return np.mean(predictions.argmax(axis=1) == (y if y.ndim == 1 else y.argmax(axis=1)))


def classes_of(y):
    """Keras' class of each sample for class_weight: the label of one unit or class indices, else the
    argmax of the row (also for several binary units)."""
    if y.ndim == 1:
        return y
    return np.round(y[:, 0]).astype(int) if y.shape[1] == 1 else y.argmax(axis=1)


# The emulated backend (slow) runs a fused, a probability and an mse head; the loss kernels' tests cover
# the weights of every op on it.
@pytest.mark.parametrize("backend_name, loss, units, activation",
                         [("cpu", *case) for case in CASES] + [("emulated", *CASES[i]) for i in (0, 3, 6)])
def test_weighted_losses_are_keras_sum_over_batch_size(request, backend_name, loss, units, activation):
    request.getfixturevalue(backend_name)
    if backend_name == "emulated":
        request.getfixturevalue("small_numba_launches")
    model = frozen_model(loss, units, activation)
    metric = model.metrics[0]
    x, y = inputs_and_labels(loss, units)
    predictions = model.predict(x)
    losses = per_sample_loss(loss, predictions, y)
    want = np.dot(WEIGHTS, losses) / SAMPLES
    want_accuracy = accuracy(loss, predictions, y)
    # Not the unweighted mean, nor the mean over the weights' sum.
    assert abs(want - losses.mean()) > 1e-3 and abs(want - np.dot(WEIGHTS, losses) / WEIGHTS.sum()) > 1e-3

    result = model.evaluate(x, y, batch_size=3, sample_weight=WEIGHTS, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(want, rel=1e-5)
    assert result[metric] == pytest.approx(want_accuracy)
    assert model.test_on_batch(x, y, sample_weight=WEIGHTS.reshape(-1, 1), return_dict=True)["loss"] == \
        pytest.approx(want, rel=1e-5)
    history = model.fit(x, y, batch_size=3, epochs=1, verbose=0, sample_weight=WEIGHTS,
                        validation_data=(x, y, WEIGHTS)).history
    assert history["loss"][0] == pytest.approx(want, rel=1e-5)
    assert history["val_loss"][0] == pytest.approx(want, rel=1e-5)
    assert history[metric][0] == pytest.approx(want_accuracy)

    # validation_split takes the weights' last fraction too; class_weight weighs the training part only.
    class_weight = {0: 2.0, 1: 0.5}  # class 2 (categorical) is missing: weight 1, as in Keras
    history = model.fit(x, y, batch_size=3, epochs=1, verbose=0, class_weight=class_weight,
                        validation_split=3 / SAMPLES).history
    train_weights = np.array([class_weight.get(c, 1.0) for c in classes_of(y[:4])])
    assert history["loss"][0] == pytest.approx(np.dot(train_weights, losses[:4]) / 4, rel=1e-5)
    assert history["val_loss"][0] == pytest.approx(losses[4:].mean(), rel=1e-5)
    history = model.fit(x, y, batch_size=3, epochs=1, verbose=0, sample_weight=WEIGHTS,
                        validation_split=3 / SAMPLES).history
    assert history["val_loss"][0] == pytest.approx(np.dot(WEIGHTS[4:], losses[4:]) / 3, rel=1e-5)
    assert model.train_on_batch(x, y, class_weight=class_weight, return_dict=True)["loss"] == pytest.approx(
        np.dot([class_weight.get(c, 1.0) for c in classes_of(y)], losses) / SAMPLES, rel=1e-5)


def sgd_expected(model, x, y, weights, learning_rate):
    """Dense(1, sigmoid) on flattened x with BCE: dz = wᵢ·(pᵢ - yᵢ) / N, one SGD step, in NumPy."""
    kernel, bias = (w.astype(np.float64) for w in model.get_weights())
    flat = x.reshape(len(x), -1).astype(np.float64)
    p = 1 / (1 + np.exp(-(flat @ kernel + bias)))
    dz = weights.reshape(-1, 1) * (p - y.reshape(-1, 1)) / len(x)
    return kernel - learning_rate * flat.T @ dz, bias - learning_rate * dz.sum(axis=0)


@pytest.mark.parametrize("backend_name, jit_graph", [("cpu", False), ("cpu", True), ("emulated", True),
                                                     pytest.param("gpu", True, marks=pytest.mark.gpu)])
def test_weighted_gradient_steps_match_numpy(request, backend_name, jit_graph):
    """Full batches of 2 (captured once, replayed with each batch's weights copied into the static
    buffer when jit_graph; a real CUDA graph on the gpu) and a last batch of 1 (eager)."""
    request.getfixturevalue(backend_name)
    if backend_name == "emulated":
        request.getfixturevalue("small_numba_launches")
    gpucnn.utils.set_random_seed(6)
    model = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(1, activation="sigmoid")])
    model.compile(optimizer=SGD(learning_rate=0.5), loss="binary_crossentropy", jit_graph=jit_graph)
    x, y = inputs_and_labels("binary_crossentropy", 1, seed=3)
    for start in range(0, SAMPLES, 2):
        rows = slice(start, start + 2)
        want = sgd_expected(model, x[rows], y[rows], WEIGHTS[rows], 0.5)
        model.fit(x[rows], y[rows], sample_weight=WEIGHTS[rows], batch_size=2, epochs=1, shuffle=False,
                  verbose=0)
        for got, expected in zip(model.get_weights(), want):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    # One fit over every batch: the runner replays its capture with each batch's own weights.
    start_weights = model.get_weights()
    model.fit(x, y, sample_weight=WEIGHTS, batch_size=2, epochs=1, shuffle=False, verbose=0)
    fitted = model.get_weights()
    model.set_weights(start_weights)
    for start in range(0, SAMPLES, 2):
        rows = slice(start, start + 2)
        model.set_weights(sgd_expected(model, x[rows], y[rows], WEIGHTS[rows], 0.5))
    for got, expected in zip(fitted, model.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_zero_weights_leave_the_model_unchanged(cpu):
    model = frozen_model("binary_crossentropy", 1, "sigmoid")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = inputs_and_labels("binary_crossentropy", 1)
    before = model.get_weights()
    assert model.train_on_batch(x, y, sample_weight=np.zeros(SAMPLES)) == 0
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x, y: m.fit(x, y, sample_weight=np.ones(3), verbose=0), ValueError,
     r"`sample_weight` must have one weight per sample, shape \(7,\), got shape \(3,\)"),
    (lambda m, x, y: m.evaluate(x, y, sample_weight=np.full(7, np.nan), verbose=0), ValueError,
     r"`sample_weight` contains NaN or Inf"),
    (lambda m, x, y: m.train_on_batch(x, y, sample_weight=np.ones(7) + 1j), TypeError,
     r"`sample_weight` must hold real numbers, got dtype complex128"),
    (lambda m, x, y: m.fit(x, y, validation_data=(x, y, np.ones(2)), verbose=0), ValueError,
     r"`validation_data\[2\]` must have one weight per sample"),
    (lambda m, x, y: m.fit(x, y, sample_weight=np.ones(7), class_weight={0: 1}, verbose=0), ValueError,
     r"cannot use `class_weight` and `sample_weight` at the same time"),
    (lambda m, x, y: m.fit(x, y, class_weight={"zero": 1.0}, verbose=0), ValueError,
     r"`class_weight` must have integer class indices as keys, got the key 'zero'"),
    (lambda m, x, y: m.fit(x, y, class_weight={0: float("inf")}, verbose=0), ValueError,
     r"`class_weight` must map each class to a finite number"),
    (lambda m, x, y: m.fit(x, y, class_weight=[1.0, 2.0], verbose=0), ValueError,
     r"`class_weight` must be a dict mapping class indices to weights"),
    (lambda m, x, y: m.fit(x, y, validation_data=(x, y, None, None), verbose=0), ValueError,
     r"`validation_data` must be a tuple \(x_val, y_val\) or \(x_val, y_val, val_sample_weight\)"),
])
def test_bad_weights_are_refused_clearly(cpu, call, error, match):
    model = frozen_model("binary_crossentropy", 1, "sigmoid")
    x, y = inputs_and_labels("binary_crossentropy", 1)
    before = model.get_weights()
    with pytest.raises(error, match=match):
        call(model, x, y)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
