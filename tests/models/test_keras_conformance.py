"""What a Keras 3 user relies on, on the cpu backend: each test is a Keras behaviour gpucnn diverged
from (callback hooks and logs, progress output, freezing layers, Model methods, summary totals,
metric choice) or a clear error where gpucnn does not implement the Keras feature."""
import re

import numpy as np
import pytest

import gpucnn
from gpucnn.callbacks import Callback, ModelCheckpoint
from gpucnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D


def data(n=12, seed=0):
    generator = np.random.default_rng(seed)
    x = generator.random((n, 6, 6, 1), dtype=np.float32)
    return x, (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.float32)


def small_model(*middle, metrics=("accuracy",)):
    gpucnn.utils.set_random_seed(0)
    model = gpucnn.Sequential([Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)), *middle,
                               Flatten(), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=list(metrics))
    return model


# -- callbacks ----------------------------------------------------------------------------------------
class Recorder(Callback):
    """Records every hook call as (hook, argument, logs as a plain dict)."""

    def __init__(self):
        self.calls = []

    def _record(self, hook, argument=None, logs=None):
        self.calls.append((hook, argument, dict(logs) if logs is not None else None))

    def on_batch_begin(self, batch, logs=None):
        self._record("batch_begin", batch)

    def on_batch_end(self, batch, logs=None):
        self._record("batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._record("test_begin")

    def on_test_batch_end(self, batch, logs=None):
        self._record("test_batch_end", batch)

    def on_test_end(self, logs=None):
        self._record("test_end", None, logs)

    def on_train_end(self, logs=None):
        self._record("train_end", None, logs)

    def hooks(self, name):
        return [call for call in self.calls if call[0] == name]


def test_callbacks_get_keras_hooks_logs_and_params(cpu):
    model = small_model()
    x, y = data(12)
    recorder = Recorder()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[recorder],
                        validation_data=data(5, seed=1), validation_batch_size=2)
    # on_batch_begin/on_batch_end are Keras' aliases of the training-batch hooks: 3 steps x 2 epochs.
    assert [c[1] for c in recorder.hooks("batch_begin")] == [0, 1, 2] * 2
    batch_logs = recorder.hooks("batch_end")
    # Batch-end logs are a dict of the running means (Keras: logs['loss']).
    assert all(set(logs) == {"accuracy", "loss"} for _, _, logs in batch_logs)
    assert batch_logs[2][2]["loss"] == pytest.approx(history.history["loss"][0])
    # Validation is an on_test_* pass (5 samples in batches of 2) after each epoch.
    assert len(recorder.hooks("test_begin")) == 2 and len(recorder.hooks("test_batch_end")) == 6
    assert recorder.hooks("test_end")[-1][2] == {"accuracy": history.history["val_accuracy"][-1],
                                                 "loss": history.history["val_loss"][-1]}
    # on_train_end gets the last epoch's logs; History has params and is also model.history.
    assert recorder.hooks("train_end")[0][2]["val_loss"] == history.history["val_loss"][-1]
    assert recorder.params == history.params == {"verbose": 0, "epochs": 2, "steps": 3}
    assert model.history is history


def test_validation_freq_validates_every_nth_epoch(cpu):
    model = small_model()
    history = model.fit(*data(8), epochs=4, verbose=0, validation_split=0.25, validation_freq=2)
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 2


