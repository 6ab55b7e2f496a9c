"""Every accuracy a user sees — History, evaluate, train_on_batch, test_on_batch, the logs callbacks
get — against an independent count: NumPy on the model's own predictions, for every loss (fused with
the last activation or not), output width and batch split (a partial last batch), on the cpu and the
emulated backend."""
import numpy as np
import pytest

import gpucnn
from gpucnn.callbacks import Callback
from gpucnn.layers import Dense, Flatten
from gpucnn.optimizers import SGD

SAMPLES = 7

# (loss, output units, last activation, metric name): the fused logits ops (sigmoid / softmax heads),
# the probability ops (a categorical loss on sigmoid outputs) and from_logits heads.
CASES = [
    ("binary_crossentropy", 1, "sigmoid", "accuracy"),
    ("binary_crossentropy", 3, "sigmoid", "binary_accuracy"),
    ("categorical_crossentropy", 2, "softmax", "accuracy"),
    ("categorical_crossentropy", 3, "softmax", "accuracy"),
    ("categorical_crossentropy", 3, "sigmoid", "categorical_accuracy"),
    (gpucnn.losses.CategoricalCrossentropy(from_logits=True), 3, None, "accuracy"),
    ("sparse_categorical_crossentropy", 3, "softmax", "accuracy"),
    ("sparse_categorical_crossentropy", 3, "sigmoid", "sparse_categorical_accuracy"),
    ("mse", 1, "sigmoid", "accuracy"),  # Keras' 'accuracy' here: binary for one unit, argmax for more
    ("mse", 3, "softmax", "accuracy"),
]


class LastLogs(Callback):
    """The logs of the last batch and of the end of each pass, as plain dicts."""

    def __init__(self):
        self.batch = self.test_batch = self.epoch = self.test = None

    def on_train_batch_end(self, batch, logs=None):
        self.batch = dict(logs)

    def on_test_batch_end(self, batch, logs=None):
        self.test_batch = dict(logs)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = dict(logs)

    def on_test_end(self, logs=None):
        self.test = dict(logs)


def model_and_data(loss, units, activation, metric):
    gpucnn.utils.set_random_seed(3)
    model = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(units, activation=activation)])
    # A learning rate far below float32 resolution: fit's accuracy is counted on the predictions of
    # these very weights.
    model.compile(optimizer=SGD(learning_rate=1e-30), loss=loss, metrics=[metric])
    x = np.random.default_rng(1).normal(size=(SAMPLES, 2, 2, 1)).astype(np.float32)
    predictions = model.predict(x)
    # Labels agree with the predictions on the first 5 samples only, so any wrong divisor shows.
    if model.loss.name == "binary_crossentropy" or units == 1:
        y = (predictions > 0.5).astype(np.float32)
        y[5:] = 1 - y[5:]
    else:
        classes = predictions.argmax(axis=1)
        classes[5:] = (classes[5:] + 1) % units
        y = classes if model.loss.name.startswith("sparse") else np.eye(units, dtype=np.float32)[classes]
    return model, x, y, predictions


def independent_accuracy(loss_name, predictions, y):
    if loss_name == "binary_crossentropy" or predictions.shape[1] == 1:
        return np.mean((predictions > 0.5) == (y > 0.5))
    labels = y if y.ndim == 1 else y.argmax(axis=1)
    return np.mean(predictions.argmax(axis=1) == labels)


# Batches of 3 split the 7 samples 3 + 3 + 1; the emulated backend (slow) runs that split only.
@pytest.mark.parametrize("backend_name, batch_size", [("cpu", 3), ("cpu", SAMPLES), ("emulated", 3)])
@pytest.mark.parametrize("loss, units, activation, metric", CASES)
def test_every_reported_accuracy_is_the_independent_count(request, backend_name, batch_size, loss, units,
                                                          activation, metric):
    request.getfixturevalue(backend_name)
    if backend_name == "emulated":
        request.getfixturevalue("small_numba_launches")
    model, x, y, predictions = model_and_data(loss, units, activation, metric)
    want = independent_accuracy(model.loss.name, predictions, y)
    assert want == pytest.approx(5 / SAMPLES) or units > 1 and model.loss.name == "binary_crossentropy"

    seen = LastLogs()
    result = model.evaluate(x, y, batch_size=batch_size, verbose=0, callbacks=[seen], return_dict=True)
    assert result[metric] == pytest.approx(want)
    assert seen.test[metric] == pytest.approx(want) and seen.test_batch[metric] == pytest.approx(want)
    assert model.test_on_batch(x, y, return_dict=True)[metric] == pytest.approx(want)

    seen = LastLogs()
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, validation_data=(x, y),
                        callbacks=[seen])
    for logs in (history.history, seen.epoch):
        assert np.ravel(logs[metric]) == pytest.approx([want])
        assert np.ravel(logs["val_" + metric]) == pytest.approx([want])
    assert seen.batch[metric] == pytest.approx(want)
    # train_on_batch reports the batch's accuracy before its update.
    assert model.train_on_batch(x, y, return_dict=True)[metric] == pytest.approx(want)
