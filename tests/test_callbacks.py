"""EarlyStopping, ModelCheckpoint, TerminateOnNaN (on by default in fit), BackupAndRestore's handling
of a stopped epoch and the learning-rate callbacks, on the cpu backend.  Monitored values are injected by a
scripted callback so every expected epoch below follows from the Keras rules by hand."""
import io
import math
import re
import warnings

import numpy as np
import pytest

import gpucnn
from gpucnn import optimizers, saving, step_runners
from gpucnn.callbacks import (
    BackupAndRestore,
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from gpucnn.layers import Conv2D, Dense, Flatten


def small_model():
    gpucnn.utils.set_random_seed(0)
    model = gpucnn.Sequential([Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)), Flatten(),
                               Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def data(n=32):
    generator = np.random.default_rng(1)
    x = generator.random((n, 6, 6, 1), np.float32)
    return x, (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.float32)


class Script(Callback):
    """Writes ``scores[epoch]`` into the logs as 'score' and records the weights at each epoch end."""

    def __init__(self, scores):
        self.scores = scores
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]
        self.weights.append(self.model.get_weights())


def fit(model, callbacks, epochs, **kwargs):
    x, y = data()
    return model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=callbacks, **kwargs)


def assert_weights_equal(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


# -- EarlyStopping -------------------------------------------------------------------------------------
@pytest.mark.parametrize("scores, kwargs, stopped, best", [
    # min: best 4 at epoch 1; epochs 2 and 3 do not improve, patience 2 stops at epoch 3.
    ([5, 4, 4.5, 4.2, 3, 2], dict(mode="min", patience=2), 3, 1),
    # min_delta 0.5: 4.6 is not 0.5 better than 5, so 5 (epoch 0) stays best and epoch 2 stops.
    ([5, 4.6, 4.7, 1, 1, 1], dict(mode="min", patience=2, min_delta=0.5), 2, 0),
    # patience 0 stops at the first epoch without improvement.
    ([1, 2, 3, 2, 1, 0], dict(mode="max", patience=0), 3, 2),
    # never stops while improving (Keras reports stopped_epoch 0 then).
    ([6, 5, 4, 3, 2, 1], dict(mode="min", patience=1), 0, 5),
    # runs to the end without stopping; the best epoch (1) is still restored at the end (Keras 3).
    ([5, 2, 4, 3, 4, 3], dict(mode="min", patience=5), 0, 1),
    # start_from_epoch 2: epochs 0-1 are not monitored, so 9 at epoch 2 is the first best.
    ([1, 0, 9, 9.5, 9.5, 0], dict(mode="min", patience=2, start_from_epoch=2), 4, 2),
    # baseline 3: the improvement at epoch 0 stays above it, so it does not reset patience and the
    # worse epoch 1 already stops (without a baseline it would go on).
    ([5, 6, 4, 1, 1, 1], dict(mode="min", patience=2, baseline=3), 1, 0),
])
def test_early_stopping_epochs_and_restore_best_weights(cpu, scores, kwargs, stopped, best):
    model = small_model()
    script = Script(scores)
    stopper = EarlyStopping(monitor="score", restore_best_weights=True, **kwargs)
    history = fit(model, [script, stopper], epochs=len(scores))
    assert stopper.stopped_epoch == stopped
    assert history.epoch == list(range(len(scores) if stopped == 0 else stopped + 1))
    assert stopper.best_epoch == best and stopper.best == scores[best]
    # Keras 3 puts back the best epoch's weights when training ends, stopped early or not.
    assert_weights_equal(model.get_weights(), script.weights[best])


def test_early_stopping_verbose_prints_keras_messages(cpu, capsys):
    stopper = EarlyStopping(monitor="score", mode="min", patience=0, verbose=1,
                            restore_best_weights=True)
    fit(small_model(), [Script([2, 3, 1]), stopper], epochs=3)
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "Epoch 2: early stopping", "Restoring model weights from the end of the best epoch: 1."]


def test_early_stopping_auto_mode_maximizes_accuracy(cpu):
    assert EarlyStopping(monitor="val_accuracy")._monitor.mode == "max"
    assert EarlyStopping(monitor="val_loss")._monitor.mode == "min"


def test_early_stopping_unknown_monitor_names_available_keys(cpu):
    with pytest.raises(ValueError, match=r"monitor='val_loss'.*\['accuracy', 'loss'\].*validation"):
        fit(small_model(), [EarlyStopping()], epochs=2)


