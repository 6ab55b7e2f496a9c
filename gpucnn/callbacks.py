"""Training callbacks (Keras hooks): History, the progress bar, and the base class for your own."""
import sys
import time


class Callback:
    """Override any of the hooks.  ``self.model`` is set before training starts."""

    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        """``logs`` is a :class:`RunningLogs`: reading a value from it waits for the device."""


class CallbackList:
    def __init__(self, callbacks, model):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)

    def __getattr__(self, hook):
        def call_all(*args, **kwargs):
            for callback in self.callbacks:
                getattr(callback, hook)(*args, **kwargs)
        return call_all


class History(Callback):
    """Records the epoch logs: ``history.history['loss']`` etc., ``history.epoch``."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class RunningLogs:
    """Running means of the loss and accuracy of an epoch, kept on the device.  ``result()`` reads them
    back to the host: that is the only synchronisation of a training loop, done once per epoch and when
    the progress bar redraws."""

    def __init__(self, xp, metric_names):
        self.xp = xp
        self.metric_names = metric_names
        self.loss_sum = xp.zeros((), xp.float64)
        self.correct_sum = xp.zeros((), xp.float64)
        self.samples = 0
        self.elements = 0

    def add(self, loss, correct, samples, elements):
        self.loss_sum += loss * samples
        self.correct_sum += correct
        self.samples += samples
        self.elements += elements

    def result(self, prefix=""):
        logs = {}
        if self.samples:
            for name in self.metric_names:
                logs[prefix + name] = float(self.correct_sum) / self.elements
            logs[prefix + "loss"] = float(self.loss_sum) / self.samples
        return logs


def _format_seconds(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{max(int(round(seconds)), 0)}s"


def _format_logs(logs):
    return "".join(f" - {key}: {value:.4f}" for key, value in logs.items())


class ProgressBar(Callback):
    """Keras-style progress output.  verbose=1: a bar per epoch with step count, ETA and running loss /
    accuracy, redrawn at most every ``interval`` seconds on a terminal (each redraw reads the running
    values from the device); on a pipe or file only the final line of each epoch is written.
    verbose=2: one line per epoch."""

    def __init__(self, steps, epochs, verbose=1, interval=0.5, stream=None):
        self.steps = steps
        self.epochs = epochs
        self.verbose = verbose
        self.interval = interval
        self.stream = stream or sys.stdout
        self.interactive = self.verbose == 1 and getattr(self.stream, "isatty", lambda: False)()

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last_draw = time.perf_counter()
        self._write(f"Epoch {epoch + 1}/{self.epochs}\n")

    def _bar(self, step):
        width = 20
        done = width * step // max(self.steps, 1)
        return "━" * done + " " * (width - done) if step < self.steps else "━" * width

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if not self.interactive or now - self._last_draw < self.interval or batch + 1 == self.steps:
            return
        self._last_draw = now
        step = batch + 1
        eta = (now - self._start) / step * (self.steps - step)
        self._write(f"\r{step}/{self.steps} {self._bar(step)} {_format_seconds(eta)}"
                    f"{_format_logs(logs.result())}\033[K")

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._start
        per_step = elapsed / max(self.steps, 1)
        unit = f"{per_step * 1000:.0f}ms/step" if per_step < 1 else f"{per_step:.1f}s/step"
        line = (f"{self.steps}/{self.steps} {self._bar(self.steps)} {_format_seconds(elapsed)} "
                f"{unit}{_format_logs(logs or {})}")
        self._write(f"\r{line}\033[K\n" if self.interactive else line + "\n")