def test_model_checkpoint_save_weights_only(cpu, tmp_path):
    model = small_model()
    model.fit(*data(8), epochs=1, verbose=0,
              callbacks=[ModelCheckpoint(tmp_path / "w-{epoch}.gpucnn", save_weights_only=True)])
    fresh = small_model()
    fresh.layers[-1].kernel.assign(np.zeros((32, 1)))
    fresh.load_weights(tmp_path / "w-1.gpucnn")
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- progress output ----------------------------------------------------------------------------------
def test_verbose_2_prints_one_line_per_epoch_without_bar(cpu, capsys):
    small_model().fit(*data(8), batch_size=4, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/2", "2/2", "Epoch 2/2", "2/2"]
    assert "━" not in "".join(lines) and "/step - accuracy: " in lines[1]


def test_single_epoch_has_no_epoch_header(cpu, capsys):
    small_model().fit(*data(8), epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch" not in out and out.count("\n") == 1


@pytest.mark.parametrize("verbose", [1, 2])
def test_evaluate_and_predict_print_keras_progress_with_time_per_step(cpu, capsys, verbose):
    model = small_model()
    x, y = data(8)
    loss, accuracy = model.evaluate(x, y, batch_size=3, verbose=verbose)
    predictions = model.predict(x, batch_size=3, verbose=verbose)
    evaluate_line, predict_line = capsys.readouterr().out.splitlines()
    numbers = rf" - accuracy: {accuracy:.4f} - loss: {loss:.4f}"
    if verbose == 1:  # 3 steps (3 + 3 + 2 samples): bar, elapsed time, time per step
        assert re.fullmatch(rf"3/3 ━{{20}} \d+s \d+(s|ms|us)/step{numbers}", evaluate_line)
        assert re.fullmatch(r"3/3 ━{20} \d+s \d+(s|ms|us)/step", predict_line)
    else:
        assert re.fullmatch(rf"3/3 - \d+s - \d+(s|ms|us)/step{numbers}", evaluate_line)
        assert re.fullmatch(r"3/3 - \d+s - \d+(s|ms|us)/step", predict_line)
    np.testing.assert_array_equal(predictions, model.predict(x, batch_size=3, verbose=0))
    assert capsys.readouterr().out == ""


def test_tiny_values_print_in_scientific_notation():
    from gpucnn.callbacks import _format_logs

    assert _format_logs({"loss": 1.5e-5, "accuracy": 1.0}) == " - loss: 1.5000e-05 - accuracy: 1.0000"


# -- freezing -----------------------------------------------------------------------------------------
def test_freezing_a_built_layer_keeps_its_weights_and_counts_them_non_trainable(cpu):
    model = small_model()
    x, y = data(8)
    model.fit(x, y, epochs=1, verbose=0)
    conv = model.layers[0]
    conv.trainable = False
    frozen = conv.get_weights()
    dense_before = model.layers[-1].get_weights()[0].copy()
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(conv.get_weights(), frozen):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.layers[-1].get_weights()[0], dense_before)
    assert conv.trainable_weights == [] and len(conv.non_trainable_weights) == 2
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    model.trainable = False
    assert model.trainable_weights == [] and not model.trainable
    model.trainable = True
    assert len(model.trainable_weights) == 4


def test_frozen_batch_normalization_runs_in_inference_mode(cpu):
    layer = BatchNormalization(trainable=False)
    x = np.random.default_rng(0).random((4, 3, 3, 2), dtype=np.float32) * 3 + 1
    layer.build(x.shape[1:])
    layer.set_weights([np.array([2.0, 0.5]), np.array([0.1, -0.1]), np.array([1.0, 2.0]),
                       np.array([4.0, 0.25])])
    inference = layer(x, training=False)
    np.testing.assert_allclose(layer(x, training=True), inference)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), [1.0, 2.0])  # not updated
    dy = np.ones_like(x)
    scale = np.array([2.0, 0.5]) / np.sqrt(np.array([4.0, 0.25]) + layer.epsilon)
    np.testing.assert_allclose(layer.backward(dy), dy * scale, rtol=1e-6)


