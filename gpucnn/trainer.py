"""Training and inference of any :class:`gpucnn.models.Model`: compile, fit, evaluate, predict, the
``*_on_batch`` methods and the training step, as Keras 3's ``Trainer`` (which ``Model`` inherits).

Training keeps every tensor on the backend (the GPU for ``cuda``): the data is copied there once per
``fit`` call (:mod:`gpucnn.data`), batches are gathered there, all trainable parameters and their
gradients live in two flat buffers (:class:`FlatParameters`; layers hold views into them) so the
optimizer is a single op, and loss / accuracy are accumulated there and read back once per epoch or
progress-bar redraw.  Each step runs through a step runner (:mod:`gpucnn.step_runners`: eager, or a
replayed CUDA graph).  A model compiled with ``matmul_precision`` / ``autotune`` runs its fit, evaluate,
predict, ``*_on_batch`` and profile under those settings (:meth:`Trainer.compiled_settings`).

The trainer drives the model only through what every model provides: ``layers``, ``output_layer``,
``build()``, ``forward(x, training)`` / ``backward(dy)`` over its execution plan, ``call(x, training)``,
the weights, ``name`` and ``output_shape``.
"""
import contextlib
import functools
import math

import numpy as np

from gpucnn import backend, config, data, losses, optimizers, profiler, step_runners, utils
from gpucnn import callbacks as callbacks_module
from gpucnn.contract.precision import check_op_precision