# -- ModelCheckpoint -----------------------------------------------------------------------------------
def test_model_checkpoint_formats_epoch_and_saves_every_epoch(cpu, tmp_path):
    model = small_model()
    script = Script([0.1, 0.2, 0.3])
    fit(model, [script, ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{score:.1f}.gpucnn"),
                                         monitor="score")], epochs=3)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["m-01-0.1.gpucnn", "m-02-0.2.gpucnn", "m-03-0.3.gpucnn"]
    assert_weights_equal(gpucnn.load_model(tmp_path / "m-02-0.2.gpucnn").get_weights(), script.weights[1])


def test_model_checkpoint_save_best_only(cpu, tmp_path):
    model = small_model()
    script = Script([0.5, 0.7, 0.6, 0.9, 0.8])
    checkpoint = ModelCheckpoint(tmp_path / "best-{epoch}.gpucnn", monitor="score", mode="max",
                                 save_best_only=True)
    fit(model, [script, checkpoint], epochs=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-1.gpucnn", "best-2.gpucnn", "best-4.gpucnn"]
    assert checkpoint.best == 0.9
    assert_weights_equal(gpucnn.load_model(tmp_path / "best-4.gpucnn").get_weights(), script.weights[3])


def test_model_checkpoint_bad_field_names_the_filepath(cpu, tmp_path):
    with pytest.raises(ValueError, match=r"filepath=.*\{val_acc\}.*available fields"):
        fit(small_model(), [ModelCheckpoint(str(tmp_path / "m-{val_acc}.gpucnn"), monitor="loss")],
            epochs=1)


# -- TerminateOnNaN ------------------------------------------------------------------------------------
class Poison(Callback):
    """After step ``step`` of epoch ``epoch`` turns one weight into NaN, so the next step's loss is NaN;
    records the weights just before."""

    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step
        self.steps_run = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.steps_run += 1
        if (self.current_epoch, batch) == (self.epoch, self.step):
            self.before = self.model.get_weights()
            self.model.layers[-1].kernel.value[0, 0] = np.nan


def test_nan_guard_is_on_by_default_and_keeps_the_last_good_weights(cpu):
    model = small_model()
    poison = Poison(epoch=1, step=1)
    with pytest.warns(RuntimeWarning, match=r"loss became nan at epoch 2, step 3\b.*lower the learning rate"):
        history = fit(model, [poison], epochs=4)
    assert poison.steps_run == 4 + 3, "training stops at the first NaN step"
    assert_weights_equal(model.get_weights(), poison.before)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert history.epoch == [0, 1] and math.isnan(history.history["loss"][-1])


def test_nan_guard_with_check_interval_goes_back_to_the_last_check(cpu):
    """The cuda backend checks every few steps; emulate that with check_interval=3: NaN from step 5
    (1-based) is found at the check after step 6 and the weights go back to those after step 3."""
    model = small_model()

    class Record(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.after_step_3 = self.model.get_weights()

    record = Record()
    x, y = data(48)
    with pytest.warns(RuntimeWarning, match=r"epoch 1, step 5\b.*epoch 1, step 3\)"):
        model.fit(x, y, batch_size=6, epochs=3, verbose=0,
                  callbacks=[TerminateOnNaN(check_interval=3), record, Poison(epoch=0, step=3)])
    assert_weights_equal(model.get_weights(), record.after_step_3)


def test_nan_stopped_epoch_is_not_backed_up(cpu, tmp_path):
    model = small_model()
    with pytest.warns(RuntimeWarning, match="loss became nan"):
        fit(model, [BackupAndRestore(tmp_path, delete_checkpoint=False), Poison(epoch=2, step=0)], epochs=5)
    assert saving.restore_training_state(small_model(), tmp_path / BackupAndRestore.FILENAME) == 2


def test_finite_training_gives_no_warning(cpu):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # TerminateOnNaN-style loss warnings
        history = fit(small_model(), [], epochs=2)
    assert all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("make, match", [
    (lambda: EarlyStopping(patience=-1), r"`patience`.*-1"),
    (lambda: EarlyStopping(mode="best"), r"`mode`.*'best'"),
    (lambda: EarlyStopping(min_delta=-0.1), r"`min_delta`.*-0.1"),
    (lambda: ModelCheckpoint(None), r"`filepath`.*None"),
    (lambda: BackupAndRestore(""), r"`backup_dir`.*''"),
    (lambda: TerminateOnNaN(check_interval=0), r"`check_interval`.*0"),
    (lambda: ReduceLROnPlateau(factor=1.0), r"ReduceLROnPlateau.*`factor`.*1.0"),
    (lambda: ReduceLROnPlateau(cooldown=-2), r"`cooldown`.*-2"),
    (lambda: ReduceLROnPlateau(min_lr=-1e-3), r"`min_lr`.*-0.001"),
    (lambda: LearningRateScheduler(0.01), r"`schedule`.*0.01"),
])
def test_callback_argument_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


# -- learning-rate callbacks ----------------------------------------------------------------------------
def test_reduce_lr_on_plateau_follows_keras_rules_and_graphs_recapture(cpu, monkeypatch):
    runners = []
    make = step_runners.make_step_runner
    monkeypatch.setattr(step_runners, "make_step_runner", lambda *a: runners.append(make(*a)) or runners[-1])
    results = []
    for jit_graph in (False, True):
        model = small_model()
        model.compile(optimizer=optimizers.SGD(learning_rate=0.8), loss="binary_crossentropy",
                      jit_graph=jit_graph)
        reduce = ReduceLROnPlateau(monitor="score", mode="min", min_delta=0, factor=0.5, patience=2,
                                   cooldown=1, min_lr=0.15)
        history = fit(model, [Script([5, 4, 4, 4, 4, 4, 3, 3, 3]), reduce], epochs=9)
        results.append((history.history["learning_rate"], model.get_weights()))
        # Each epoch logs the rate it trained with; reductions at the ends of epochs 4, 6 and 9 (the
        # last one stops at min_lr).  Epoch 5 counts again after one cooldown epoch.
        assert history.history["learning_rate"] == [0.8, 0.8, 0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.2]
        assert model.optimizer.learning_rate == 0.15
    assert_weights_equal(results[1][1], results[0][1])
    # The graph runner captured the step once per learning rate it trained with.
    assert type(runners[1]) is step_runners.GraphStep and runners[1].captures == 3


def test_reduce_lr_on_plateau_prints_and_names_a_missing_monitor(cpu, capsys):
    model = small_model()
    fit(model, [Script([1, 1, 1]), ReduceLROnPlateau(monitor="score", patience=1, verbose=1)], epochs=3)
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.0001." in capsys.readouterr().out
    with pytest.raises(ValueError, match="ReduceLROnPlateau.*`monitor='val_loss'`.*validation"):
        fit(small_model(), [ReduceLROnPlateau()], epochs=1)


def test_learning_rate_scheduler_sets_each_epochs_rate(cpu, capsys):
    model = small_model()
    schedule = LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr / 2, verbose=1)
    history = fit(model, [schedule], epochs=3)
    assert history.history["learning_rate"] == [0.001, 0.0005, 0.00025]
    assert "Epoch 3: LearningRateScheduler setting learning rate to 0.00025." in capsys.readouterr().out
    # A schedule of the epoch alone works too (Keras' older signature), NumPy floats included.
    history = fit(model, [LearningRateScheduler(lambda epoch: np.float32(0.01 * (epoch + 1)))], epochs=2)
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.02])


@pytest.mark.parametrize("rate", [-0.1, "fast", None])
def test_a_bad_scheduled_rate_is_refused_with_the_callback_named(cpu, rate):
    model = small_model()
    with pytest.raises(ValueError, match=f"LearningRateScheduler.*`learning_rate`.*{rate!r}"):
        fit(model, [LearningRateScheduler(lambda epoch, lr: rate)], epochs=1)
    with pytest.raises(ValueError, match="`learning_rate` must be a float > 0"):
        model.optimizer.learning_rate = rate


def test_progress_bar_redraws_on_a_terminal_and_ends_with_the_final_line():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = ProgressBar(3, verbose=1, interval=0, stream=stream)
    bar.start()
    bar.update(1, {"loss": 0.5})
    bar.update(3, {"loss": 0.25})  # the last step is drawn by finish only
    bar.finish({"loss": 0.25})
    first, last = stream.getvalue().split("\033[K")[:2]
    assert re.fullmatch(r"\r1/3 ━{6} {14} \d+s - loss: 0\.5000", first)
    assert re.fullmatch(r"\r3/3 ━{20} \d+s \d+(s|ms|us)/step - loss: 0\.2500", last)
    assert stream.getvalue().endswith("\033[K\n")