# -- model methods ------------------------------------------------------------------------------------
def test_adding_after_training_restores_the_old_last_activation(cpu):
    # The last layer hands logits to the fused loss; once it is no longer last it must apply its
    # softmax again.
    gpucnn.utils.set_random_seed(0)
    model = gpucnn.Sequential([Flatten(input_shape=(6, 6, 1)), Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = data(8)[0]
    model.train_on_batch(x, np.arange(8) % 4)
    model.add(Dense(4, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, np.arange(8) % 4)
    hidden = model.layers[1](x.reshape(8, -1))
    np.testing.assert_allclose(hidden.sum(axis=1), 1.0, rtol=1e-5)


def test_call_with_training_true_runs_dropout(cpu):
    gpucnn.utils.set_random_seed(0)
    model = gpucnn.Sequential([Flatten(input_shape=(6, 6, 1)), Dropout(0.5)])
    x = data(4)[0]
    np.testing.assert_array_equal(model(x), x.reshape(4, -1))
    dropped = model(x, training=True)
    assert (dropped == 0).any() and np.allclose(dropped[dropped != 0], 2 * x.reshape(4, -1)[dropped != 0])


def test_pop_and_get_layer(cpu):
    model = small_model()
    dense = model.get_layer(index=-1)
    assert model.get_layer(name=dense.name) is dense
    assert model.pop() is dense and len(model.layers) == 2
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="index=5.*has 2 layers"):
        model.get_layer(index=5)
    with pytest.raises(ValueError, match="exactly one"):
        model.get_layer()


def test_test_on_batch_and_predict_on_batch(cpu):
    model = small_model()
    x, y = data(6)
    assert model.test_on_batch(x, y) == pytest.approx(model.evaluate(x, y, verbose=0))
    assert model.test_on_batch(x, y, return_dict=True).keys() == {"loss", "accuracy"}
    prediction = model.predict_on_batch(x)
    assert prediction.dtype == np.float32 and prediction.shape == (6, 1)
    np.testing.assert_array_equal(prediction, model.predict(x))


def test_save_weights_and_load_weights(cpu, tmp_path):
    model = small_model()
    model.fit(*data(8), epochs=1, verbose=0)
    model.save_weights(tmp_path / "model.weights.gpucnn")
    other = small_model()
    other.load_weights(tmp_path / "model.weights.gpucnn")
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    wider = gpucnn.Sequential([Conv2D(3, 3, input_shape=(6, 6, 1)), Flatten(), Dense(1)])
    with pytest.raises(ValueError, match=r"weights \[\(3, 3, 1, 2\).*this model has \[\(3, 3, 1, 3\)"):
        wider.load_weights(tmp_path / "model.weights.gpucnn")


def test_set_weights_with_a_bad_shape_changes_nothing(cpu):
    model = small_model()
    weights = model.get_weights()
    bad = [w + 1 for w in weights[:-1]] + [np.zeros((2,))]
    with pytest.raises(ValueError, match=r"dense.*/bias' has shape \(1,\).*shape \(2,\)"):
        model.set_weights(bad)
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_summary_counts_optimizer_variables_after_training(cpu):
    model = small_model(BatchNormalization())
    lines = []
    model.summary(print_fn=lines.append)
    assert " Total params: 61 (244.00 B)" in lines and not any("Optimizer" in l for l in lines)
    model.fit(*data(8), epochs=1, verbose=0)
    lines = []
    model.summary(print_fn=lines.append)
    # Keras: Adam's m and v for the 57 trainable parameters, plus iterations (int64) and learning rate.
    assert lines[-4:] == [" Total params: 177 (712.00 B)", " Trainable params: 57 (228.00 B)",
                          " Non-trainable params: 4 (16.00 B)", " Optimizer params: 116 (468.00 B)"]


# -- metrics ------------------------------------------------------------------------------------------
def test_accuracy_name_is_refused_where_keras_would_compute_another_accuracy(cpu):
    model = gpucnn.Sequential([Flatten(input_shape=(6, 6, 1)), Dense(3, activation="sigmoid")])
    with pytest.raises(ValueError, match=r"categorical \(argmax\).*Fix: metrics=\['binary_accuracy'\]"):
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    assert model.loss is None  # a refused compile leaves the model as it was
    x = data(4)[0]
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    # Known only when the model is built: refused at fit.
    unbuilt = gpucnn.Sequential([Flatten(), Dense(3, activation="sigmoid")])
    unbuilt.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match=r"categorical \(argmax\).*Fix: metrics=\['binary_accuracy'\]"):
        unbuilt.fit(x, labels, verbose=0)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["binary_accuracy"])
    assert set(model.fit(x, labels, verbose=0).history) == {"binary_accuracy", "loss"}