def _under_compiled_settings(method):
    """``method`` of a Trainer runs inside :meth:`Trainer.compiled_settings`."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self.compiled_settings():
            return method(self, *args, **kwargs)
    return run


class FlatParameters:
    """Every trainable weight of a model in one flat buffer (``values``) and their gradients in a twin
    (``grads``), so the optimizer updates the whole model in one op.  Packing moves each weight's value
    into the buffer; the weights keep views into both buffers.

    A layer used by several models (as in Keras, they share its weights) lives in the buffer of the
    model that trained it last: packing takes each weight's current value from wherever it is, and
    :meth:`holds` tells a model whose buffer no longer holds a weight to pack again."""

    def __init__(self, weights):
        xp = backend.current().xp
        self.weights = _distinct(weights)
        self.size = sum(int(np.prod(w.shape)) for w in self.weights)
        self.values = xp.empty(self.size, xp.float32)
        self.grads = xp.zeros(self.size, xp.float32)
        self.offsets = []
        offset = 0
        for weight in self.weights:
            size = int(np.prod(weight.shape))
            view = self.values[offset:offset + size].reshape(weight.shape)
            view[...] = weight.value
            weight.value = view
            weight.grad = self.grads[offset:offset + size].reshape(weight.shape)
            self.offsets.append(offset)
            offset += size
        self._views = [(w.value, w.grad) for w in self.weights]

    def holds(self, weights):
        """Whether the buffer was packed for exactly these weights, in this order, and still holds
        each of them (another model sharing a layer has not packed its weights since)."""
        weights = _distinct(weights)
        return len(weights) == len(self.weights) and all(
            w is packed and w.value is value and w.grad is grad
            for w, packed, (value, grad) in zip(weights, self.weights, self._views))

    def copy_state(self, old, old_state, new_state):
        """Copy the per-parameter optimizer state of every weight packed both in ``old`` (a previous
        buffer, whose state is ``old_state``) and here into ``new_state`` (for this buffer)."""
        where = {id(w): (offset, int(np.prod(w.shape))) for w, offset in zip(old.weights, old.offsets)}
        for weight, offset in zip(self.weights, self.offsets):
            if id(weight) in where:
                old_offset, size = where[id(weight)]
                for name, array in new_state.items():
                    array[offset:offset + size] = old_state[name][old_offset:old_offset + size]


def _distinct(weights):
    """``weights`` without repeats (a layer called twice in one model has one set of weights)."""
    return list({id(w): w for w in weights}.values())


class Trainer:
    """compile / fit / evaluate / predict / train_on_batch / test_on_batch / predict_on_batch for a
    model (a subclass that provides the model interface named in the module docstring)."""

    def __init__(self):
        self.history = None
        self.optimizer = None
        self.loss = None
        self.metrics = []
        self.stop_training = False
        self._flat = None
        self._jit_graph = None
        self._matmul_precision = None
        self._autotune = None
        self._initial_epoch = 0

    # -- compile ------------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, jit_graph=None, weighted_metrics=None,
                matmul_precision=None, autotune=None):
        """Configure training: ``optimizer`` ('adam', 'sgd' or an instance), ``loss`` (Keras name or
        instance), ``metrics`` (e.g. ['accuracy']).  When the model is built, a loss or metric that
        cannot work on its output shape raises here, as does anything Keras would refuse.

        ``jit_graph`` chooses how ``fit`` runs a step: ``None`` (default) captures a whole training
        step of a full batch (forward, loss, backward, optimizer) once as a CUDA graph and replays it
        on the ``cuda`` backend, and launches eagerly elsewhere; ``False`` always launches eagerly;
        ``True`` asks for the graph runner anywhere (off the GPU it runs the same host logic
        eagerly).  See :mod:`gpucnn.step_runners`.

        ``matmul_precision`` ('highest', 'high' or 'medium', see :mod:`gpucnn.config`) is the precision of
        this model's conv and Dense kernels, and ``autotune`` (True or False, see
        :mod:`gpucnn.cuda.autotune`) whether their tiles are timed on the GPU, while it runs fit, evaluate,
        predict, the ``*_on_batch`` methods or profile; None (the default) leaves the global setting.  Like
        ``jit_graph``, neither is saved with the model."""
        step_runners.check_jit_graph(jit_graph)
        _refuse_unimplemented(weighted_metrics=weighted_metrics)
        check_op_precision(matmul_precision, "Argument `matmul_precision`")
        if autotune not in (None, True, False):
            raise ValueError(f"Argument `autotune` must be None (the global switch), True or False, got "
                             f"{autotune!r}.")
        if optimizer == "rmsprop":
            raise ValueError("Argument `optimizer` 'rmsprop' (Keras' default) is not implemented. "
                             "Fix: pass optimizer='adam' or 'sgd'.")
        if loss is None:
            raise ValueError("Argument `loss` is required, e.g. loss='binary_crossentropy'.")
        optimizer = optimizers.get(optimizer)
        loss = losses.get(loss)
        metrics = losses.metric_names(metrics, loss)
        if self.built:
            # The output shape is known: a loss or metric that cannot work on it is reported now
            # (and again at fit / evaluate for a model built or changed later).
            self.build()
            losses.check_fits_output(loss, metrics, self.output_shape[1:])
        self.optimizer, self.loss, self.metrics = optimizer, loss, metrics
        self._jit_graph = jit_graph
        self._matmul_precision = matmul_precision
        self._autotune = autotune
        self._flat = None

    @contextlib.contextmanager
    def compiled_settings(self):
        """Inside, the precision and autotune switch given to ``compile`` are in force (those left None
        keep the global ones); the global settings come back on exit."""
        with config.float32_matmul_precision(self._matmul_precision):
            # The switch lives in gpucnn.cuda, which only the backends that launch kernels have imported
            # (importing numba.cuda before the emulated backend starts would break its simulator).
            if self._autotune is None or backend.current().name == "cpu":
                yield
                return
            from gpucnn.cuda import autotune
            with autotune.autotuning(self._autotune):
                yield

    def require_compiled(self, method):
        """Raise Keras' ValueError for calling ``method`` (its name) on a model not compiled yet."""
        if self.loss is None:
            raise ValueError(f"You must call `compile()` before calling `{method}()`. "
                             f"Fix: model.compile(optimizer='adam', loss=..., metrics=['accuracy']).")

    # -- the training state -------------------------------------------------------------------------
    @property
    def flat_parameters(self):
        """The :class:`FlatParameters` the optimizer updates, or None before the first training step
        (or :meth:`pack_parameters`) after ``compile``."""
        return self._flat

    def pack_parameters(self):
        """Move every trainable weight into one flat parameter buffer (and its gradient into a twin)
        and build the optimizer's state for it; nothing to do when the buffer still holds these
        weights."""
        trainable = self.trainable_weights
        if self._flat is not None and self._flat.holds(trainable):
            return
        old, old_state = self._flat, self.optimizer.state
        self._flat = FlatParameters(trainable)
        self.optimizer.build(self._flat.values, [int(np.prod(w.shape)) for w in self._flat.weights])
        if old is not None:
            # Repacked because a layer changed hands, was added or unfrozen: this model's optimizer
            # keeps what it learned about the weights it already trained (Adam's moments).
            self._flat.copy_state(old, old_state, self.optimizer.state)

    @property
    def output_logits(self):
        """Whether ``forward`` ends at the output layer's pre-activation logits, which the loss then
        takes in its numerically stable fused form: when the compiled loss' activation (sigmoid for
        binary, softmax for categorical cross-entropy) is the output layer's.  Derived from the
        current output layer and loss every time, so ``add``, ``pop`` or a new ``compile`` never
        leave a stale choice behind."""
        return (self.loss is not None and not self.loss.from_logits and bool(self.layers)
                and self.output_layer.activation == self.loss.activation)

    def _check_loss_fits_output(self):
        """Refuse a compiled loss or metrics that cannot work on the model's output shape."""
        losses.check_fits_output(self.loss, self.metrics, self.output_shape[1:])

    def setup_training(self):
        """Everything a training step needs besides the data: the metrics checked against the output
        layer and the parameters packed."""
        self._check_loss_fits_output()
        self.pack_parameters()

    def prepare_training(self, x, y):
        """``x``/``y`` checked and on the backend, ready for :meth:`train_step`, after
        :meth:`setup_training`."""
        x, y = data.on_backend(*data.check_xy(self, x, y))
        self.setup_training()
        return x, y

    def get_training_state(self):
        """Copies of what optimizer steps change: weights (moving statistics included), optimizer
        state and step count; :meth:`set_training_state` puts them back."""
        return ([w.value.copy() for w in self.weights],
                {name: array.copy() for name, array in self.optimizer.state.items()},
                self.optimizer.iterations)

    def set_training_state(self, state):
        """Put back a state from :meth:`get_training_state`, in place."""
        values, optimizer_state, iterations = state
        for weight, value in zip(self.weights, values):
            weight.value[...] = value  # in place: layers hold views into the flat parameter buffer
        for name, array in optimizer_state.items():
            self.optimizer.state[name][...] = array
        self.optimizer.iterations = iterations

    def set_initial_epoch(self, epoch):
        """Make the running ``fit`` start at ``epoch``: for a callback's ``on_train_begin`` that
        resumes an interrupted run (``BackupAndRestore``)."""
        self._initial_epoch = epoch

    # -- one step -----------------------------------------------------------------------------------
    def loss_and_gradient(self, outputs, y, sample_weight=None):
        """The compiled loss of ``forward``'s ``outputs`` (logits where :attr:`output_logits`) for
        labels ``y``, each sample's loss weighted by ``sample_weight`` when given (Keras 3:
        Σ wᵢ·lossᵢ / batch size): device (loss, gradient with respect to ``outputs``, correct count,
        not weighted)."""
        op = self.loss.op(backend.current().ops, self.loss.from_logits or self.output_logits)
        return op(outputs, y, sample_weight=sample_weight)

    def apply_optimizer(self):
        """One optimizer update of the flat parameter buffer from the gradient buffer."""
        with profiler.nvtx_range("optimizer"):
            self.optimizer.apply(self._flat.values, self._flat.grads)

    def train_step(self, x, y, sample_weight=None):
        """One optimizer step (forward, loss, backward, optimizer) on a batch made by
        :meth:`prepare_training` (per-sample loss weights on the device, or None); returns device
        (loss, correct) without synchronising: the step the runners of :mod:`gpucnn.step_runners`
        launch or capture."""
        out = self.forward(x, training=True)
        with profiler.nvtx_range("loss"):
            loss, dout, correct = self.loss_and_gradient(out, y, sample_weight)
        self.backward(dout)
        self.apply_optimizer()
        return loss, correct

    @_under_compiled_settings
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch, as Keras: returns the batch's loss (a float), ``[loss,
        accuracy]`` when metrics were compiled, or a dict with ``return_dict=True``.
        ``sample_weight`` / ``class_weight`` weigh each sample's loss as in :meth:`fit`."""
        self.require_compiled("train_on_batch")
        x, y = data.check_xy(self, x, y)
        x, y, weights = data.on_backend(x, y, data.sample_weights(y, sample_weight, class_weight))
        self.setup_training()
        logs = callbacks_module.RunningLogs(backend.current().xp, self.metrics)
        logs.add(*self.train_step(x, y, weights), len(x), self.loss.accuracy_count(y))
        return self._keras_result(logs.result(), return_dict)

    @_under_compiled_settings
    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss (and accuracy) of one batch in inference mode, returned as ``train_on_batch`` does;
        ``sample_weight`` weighs each sample's loss."""
        self.require_compiled("test_on_batch")
        x, y = data.check_xy(self, x, y)
        dataset = data.DeviceData(*data.on_backend(x, y, data.check_sample_weight(sample_weight, len(x))))
        self._check_loss_fits_output()
        return self._keras_result(self._evaluate_data(dataset, len(dataset)).result(), return_dict)

    def predict_on_batch(self, x):
        """``predict`` of one batch, as a float32 NumPy array."""
        return self.predict(x, batch_size=len(x))

    def _keras_result(self, logs, return_dict):
        if return_dict:
            return logs
        ordered = [logs["loss"]] + [logs[name] for name in self.metrics]
        return ordered[0] if len(ordered) == 1 else ordered

    # -- fit ----------------------------------------------------------------------------------------
    @staticmethod
    def _batch_size(batch_size):
        return 32 if batch_size is None else _positive_int(batch_size, "batch_size")

    @_under_compiled_settings
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns a :class:`gpucnn.callbacks.History` (also kept as
        ``model.history``).

        ``validation_split`` takes the *last* fraction of ``x``/``y`` (and ``sample_weight``) before
        shuffling, as Keras does; ``validation_data=(x_val, y_val)`` or ``(x_val, y_val,
        val_sample_weight)`` takes precedence over it.  Validation runs after every
        ``validation_freq``-th epoch, in batches of ``validation_batch_size`` (default ``batch_size``).

        ``sample_weight`` (one weight per sample) or ``class_weight`` (a dict ``{class index:
        weight}``, e.g. ``{0: 1.0, 1: 4.0}`` for rare positives; not with ``sample_weight``) weigh
        each sample's loss as in Keras 3: a batch's loss is Σ wᵢ·lossᵢ / batch size, and the
        gradient is that of this loss.  Class weights apply to the training data only.  Accuracy is
        not weighted (Keras' ``metrics=``).  The weights live on the device with the data.
        """
        self.require_compiled("fit")
        _refuse_unimplemented(steps_per_epoch=steps_per_epoch, validation_steps=validation_steps)
        batch_size = self._batch_size(batch_size)
        validation_batch_size = batch_size if validation_batch_size is None else \
            _positive_int(validation_batch_size, "validation_batch_size")
        validation_freq = _positive_int(validation_freq, "validation_freq",
                                        " Fix: pass 1 to validate after every epoch.")
        epochs = _positive_int(epochs, "epochs")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, int) or initial_epoch < 0:
            raise ValueError(f"Argument `initial_epoch` must be an int >= 0, got {initial_epoch!r}.")
        verbose = _check_verbose(verbose)
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"Argument `validation_split` must be a float in [0, 1), got "
                             f"{validation_split!r}.")
        x, y = data.check_xy(self, x, y)
        weights = data.check_sample_weight(sample_weight, len(x))
        self.setup_training()
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                length = f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else ""
                raise ValueError(f"Argument `validation_data` must be a tuple (x_val, y_val) or (x_val, "
                                 f"y_val, val_sample_weight), got {type(validation_data).__name__}{length}.")
            x_val, y_val = data.check_xy(self, *validation_data[:2], x_name="validation_data[0]",
                                         y_name="validation_data[1]")
            w_val = data.check_sample_weight(validation_data[2] if len(validation_data) == 3 else None,
                                             len(x_val), "validation_data[2]")
            val = data.place(x_val, y_val, w_val)
        elif validation_split > 0:
            split = int(math.floor(len(x) * (1.0 - validation_split)))
            if split == 0 or split == len(x):
                raise ValueError(f"Argument `validation_split={validation_split}` leaves "
                                 f"{split} training and {len(x) - split} validation samples out of "
                                 f"{len(x)}. Fix: use more data or another split.")
            val = data.place(x[split:], y[split:], None if weights is None else weights[split:])
            x, y, weights = x[:split], y[:split], None if weights is None else weights[:split]
        if class_weight is not None:  # the training part's classes (Keras refuses it with sample_weight)
            weights = data.sample_weights(y, sample_weight, class_weight)
        train = data.place(x, y, weights)

        history = callbacks_module.History()
        steps = math.ceil(len(train) / batch_size)
        callbacks = _check_callbacks(callbacks)
        # NaN/Inf protection is on by default; it runs first so that the other callbacks see the last
        # good weights at the end of an epoch it stopped.
        guard = [] if any(isinstance(c, callbacks_module.TerminateOnNaN) for c in callbacks) \
            else [callbacks_module.TerminateOnNaN()]
        extra = [callbacks_module.ProgressBar(steps, epochs, verbose)] if verbose else []
        # History and the progress bar come after the user's callbacks, as in Keras, so they show what
        # those add to the epoch logs (ReduceLROnPlateau's learning_rate).
        callback_list = callbacks_module.CallbackList(
            guard + callbacks + [history] + extra, self,
            params={"verbose": verbose, "epochs": epochs, "steps": steps})
        self.history = history
        run_step = step_runners.make_step_runner(self, self._jit_graph)
        self.stop_training = False
        self._initial_epoch = initial_epoch
        callback_list.on_train_begin()  # BackupAndRestore may call set_initial_epoch
        logs = {}
        for epoch in range(self._initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            running = callbacks_module.RunningLogs(backend.current().xp, self.metrics)
            order = utils.rng().permutation(len(train)) if shuffle else None
            for step, (xb, yb, wb) in enumerate(train.batches(batch_size, order)):
                callback_list.on_train_batch_begin(step)
                loss, correct = run_step(xb, yb, wb)
                running.add(loss, correct, len(xb), self.loss.accuracy_count(yb))
                callback_list.on_train_batch_end(step, running)
                if self.stop_training:
                    break
            logs = running.result()
            if val is not None and (epoch + 1) % validation_freq == 0:
                callback_list.on_test_begin()
                val_logs = self._evaluate_data(val, validation_batch_size, callback_list).result()
                callback_list.on_test_end(val_logs)
                logs.update({"val_" + key: value for key, value in val_logs.items()})
            callback_list.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callback_list.on_train_end(logs)
        return history

    # -- inference ----------------------------------------------------------------------------------
    def _evaluate_data(self, dataset, batch_size, callback_list=None):
        """Loss and accuracy over a :mod:`gpucnn.data` dataset, in inference mode, kept on the device."""
        running = callbacks_module.RunningLogs(backend.current().xp, self.metrics)
        for batch, (xb, yb, wb) in enumerate(dataset.batches(batch_size)):
            if callback_list is not None:
                callback_list.on_test_batch_begin(batch)
            loss, _, correct = self.loss_and_gradient(self.forward(xb, training=False), yb, wb)
            running.add(loss, correct, len(xb), self.loss.accuracy_count(yb))
            if callback_list is not None:
                callback_list.on_test_batch_end(batch, running)
        return running

    @_under_compiled_settings
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss and metrics on ``x``/``y``: ``[loss, accuracy]`` (or a scalar loss without metrics, or a
        dict with ``return_dict=True``).  ``sample_weight`` weighs each sample's loss as in
        :meth:`fit`.  ``callbacks`` get the ``on_test_*`` hooks, as in Keras."""
        self.require_compiled("evaluate")
        _refuse_unimplemented(steps=steps)
        batch_size = self._batch_size(batch_size)
        verbose = _check_verbose(verbose)
        x, y = data.check_xy(self, x, y)
        dataset = data.place(x, y, data.check_sample_weight(sample_weight, len(x)))
        self._check_loss_fits_output()
        steps = math.ceil(len(dataset) / batch_size)
        # The progress bar comes after the user's callbacks, as in Keras.
        bar = [callbacks_module.EvaluationProgressBar(steps, verbose)] if verbose else []
        callback_list = callbacks_module.CallbackList(_check_callbacks(callbacks) + bar, self, params={
            "verbose": verbose, "steps": steps})
        callback_list.on_test_begin()
        logs = self._evaluate_data(dataset, batch_size, callback_list).result()
        callback_list.on_test_end(logs)
        return self._keras_result(logs, return_dict)

    @_under_compiled_settings
    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None):
        """Model outputs for ``x`` as a float32 NumPy array (probabilities for sigmoid/softmax heads).
        ``verbose=1`` draws Keras' progress bar with the time per step, ``2`` its one-line form."""
        _refuse_unimplemented(steps=steps, callbacks=callbacks)
        batch_size = self._batch_size(batch_size)
        verbose = _check_verbose(verbose)
        dataset = data.place(data.check_x(self, x))
        self.build()
        bar = callbacks_module.ProgressBar(math.ceil(len(dataset) / batch_size), verbose=verbose)
        bar.start()
        outputs = []
        for step, (xb, _, _) in enumerate(dataset.batches(batch_size), start=1):
            outputs.append(backend.current().to_numpy(self.call(xb, training=False)))
            if verbose:
                bar.update(step, {})
        if verbose:
            bar.finish({})
        return np.concatenate(outputs).astype(np.float32, copy=False)

    @_under_compiled_settings
    def profile(self, x, y, steps=10, warmup=2, print_fn=print):
        """Time ``steps`` training steps on the batch ``x``/``y`` layer by layer and print the table
        (forward / backward ms, share of the step, achieved TFLOP/s or GB/s, peak memory); returns a
        :class:`gpucnn.profiler.Profile`.  The weights and optimizer state are restored afterwards.
        See :func:`gpucnn.profiler.profile`."""
        return profiler.profile(self, x, y, steps=steps, warmup=warmup, print_fn=print_fn)


def _positive_int(value, name, fix=""):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Argument `{name}` must be a positive int, got {value!r}.{fix}")
    return int(value)


def _refuse_unimplemented(**arguments):
    """Keras arguments gpucnn accepts by name, to say clearly that only their default is implemented."""
    for name, value in arguments.items():
        if value is not None:
            raise ValueError(f"Argument `{name}` is not implemented in gpucnn, got {value!r}. Fix: leave it "
                             f"at its default, None.")


def _check_callbacks(callbacks):
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)) or \
            not all(isinstance(c, callbacks_module.Callback) for c in callbacks):
        raise TypeError(f"Argument `callbacks` must be a list of gpucnn.callbacks.Callback instances, "
                        f"got {callbacks!r}. Fix: wrap a single callback in a list, e.g. "
                        f"callbacks=[EarlyStopping()].")
    return list(callbacks)


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"Argument `verbose` must be 0, 1, 2 or 'auto', got {verbose!r}.")
    return verbose
