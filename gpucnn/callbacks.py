"""Training callbacks (Keras hooks): History, the progress bar, EarlyStopping, ModelCheckpoint,
BackupAndRestore, TerminateOnNaN, LearningRateScheduler, ReduceLROnPlateau, and the base class for
your own."""
import collections.abc
import math
import os
import sys
import time
import warnings

import numpy as np

from gpucnn import backend, saving


class Callback:
    """Override any of the hooks.  ``self.model`` is set before training starts, ``self.params`` (a dict
    with ``verbose``, ``epochs``, ``steps``) by ``fit``.  As in Keras, ``on_batch_begin`` /
    ``on_batch_end`` are the training-batch hooks under their older names, and ``on_test_*`` hooks run
    around the validation pass at each epoch end."""

    model = None
    params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """``logs`` is a :class:`RunningLogs` (a read-only dict of the running means): reading a value
        from it waits for the device."""
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass


class CallbackList:
    def __init__(self, callbacks, model, params=None):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)
            if params is not None:
                callback.set_params(params)

    def __getattr__(self, hook):
        def call_all(*args, **kwargs):
            for callback in self.callbacks:
                getattr(callback, hook)(*args, **kwargs)
        return call_all


class History(Callback):
    """Records the epoch logs: ``history.history['loss']`` etc., ``history.epoch``, ``history.params``;
    ``fit`` returns it and, as in Keras, also leaves it on the model as ``model.history``."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self


class RunningLogs(collections.abc.Mapping):
    """Running means of the loss and accuracy of an epoch, kept on the device.  ``result()`` reads them
    back to the host: that is the only synchronisation of a training loop, done once per epoch and when
    the progress bar redraws.  It is also the read-only ``logs`` dict batch-end callbacks receive, as in
    Keras (``logs['loss']``): only a callback that reads it pays for the synchronisation."""

    def __init__(self, xp, metric_names):
        self.xp = xp
        self.metric_names = metric_names
        self.loss_sum = xp.zeros((), xp.float64)
        self.correct_sum = xp.zeros((), xp.float64)
        self.samples = 0
        self.predictions = 0

    def add(self, loss, correct, samples, predictions):
        """One batch: its mean ``loss`` over ``samples`` samples and ``correct`` right out of
        ``predictions`` (``Loss.accuracy_count``: samples, or output units for binary accuracy)."""
        self.last_loss = loss
        self.loss_sum += loss * samples
        self.correct_sum += correct
        self.samples += samples
        self.predictions += predictions

    def result(self, prefix=""):
        logs = {}
        if self.samples:
            for name in self.metric_names:
                logs[prefix + name] = float(self.correct_sum) / self.predictions
            logs[prefix + "loss"] = float(self.loss_sum) / self.samples
        return logs

    def __getitem__(self, key):
        return self.result()[key]

    def __iter__(self):
        return iter(self.result())

    def __len__(self):
        return len(self.result())


def _format_seconds(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{max(int(round(seconds)), 0)}s"


def _format_logs(logs):
    """Keras' progress-bar numbers: 4 decimals, or scientific notation for values below 1e-3 (so a
    small loss does not print as 0.0000)."""
    return "".join(f" - {key}: {value:.4f}" if abs(value) > 1e-3 else f" - {key}: {value:.4e}"
                   for key, value in logs.items())


def _format_step_time(seconds):
    """Keras' time per step: whole seconds, milliseconds or microseconds."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class ProgressBar(Callback):
    """Keras-style progress output of ``fit``, with Keras' "Epoch i/n" header when there is more than
    one epoch.  verbose=1: a bar per epoch with step count, ETA and running loss / accuracy, redrawn at
    most every ``interval`` seconds on a terminal (each redraw reads the running values from the
    device); on a pipe or file only the final line of each epoch is written (``32/32 ━━━━ 1s 25ms/step
    - accuracy: ... - loss: ...``).  verbose=2: one line per epoch, without a bar (``32/32 - 1s -
    25ms/step - accuracy: ... - loss: ...``).  ``start`` / ``update`` / ``finish`` draw one pass;
    :class:`EvaluationProgressBar` and ``predict`` use them for theirs."""

    def __init__(self, steps, epochs=1, verbose=1, interval=0.5, stream=None):
        self.steps = steps
        self.epochs = epochs
        self.verbose = verbose
        self.interval = interval
        self.stream = stream or sys.stdout
        self.interactive = self.verbose == 1 and getattr(self.stream, "isatty", lambda: False)()

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()

    def _bar(self, step):
        width = 20
        done = width * step // max(self.steps, 1)
        return "━" * done + " " * (width - done) if step < self.steps else "━" * width

    def start(self):
        """A pass of ``steps`` steps begins now."""
        self._start = self._last_draw = time.perf_counter()

    def update(self, step, logs):
        """``step`` steps of the pass are done; on a terminal, redraw the bar with the running
        ``logs`` (a dict, or :class:`RunningLogs`, read only when drawing) at most every
        ``interval`` seconds."""
        now = time.perf_counter()
        if not self.interactive or now - self._last_draw < self.interval or step == self.steps:
            return
        self._last_draw = now
        eta = (now - self._start) / step * (self.steps - step)
        values = logs.result() if isinstance(logs, RunningLogs) else logs
        self._write(f"\r{step}/{self.steps} {self._bar(step)} {_format_seconds(eta)}"
                    f"{_format_logs(values)}\033[K")

    def finish(self, logs):
        """The pass is done: its final line, with the time per step and the final ``logs``."""
        elapsed = time.perf_counter() - self._start
        per_step = _format_step_time(elapsed / max(self.steps, 1))
        if self.verbose == 2:
            self._write(f"{self.steps}/{self.steps} - {elapsed:.0f}s - {per_step}"
                        f"{_format_logs(logs or {})}\n")
            return
        line = (f"{self.steps}/{self.steps} {self._bar(self.steps)} {_format_seconds(elapsed)} "
                f"{per_step}{_format_logs(logs or {})}")
        self._write(f"\r{line}\033[K\n" if self.interactive else line + "\n")

    def on_epoch_begin(self, epoch, logs=None):
        if self.epochs > 1:
            self._write(f"Epoch {epoch + 1}/{self.epochs}\n")
        self.start()

    def on_train_batch_end(self, batch, logs=None):
        self.update(batch + 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.finish(logs)


class EvaluationProgressBar(Callback):
    """``evaluate``'s progress output, from the test hooks: its one pass drawn as ``fit`` draws an
    epoch (:class:`ProgressBar`, same arguments)."""

    def __init__(self, steps, verbose=1, interval=0.5, stream=None):
        self.bar = ProgressBar(steps, 1, verbose, interval, stream)

    def on_test_begin(self, logs=None):
        self.bar.start()

    def on_test_batch_end(self, batch, logs=None):
        self.bar.update(batch + 1, logs)

    def on_test_end(self, logs=None):
        self.bar.finish(logs)


# -- monitoring a logged quantity (EarlyStopping, ModelCheckpoint) -------------------------------------
class _Monitor:
    """Tracks the best value of ``logs[monitor]``; ``mode`` 'auto' maximizes accuracies and minimizes
    the rest, as Keras does."""

    def __init__(self, owner, monitor, mode, min_delta=0.0):
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"{owner}: argument `monitor` must be the name of a logged quantity such as "
                             f"'val_loss' or 'accuracy', got {monitor!r}.")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner}: argument `mode` must be 'auto', 'min' or 'max', got {mode!r}.")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ValueError(f"{owner}: argument `min_delta` must be a float >= 0, got {min_delta!r}.")
        self.owner = owner
        self.monitor = monitor
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.mode = mode
        self.min_delta = float(min_delta)
        self.reset()

    def reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf

    def value(self, logs):
        if self.monitor not in (logs or {}):
            raise ValueError(f"{self.owner}: argument `monitor={self.monitor!r}` is not among the logged "
                             f"quantities {sorted(logs or {})}. Fix: monitor one of those (val_* ones "
                             f"need validation_data or validation_split in fit, accuracy needs "
                             f"metrics=['accuracy'] in compile).")
        return logs[self.monitor]

    def improves(self, value, reference=None):
        """Whether ``value`` beats ``reference`` (default: the best so far) by more than ``min_delta``
        (NaN never does)."""
        reference = self.best if reference is None else reference
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs, with Keras 3's rules: epochs before ``start_from_epoch`` are not monitored; with a
    ``baseline`` the patience counter only restarts on epochs that also beat the baseline; and
    ``restore_best_weights=True`` puts back the weights of the best epoch when training ends (whether
    this callback stopped it or the last epoch was reached)."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        self._monitor = _Monitor("EarlyStopping", monitor, mode, min_delta)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: argument `patience` must be an int >= 0 (epochs without "
                             f"improvement before stopping), got {patience!r}.")
        if baseline is not None and (isinstance(baseline, bool) or not isinstance(baseline, (int, float))):
            raise ValueError(f"EarlyStopping: argument `baseline` must be a number or None, got "
                             f"{baseline!r}.")
        if isinstance(start_from_epoch, bool) or not isinstance(start_from_epoch, int) \
                or start_from_epoch < 0:
            raise ValueError(f"EarlyStopping: argument `start_from_epoch` must be an int >= 0 (epochs "
                             f"to wait before monitoring), got {start_from_epoch!r}.")
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs=None):
        self._monitor.reset()
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitor.value(logs)
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._monitor.improves(current):
            self._monitor.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._monitor.improves(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    @property
    def best(self):
        return self._monitor.best


class ModelCheckpoint(Callback):
    """Saves the model (or only its weights, ``save_weights_only=True``) after each epoch to
    ``filepath``, which may hold Keras-style fields such as ``'model-{epoch:02d}-{val_loss:.3f}.gpucnn'``
    (epochs count from 1).  With ``save_best_only`` only when ``monitor`` improves on the best so far
    (which starts at ``initial_value_threshold`` when given).  The suffix chooses the format, as in
    Keras: ``.keras`` (or ``.weights.h5`` with ``save_weights_only``) writes Keras' format.  Each save is
    atomic (see ``gpucnn.saving``)."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        if isinstance(filepath, bool) or not isinstance(filepath, (str, os.PathLike)) or not str(filepath):
            raise TypeError(f"ModelCheckpoint: argument `filepath` must be a file path such as "
                            f"'model-{{epoch:02d}}.gpucnn', got {filepath!r}.")
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint: argument `save_freq` must be 'epoch' (saving every N "
                             f"batches is not implemented), got {save_freq!r}.")
        if initial_value_threshold is not None and (isinstance(initial_value_threshold, bool) or
                                                    not isinstance(initial_value_threshold, (int, float))):
            raise ValueError(f"ModelCheckpoint: argument `initial_value_threshold` must be a number or "
                             f"None, got {initial_value_threshold!r}.")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.initial_value_threshold = initial_value_threshold
        self._monitor = _Monitor("ModelCheckpoint", monitor, mode)

    def on_train_begin(self, logs=None):
        self._monitor.reset()
        if self.initial_value_threshold is not None:
            self._monitor.best = float(self.initial_value_threshold)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = self._monitor.value(logs)
            if not self._monitor.improves(current):
                return
            self._monitor.best = current
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"ModelCheckpoint: argument `filepath={self.filepath!r}` cannot be "
                             f"formatted ({error!r}); available fields: epoch and {sorted(logs)}. Fix: "
                             f"use only those names, e.g. 'model-{{epoch:02d}}.gpucnn'.") from None
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)  # as Keras: the folder may not exist before the first save
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved model to {path}")

    @property
    def best(self):
        return self._monitor.best


# -- learning-rate schedules -------------------------------------------------------------------------
def _set_learning_rate(model, owner, value):
    """Set the optimizer's learning rate (a CUDA-graph step runner captures the step anew on its next
    batch: it compares the optimizer's settings before each replay)."""
    try:
        model.optimizer.learning_rate = value
    except ValueError as error:
        raise ValueError(f"{owner}: the new learning rate is refused. {error}") from None
    return model.optimizer.learning_rate


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate at the start of each epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``), epochs counting from 0, as Keras does; the rate is logged as
    ``learning_rate``."""

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: argument `schedule` must be a function "
                            f"schedule(epoch, lr) -> new lr, got {schedule!r}.")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.model.optimizer.learning_rate
        try:
            lr = self.schedule(epoch, lr)
        except TypeError:  # a schedule of the epoch alone (Keras' old signature)
            lr = self.schedule(epoch)
        lr = _set_learning_rate(self.model, "LearningRateScheduler", lr)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` (never below ``min_lr``) when ``monitor`` has not
    improved by more than ``min_delta`` for ``patience`` epochs, then waits ``cooldown`` epochs before
    counting again: Keras 3's rules and defaults.  The rate is logged as ``learning_rate``."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        self._monitor = _Monitor("ReduceLROnPlateau", monitor, mode, min_delta)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: argument `factor` must be a float in (0, 1) (the "
                             f"learning rate is multiplied by it), got {factor!r}.")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ReduceLROnPlateau: argument `{name}` must be an int >= 0 (epochs), "
                                 f"got {value!r}.")
        if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) or min_lr < 0:
            raise ValueError(f"ReduceLROnPlateau: argument `min_lr` must be a float >= 0, got {min_lr!r}.")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = float(min_lr)

    def on_train_begin(self, logs=None):
        self._monitor.reset()
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = self.model.optimizer.learning_rate
        current = self._monitor.value(logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._monitor.improves(current):
            self._monitor.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        old_lr = self.model.optimizer.learning_rate
        # Compared in float32, as Keras reads its float32 variable: a rate already at min_lr stays.
        if self.wait >= self.patience and np.float32(old_lr) > np.float32(self.min_lr):
            new_lr = _set_learning_rate(self.model, "ReduceLROnPlateau",
                                        max(old_lr * self.factor, self.min_lr))
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
            self.cooldown_counter = self.cooldown
            self.wait = 0

    @property
    def best(self):
        return self._monitor.best


class BackupAndRestore(Callback):
    """Makes a killed ``fit`` resumable: after every epoch the model, optimizer state, epoch count and
    random-generator state go to ``backup_dir`` (atomically); a later ``fit`` call with this callback
    starts from there, and on the cpu backend ends bit-identical to a run that was never interrupted.
    The backup is deleted when training ends normally (``delete_checkpoint=True``)."""

    FILENAME = "backup.gpucnn"

    def __init__(self, backup_dir, delete_checkpoint=True):
        if isinstance(backup_dir, bool) or not isinstance(backup_dir, (str, os.PathLike)) \
                or not str(backup_dir):
            raise TypeError(f"BackupAndRestore: argument `backup_dir` must be a directory path, got "
                            f"{backup_dir!r}. Fix: pass e.g. 'backup/' (it is created if needed).")
        self.backup_dir = os.fspath(backup_dir)
        self.delete_checkpoint = bool(delete_checkpoint)
        self.path = os.path.join(self.backup_dir, self.FILENAME)

    def on_train_begin(self, logs=None):
        if os.path.exists(self.path):
            self.model.set_initial_epoch(saving.restore_training_state(self.model, self.path))

    def on_epoch_end(self, epoch, logs=None):
        # An epoch stopped by TerminateOnNaN ends with a non-finite loss: never back that up.
        if not math.isfinite((logs or {}).get("loss", 0.0)):
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        saving.save_model(self.model, self.path, epoch=epoch + 1)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.path):
            os.remove(self.path)


class TerminateOnNaN(Callback):
    """Stops training at the first NaN/Inf loss and puts back the last weights known to be good (those
    after the last step checked finite), with a warning that names the epoch and step.

    ``fit`` adds one by default.  Each check reads the step losses back from the device: on host
    backends (cpu, emulated) that is free and done every step; on cuda it waits for the GPU, so it is
    done every ``check_interval`` steps (default 32) and at each epoch end, and the weights go back to
    the last check."""

    def __init__(self, check_interval=None):
        if check_interval is not None and (isinstance(check_interval, bool) or
                                           not isinstance(check_interval, int) or check_interval <= 0):
            raise ValueError(f"TerminateOnNaN: argument `check_interval` must be a positive int (steps "
                             f"between checks) or None for automatic, got {check_interval!r}.")
        self.check_interval = check_interval

    def on_train_begin(self, logs=None):
        host = backend.current().xp is np
        self._interval = self.check_interval or (1 if host else 32)
        self._good = None  # snapshot taken at the first epoch start, after any BackupAndRestore

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._losses = []
        self._checked = 0
        if self._good is None:
            self._snapshot("before training")

    def on_train_batch_end(self, batch, logs=None):
        # A copy: a step runner that replays a CUDA graph rewrites the same loss buffer every step.
        self._losses.append(logs.last_loss.copy())
        if len(self._losses) - self._checked >= self._interval:
            self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()

    def _snapshot(self, when):
        self._good = self.model.get_training_state()
        self._good_when = when

    def _restore(self):
        self.model.set_training_state(self._good)

    def _check(self):
        pending = self._losses[self._checked:]
        if not pending:
            return
        xp = backend.current().xp
        finite = backend.current().to_numpy(xp.isfinite(xp.stack([xp.asarray(l) for l in pending])))
        first = self._checked
        self._checked = len(self._losses)
        if finite.all():
            self._snapshot(f"epoch {self._epoch + 1}, step {self._checked}")
            return
        bad_step = first + int(np.argmin(finite))
        bad_value = float(backend.current().to_numpy(pending[bad_step - first]))
        self._restore()
        self.model.stop_training = True
        warnings.warn(
            f"Training stopped: the loss became {bad_value} at epoch {self._epoch + 1}, step "
            f"{bad_step + 1}. The weights were restored to the last good ones ({self._good_when}). "
            f"Fix: lower the learning rate (e.g. optimizer=gpucnn.optimizers.Adam(learning_rate=1e-4)), "
            f"scale the inputs (e.g. x / 255), or check the data for extreme values.",
            RuntimeWarning, stacklevel=2)