# -- layer and compile arguments Keras accepts ---------------------------------------------------------
def test_keras_argument_forms(cpu):
    conv = Conv2D(np.int64(4), 3, kernel_initializer="GlorotUniform")
    dense = Dense(np.int64(2), input_dim=8)
    assert conv.filters == 4 and dense.units == 2 and dense.input_shape_argument == (8,)
    assert Dense(2, batch_input_shape=(None, 5)).input_shape_argument == (5,)
    assert Input(batch_shape=(None, 6, 6, 1), dtype="float32").shape == (None, 6, 6, 1)
    Flatten(data_format="channels_last")
    model = gpucnn.Sequential([Input((6, 6, 1)), conv, MaxPooling2D(), Flatten(), Dense(1)],
                              trainable=False, name="keras_like")
    assert model.name == "keras_like" and model.trainable_weights == []
    model.compile(optimizer="Adam", loss="BinaryCrossentropy")
    assert model.loss.name == "binary_crossentropy"


def test_keras_arguments_without_an_implementation_are_refused_by_name(cpu):
    model = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x, y = np.ones((4, 2, 2, 1), np.float32), np.array([0, 1, 0, 1], np.float32)
    calls = [
        ("steps_per_epoch", lambda: model.fit(x, y, steps_per_epoch=2, verbose=0)),
        ("weighted_metrics", lambda: model.compile(optimizer="adam", loss="binary_crossentropy",
                                                   weighted_metrics=["accuracy"])),
        ("validation_steps", lambda: model.fit(x, y, validation_steps=1, verbose=0)),
        ("steps", lambda: model.evaluate(x, y, steps=1, verbose=0)),
        ("steps", lambda: model.predict(x, steps=1)),
        ("callbacks", lambda: model.predict(x, callbacks=[gpucnn.callbacks.Callback()])),
    ]
    for name, call in calls:
        with pytest.raises(ValueError, match=f"`{name}` is not implemented.*Fix: leave it at its default"):
            call()


def test_evaluate_calls_the_test_hooks_of_its_callbacks(cpu):
    model = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x, y = np.ones((5, 2, 2, 1), np.float32), np.array([0, 1, 0, 1, 1], np.float32)
    seen = []

    class Recorder(gpucnn.callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen.append(("begin", self.params["steps"]))

        def on_test_batch_end(self, batch, logs=None):
            seen.append(("batch", batch, round(logs["loss"], 6) > 0))

        def on_test_end(self, logs=None):
            seen.append(("end", sorted(logs)))

    loss, accuracy = model.evaluate(x, y, batch_size=2, verbose=0, callbacks=[Recorder()])
    assert seen == [("begin", 3), ("batch", 0, True), ("batch", 1, True), ("batch", 2, True),
                    ("end", ["accuracy", "loss"])]


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
@pytest.mark.parametrize("metrics", [None, ["accuracy"]])
def test_a_categorical_loss_on_one_unit_is_refused_at_compile_with_the_real_problem(cpu, loss, metrics):
    model = gpucnn.Sequential([Flatten(input_shape=(6, 6, 1)), Dense(1, activation="softmax")])
    with pytest.raises(ValueError, match=rf"^Loss '{loss}' on a model with 1 output unit cannot learn.*"
                                         r"Fix: loss='binary_crossentropy'"):
        model.compile(optimizer="adam", loss=loss, metrics=metrics)
