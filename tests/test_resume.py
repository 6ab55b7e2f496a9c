"""A fit killed during epoch k and started again with the same call continues from the last backup and,
on the cpu backend, ends bit-identical to a run that was never interrupted."""
import numpy as np
import pytest

import gpucnn
from gpucnn.callbacks import BackupAndRestore, Callback, LearningRateScheduler
from gpucnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D

EPOCHS = 4
KILLED_EPOCH = 2


class Killed(Exception):
    """Stands for the process dying: nothing after it runs, not even on_train_end."""


class KillDuring(Callback):
    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current_epoch == self.epoch and batch == self.step:
            raise Killed


def data():
    generator = np.random.default_rng(7)
    x = generator.random((40, 8, 8, 1), np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.float32)
    return x, y


def build(seed=3):
    # Every source of randomness a run has: initializers, per-epoch shuffling, Dropout masks; plus the
    # state a resume must carry: Adam moments and step count, BatchNormalization moving averages.
    gpucnn.utils.set_random_seed(seed)
    model = gpucnn.Sequential([Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1)), MaxPooling2D(2),
                               Dropout(0.3), Flatten(), BatchNormalization(), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def fit(model, callbacks):
    x, y = data()
    return model.fit(x, y, batch_size=8, epochs=EPOCHS, verbose=0, validation_split=0.25,
                     callbacks=callbacks)


def halve_each_epoch():
    """A schedule that depends on the current rate: a resume must restore the rate of the backup."""
    return [LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr / 2)]


@pytest.mark.parametrize("same_model", [False, True], ids=["new-process", "same-model-object"])
@pytest.mark.parametrize("schedule", [list, halve_each_epoch], ids=["fixed-rate", "scheduled-rate"])
def test_killed_fit_resumes_bit_identical(cpu, tmp_path, same_model, schedule):
    uninterrupted = build()
    fit(uninterrupted, schedule())
    expected = uninterrupted.get_weights()

    model = build()
    with pytest.raises(Killed):
        fit(model, [BackupAndRestore(tmp_path), KillDuring(KILLED_EPOCH, step=1)] + schedule())
    backup = tmp_path / BackupAndRestore.FILENAME
    assert backup.exists()
    # The kill happened mid-epoch: the interrupted weights are neither the backup's nor the final ones.
    assert not all(np.array_equal(a, b) for a, b in zip(model.get_weights(), expected))

    # A new process would seed and build the model the same way before calling fit again; that draws
    # the initial weights and moves the generator, which the backup must undo.
    resumed = model if same_model else build()
    history = fit(resumed, [BackupAndRestore(tmp_path)] + schedule())

    assert history.epoch == list(range(KILLED_EPOCH, EPOCHS))
    for got, want in zip(resumed.get_weights(), expected):
        assert np.array_equal(got, want)
    assert resumed.optimizer.iterations == uninterrupted.optimizer.iterations
    assert resumed.optimizer.learning_rate == uninterrupted.optimizer.learning_rate
    assert not backup.exists(), "a finished fit deletes its backup"


def test_resume_needs_the_generator_state(cpu, tmp_path):
    """Control: restoring all but the random generator (what load_model gives) does not reproduce the
    run, so the test above really checks that state."""
    uninterrupted = build()
    fit(uninterrupted, [])

    model = build()
    with pytest.raises(Killed):
        fit(model, [BackupAndRestore(tmp_path), KillDuring(KILLED_EPOCH, step=0)])
    restored = gpucnn.load_model(tmp_path / BackupAndRestore.FILENAME)
    gpucnn.utils.set_random_seed(3)
    x, y = data()
    restored.fit(x, y, batch_size=8, epochs=EPOCHS, initial_epoch=KILLED_EPOCH, verbose=0,
                 validation_split=0.25)
    assert not all(np.array_equal(a, b) for a, b in zip(restored.get_weights(), uninterrupted.get_weights()))


def test_backup_of_another_model_is_refused(cpu, tmp_path):
    model = build()
    with pytest.raises(Killed):
        fit(model, [BackupAndRestore(tmp_path), KillDuring(1, step=0)])
    other = gpucnn.Sequential([Flatten(input_shape=(8, 8, 1)), Dense(1, activation="sigmoid")])
    other.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = data()
    with pytest.raises(ValueError, match=r"backup.*different|same model|delete the backup"):
        other.fit(x, y, epochs=2, verbose=0, callbacks=[BackupAndRestore(tmp_path)])


def train_once(seed, x, y, width, epochs, batch_size):
    gpucnn.utils.set_random_seed(seed)
    model = gpucnn.Sequential([Conv2D(width, 3, activation="relu", input_shape=x.shape[1:]), MaxPooling2D(2),
                               Conv2D(width, 3, activation="relu"), MaxPooling2D(2), Dropout(0.25),
                               Flatten(), BatchNormalization(), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, validation_split=0.2)
    return model.get_weights()


def assert_runs_identical(first, second):
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_same_seed_is_bit_reproducible_on_cpu(cpu):
    x = np.random.default_rng(5).random((20, 12, 12, 1), np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.float32)
    first = train_once(11, x, y, width=4, epochs=2, batch_size=4)
    assert_runs_identical(first, train_once(11, x, y, width=4, epochs=2, batch_size=4))
    # Control: another seed trains to other weights.
    assert not np.array_equal(first[0], train_once(12, x, y, width=4, epochs=2, batch_size=4)[0])


@pytest.mark.gpu
def test_same_seed_is_bit_reproducible_on_cuda(gpu):
    """No float atomics in any reduction: two runs of realistic size give bit-identical weights."""
    x = np.random.default_rng(5).random((512, 64, 64, 1), np.float32)
    y = (x[:, :32].mean(axis=(1, 2, 3)) > x[:, 32:].mean(axis=(1, 2, 3))).astype(np.float32)
    first = train_once(11, x, y, width=64, epochs=2, batch_size=32)
    assert_runs_identical(first, train_once(11, x, y, width=64, epochs=2, batch_size=32))
