"""The Sequential model: Keras' add / compile / fit / evaluate / predict / summary / save.

Training keeps every tensor on the backend (the GPU for ``cuda``): the data is copied there once per
``fit`` call, batches are gathered there, all trainable parameters and their gradients live in two flat
buffers (layers hold views into them) so the optimizer is a single op, and loss / accuracy are
accumulated there and read back once per epoch or progress-bar redraw.
"""
import math

import numpy as np

from gpucnn import backend, callbacks as callbacks_module, data, losses, optimizers, profiler, saving, utils
from gpucnn import training as training_module
from gpucnn.layers import Input, Layer, deserialize, serialize
from gpucnn.layers.base import _unique_name, format_shape


def _positive_int(value, name, fix=""):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Argument `{name}` must be a positive int, got {value!r}.{fix}")
    return int(value)


class Sequential:
    """A linear stack of layers, built and trained like ``keras.Sequential``.

    >>> model = Sequential()
    >>> model.add(Conv2D(32, (3, 3), activation="relu", input_shape=(100, 100, 1)))
    >>> model.add(MaxPooling2D((3, 3)))
    >>> model.add(Flatten())
    >>> model.add(Dense(1, activation="sigmoid"))
    >>> model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    >>> history = model.fit(x, y, batch_size=32, epochs=5, validation_split=0.2)
    """

    def __init__(self, layers=None, trainable=True, name=None):
        self.name = name or _unique_name("sequential")
        self.layers = []
        self.history = None
        self._input_shape = None
        self.optimizer = None
        self.loss = None
        self.metrics = []
        self.stop_training = False
        self._packed_for = None
        self._params = self._grads = None
        self._logits = False
        self._jit_graph = None
        for layer in layers or []:
            self.add(layer)
        if not trainable:
            self.trainable = False

    # -- building -----------------------------------------------------------------------------------
    def add(self, layer):
        """Append a layer.  When the input shape is known the layer is built at once, so an
        incompatible layer (e.g. Dense on a 4-D tensor without Flatten) is reported here."""
        if isinstance(layer, Input):
            if self.layers:
                raise ValueError("An Input must be the first thing added to a Sequential model.")
            self._input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add() takes a gpucnn layer (e.g. gpucnn.layers.Dense), got "
                            f"{type(layer).__name__}: {layer!r}.")
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(f"Layer names must be unique in a model: '{layer.name}' is already used. "
                             f"Fix: pass another name=.")
        if not self.layers and self._input_shape is None and layer.input_shape_argument is not None:
            self._input_shape = layer.input_shape_argument
        elif self.layers and layer.input_shape_argument is not None:
            raise ValueError(f"Argument `input_shape` can only be given to the first layer; layer "
                             f"'{layer.name}' is layer {len(self.layers) + 1}.")
        if self._input_shape is not None:
            previous = self.layers[-1].output_shape if self.layers else self._input_shape
            if layer.built and layer.input_shape != tuple(previous):
                raise ValueError(f"Layer '{layer.name}' was built for inputs {format_shape(layer.input_shape)}"
                                 f" but follows an output {format_shape(previous)}.")
            if not layer.built:
                layer.build(tuple(previous))
        self.layers.append(layer)

    def pop(self):
        """Remove and return the last layer (Keras ``Sequential.pop``)."""
        if not self.layers:
            raise TypeError(f"Model '{self.name}' has no layers to pop.")
        return self.layers.pop()

    def get_layer(self, name=None, index=None):
        """A layer by ``name`` or by ``index`` (one of the two), as ``keras.Model.get_layer``."""
        if (name is None) == (index is None):
            raise ValueError(f"get_layer: pass exactly one of `name` and `index`, got name={name!r}, "
                             f"index={index!r}.")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int) or \
                    not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer: argument `index={index!r}` is out of range: model "
                                 f"'{self.name}' has {len(self.layers)} layers.")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer: no layer named {name!r}; the layers are "
                         f"{[layer.name for layer in self.layers]}.")

    @property
    def trainable(self):
        """False freezes every layer (Keras ``model.trainable = False``); True unfreezes them all."""
        return any(layer.trainable for layer in self.layers) if self.layers else True

    @trainable.setter
    def trainable(self, value):
        for layer in self.layers:
            layer.trainable = bool(value)

    @property
    def built(self):
        return self._input_shape is not None and bool(self.layers)

    def build(self, input_shape=None):
        """Build every layer for ``input_shape`` (without the batch axis; a leading None is ignored)."""
        if input_shape is not None:
            shape = tuple(input_shape)
            shape = shape[1:] if shape and shape[0] is None else shape
            if self._input_shape is not None and shape != self._input_shape:
                raise ValueError(f"Model '{self.name}' was built for inputs {format_shape(self._input_shape)}"
                                 f", got input_shape {input_shape!r}.")
            self._input_shape = Input(shape).shape
        if self._input_shape is None:
            raise ValueError(f"Model '{self.name}' has no input shape yet. Fix: pass input_shape= to its "
                             f"first layer, add an Input(shape=...), or call build(input_shape).")
        if not self.layers:
            raise ValueError(f"Model '{self.name}' has no layers. Fix: add layers with model.add(...).")
        shape = self._input_shape
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.output_shape

    @property
    def input_shape(self):
        """``(None, height, width, channels)`` as in Keras (None: the batch axis), or None before the
        input shape is known."""
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        """The output shape with the batch axis first, as in Keras, e.g. ``(None, 1)``."""
        return (None,) + tuple(self._sample_output_shape())

    def _sample_output_shape(self):
        self.build()
        return self.layers[-1].output_shape

    # -- weights ------------------------------------------------------------------------------------
    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def count_params(self):
        self.build()
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self):
        """All weights as NumPy arrays, Keras order (per layer: kernel then bias, ...)."""
        self.build()
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        """Set every weight from NumPy arrays in ``get_weights()`` order.  All shapes are checked first,
        so a wrong list leaves the model unchanged."""
        self.build()
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"set_weights expects {len(self.weights)} arrays (one per weight, in "
                             f"get_weights() order), got {len(weights)}.")
        for weight, array in zip(self.weights, weights):
            if tuple(np.shape(array)) != weight.shape:
                raise ValueError(f"Weight '{weight.name}' has shape {weight.shape}, but set_weights got "
                                 f"an array of shape {tuple(np.shape(array))}. Fix: pass arrays in "
                                 f"get_weights() order and shapes.")
        for weight, array in zip(self.weights, weights):
            weight.assign(array)

    def save_weights(self, filepath):
        """Write only the weights (with the layer config they belong to) to ``filepath``, atomically."""
        saving.save_weights(self, filepath)

    def load_weights(self, filepath):
        """Load weights written by ``save_weights`` (or ``save``) into this model; the weight shapes
        must match."""
        saving.load_weights(self, filepath)

    def _pack_parameters(self):
        """Move every trainable weight into one flat parameter buffer (and its gradient into a twin), so
        the optimizer updates the whole model in one op; layers keep views into the buffers."""
        trainable = self.trainable_weights
        key = tuple(id(w) for w in trainable)
        if self._packed_for == key:
            return
        xp = backend.current().xp
        total = sum(int(np.prod(w.shape)) for w in trainable)
        self._params = xp.empty(total, xp.float32)
        self._grads = xp.zeros(total, xp.float32)
        offset = 0
        for weight in trainable:
            size = int(np.prod(weight.shape))
            view = self._params[offset:offset + size].reshape(weight.shape)
            view[...] = weight.value
            weight.value = view
            weight.grad = self._grads[offset:offset + size].reshape(weight.shape)
            offset += size
        self._packed_for = key
        self.optimizer.build(self._params)

    # -- compile ------------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, jit_graph=None):
        """Configure training: ``optimizer`` ('adam', 'sgd' or an instance), ``loss`` (Keras name or
        instance), ``metrics`` (e.g. ['accuracy']).

        ``jit_graph`` chooses how ``fit`` runs a step: ``None`` (default) captures a whole training
        step of a full batch (forward, loss, backward, optimizer) once as a CUDA graph and replays it
        on the ``cuda`` backend, and launches eagerly elsewhere; ``False`` always launches eagerly;
        ``True`` asks for the graph runner anywhere (off the GPU it runs the same host logic
        eagerly).  See :mod:`gpucnn.training`."""
        training_module.check_jit_graph(jit_graph)
        if optimizer == "rmsprop":
            raise ValueError("Argument `optimizer` 'rmsprop' (Keras' default) is not implemented. "
                             "Fix: pass optimizer='adam' or 'sgd'.")
        if loss is None:
            raise ValueError("Argument `loss` is required, e.g. loss='binary_crossentropy'.")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        self.metrics = losses.metric_names(metrics, self.loss)
        self._jit_graph = jit_graph
        self._packed_for = None
        if self.built:
            self.build()

    def _check_compiled(self, method):
        if self.loss is None:
            raise RuntimeError(f"You must compile the model before calling {method}(). "
                               f"Fix: model.compile(optimizer='adam', loss=..., metrics=['accuracy']).")

    def _setup_loss(self):
        """Use the loss' stable fused form when the last layer ends in its activation."""
        losses.check_accuracy_metrics(self.metrics, self.loss, self._sample_output_shape())
        # A layer that was last before add()/pop() must apply its activation again.
        for layer in self.layers[:-1]:
            layer.output_logits = False
        last = self.layers[-1]
        self._logits = self.loss.from_logits or last.activation == self.loss.activation
        last.output_logits = not self.loss.from_logits and last.activation == self.loss.activation
        self._loss_op = getattr(backend.current().ops, self.loss.op_name(self._logits))

    # -- data ---------------------------------------------------------------------------------------
    def _prepare_x(self, x, argument="x"):
        """``x`` as a float32 contiguous array on the backend, checked against the model's input."""
        return backend.current().asarray(self._check_x(x, argument))

    def _check_x(self, x, argument="x"):
        """``x`` checked against the model's input, as a float32 contiguous array where it lives: NumPy
        data stays on the host (:mod:`gpucnn.data` decides whether it goes to the device whole)."""
        if x is None:
            raise ValueError(f"Argument `{argument}` is required: an array of images of shape "
                             f"(samples, height, width, channels).")
        array = _as_array(x)
        dtype = np.dtype(array.dtype)
        if not np.issubdtype(dtype, np.floating):
            # Integer (and bool) images are refused rather than cast: 0..255 pixels fed as-is train badly.
            fix = "x.astype('float32') / 255 for 8-bit images" if np.issubdtype(dtype, np.integer) or \
                dtype == bool else "pass a float32 NumPy array of shape (samples, height, width, channels)"
            raise TypeError(f"Argument `{argument}` must hold floating-point images, got dtype {dtype}. "
                            f"Fix: {fix}.")
        if array.ndim == 0 or array.shape[0] == 0:
            raise ValueError(f"Argument `{argument}` is empty (shape {tuple(array.shape)}): training and "
                             f"inference need at least one sample. Fix: pass an array of shape "
                             f"(samples, height, width, channels) with samples >= 1.")
        if self._input_shape is None:
            self.build(tuple(array.shape[1:]))
        expected = (None,) + tuple(self._input_shape)
        if tuple(array.shape[1:]) != tuple(self._input_shape):
            raise ValueError(f"Argument `{argument}` has shape {tuple(array.shape)}, but model "
                             f"'{self.name}' expects {expected}. Fix: reshape the data (e.g. add a "
                             f"channel axis with x[..., None]) or change the first layer's input_shape.")
        where = np if isinstance(array, np.ndarray) else backend.current().xp  # device data stays there
        array = where.ascontiguousarray(array, dtype=np.float32)
        if not _all_finite(array, where):
            raise ValueError(f"Argument `{argument}` contains NaN or Inf values. Fix: clean or impute "
                             f"the data before training.")
        return array

    def _prepare_xy(self, x, y, x_name="x", y_name="y"):
        """``x`` and the labels checked and on the backend."""
        x, labels = self._check_xy(x, y, x_name, y_name)
        xp = backend.current().xp
        return xp.asarray(x), xp.asarray(labels)

    def _check_xy(self, x, y, x_name="x", y_name="y"):
        """``x`` as :meth:`_check_x` leaves it and the labels as a NumPy array, checked for the loss."""
        x = self._check_x(x, x_name)
        if y is None:
            raise ValueError(f"Argument `{y_name}` is required: labels for every sample of `{x_name}`.")
        y_host = backend.current().to_numpy(_as_array(y))
        if y_host.ndim == 0 or len(y_host) != len(x):
            raise ValueError(f"Arguments `{x_name}` and `{y_name}` must have the same number of samples, "
                             f"got {len(x)} and {y_host.shape[0] if y_host.ndim else 'a scalar'}.")
        return x, self.loss.prepare_labels(y_host, self._sample_output_shape(), y_name)

    @staticmethod
    def _batch_size(batch_size):
        return 32 if batch_size is None else _positive_int(batch_size, "batch_size")

    # -- training -----------------------------------------------------------------------------------
    # Layers run as execution units (gpucnn.training): one layer each, or a fused Conv2D-ReLU +
    # MaxPooling2D pair; each unit's forward/backward is an NVTX range for nsys timelines.
    def _forward(self, x, training):
        for unit in training_module.execution_units(self):
            with profiler.nvtx_range(unit.name, "forward"):
                x = unit.forward(x, training)
        return x

    def _backward(self, dy):
        units = training_module.execution_units(self)
        for index in range(len(units) - 1, -1, -1):
            with profiler.nvtx_range(units[index].name, "backward"):
                dy = units[index].backward(dy, need_input_grad=index > 0)

    def _loss_and_gradients(self, x, y):
        """Forward, loss and backward on one batch: fills the gradient buffer, returns device
        (loss, correct).  This is the part of a step a CUDA graph captures."""
        out = self._forward(x, training=True)
        with profiler.nvtx_range("loss"):
            loss, dout, correct = self._loss_op(out, y)
        self._backward(dout)
        return loss, correct

    def _apply_optimizer(self):
        with profiler.nvtx_range("optimizer"):
            self.optimizer.apply(self._params, self._grads)

    def _copy_training_state(self):
        """Copies of what optimizer steps change: weights (moving statistics included), optimizer
        state and step count; :meth:`_put_training_state` puts them back."""
        return ([w.value.copy() for w in self.weights],
                {name: array.copy() for name, array in self.optimizer.state.items()},
                self.optimizer.iterations)

    def _put_training_state(self, state):
        values, optimizer_state, iterations = state
        for weight, value in zip(self.weights, values):
            weight.value[...] = value  # in place: layers hold views into the flat parameter buffer
        for name, array in optimizer_state.items():
            self.optimizer.state[name][...] = array
        self.optimizer.iterations = iterations

    def _train_step(self, x, y):
        """One optimizer step on a batch made by :meth:`_prepare_training`; returns device
        (loss, correct) without synchronising: the step the runners of gpucnn.training launch."""
        loss, correct = self._loss_and_gradients(x, y)
        self._apply_optimizer()
        return loss, correct

    def _prepare_training(self, x, y):
        """``x``/``y`` checked and on the backend, with the loss set up and the parameters packed."""
        x, y = self._prepare_xy(x, y)
        self._setup_loss()
        self._pack_parameters()
        return x, y

    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on one batch, as Keras: returns the batch's loss (a float), ``[loss,
        accuracy]`` when metrics were compiled, or a dict with ``return_dict=True``."""
        self._check_compiled("train_on_batch")
        x, y = self._prepare_training(x, y)
        logs = callbacks_module.RunningLogs(backend.current().xp, self.metrics)
        logs.add(*self._train_step(x, y), len(x), int(y.size))
        return self._keras_result(logs.result(), return_dict)

    def test_on_batch(self, x, y, return_dict=False):
        """Loss (and accuracy) of one batch in inference mode, returned as ``train_on_batch`` does."""
        self._check_compiled("test_on_batch")
        dataset = data.DeviceData(*self._prepare_xy(x, y))
        self._setup_loss()
        return self._keras_result(self._evaluate_data(dataset, len(dataset)).result(), return_dict)

    def predict_on_batch(self, x):
        """``predict`` of one batch, as a float32 NumPy array."""
        return self.predict(x, batch_size=len(x))

    def _keras_result(self, logs, return_dict):
        if return_dict:
            return logs
        ordered = [logs["loss"]] + [logs[name] for name in self.metrics]
        return ordered[0] if len(ordered) == 1 else ordered

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns a :class:`gpucnn.callbacks.History` (also kept as
        ``model.history``).

        ``validation_split`` takes the *last* fraction of ``x``/``y`` before shuffling, as Keras does;
        ``validation_data=(x_val, y_val)`` takes precedence over it.  Validation runs after every
        ``validation_freq``-th epoch, in batches of ``validation_batch_size`` (default ``batch_size``).
        """
        self._check_compiled("fit")
        _refuse_unimplemented(class_weight=class_weight, sample_weight=sample_weight,
                              steps_per_epoch=steps_per_epoch, validation_steps=validation_steps)
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
        x, y = self._check_xy(x, y)
        self._setup_loss()
        self._pack_parameters()
        val = None
        if validation_data is not None:
            if isinstance(validation_data, (tuple, list)) and len(validation_data) == 3:
                raise ValueError("Argument `validation_data=(x_val, y_val, sample_weight)`: sample "
                                 "weights are not implemented. Fix: pass (x_val, y_val).")
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(f"Argument `validation_data` must be a tuple (x_val, y_val), got "
                                 f"{type(validation_data).__name__}"
                                 f"{' of length %d' % len(validation_data) if isinstance(validation_data, (tuple, list)) else ''}.")
            val = data.place(*self._check_xy(*validation_data, x_name="validation_data[0]",
                                             y_name="validation_data[1]"))
        elif validation_split > 0:
            split = int(math.floor(len(x) * (1.0 - validation_split)))
            if split == 0 or split == len(x):
                raise ValueError(f"Argument `validation_split={validation_split}` leaves "
                                 f"{split} training and {len(x) - split} validation samples out of "
                                 f"{len(x)}. Fix: use more data or another split.")
            x, y, val = x[:split], y[:split], data.place(x[split:], y[split:])
        train = data.place(x, y)

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
        run_step = training_module.make_step_runner(self, self._jit_graph)
        self.stop_training = False
        self._initial_epoch = initial_epoch
        callback_list.on_train_begin()  # BackupAndRestore may move self._initial_epoch forward
        logs = {}
        for epoch in range(self._initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            running = callbacks_module.RunningLogs(backend.current().xp, self.metrics)
            order = utils.rng().permutation(len(train)) if shuffle else None
            for step, (xb, yb) in enumerate(train.batches(batch_size, order)):
                callback_list.on_train_batch_begin(step)
                loss, correct = run_step(xb, yb)
                running.add(loss, correct, len(xb), int(yb.size))
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
        for batch, (xb, yb) in enumerate(dataset.batches(batch_size)):
            if callback_list is not None:
                callback_list.on_test_batch_begin(batch)
            loss, _, correct = self._loss_op(self._forward(xb, training=False), yb)
            running.add(loss, correct, len(xb), int(yb.size))
            if callback_list is not None:
                callback_list.on_test_batch_end(batch, running)
        return running

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss and metrics on ``x``/``y``: ``[loss, accuracy]`` (or a scalar loss without metrics, or a
        dict with ``return_dict=True``).  ``callbacks`` get the ``on_test_*`` hooks, as in Keras."""
        self._check_compiled("evaluate")
        _refuse_unimplemented(sample_weight=sample_weight, steps=steps)
        batch_size = self._batch_size(batch_size)
        verbose = _check_verbose(verbose)
        dataset = data.place(*self._check_xy(x, y))
        self._setup_loss()
        callback_list = callbacks_module.CallbackList(_check_callbacks(callbacks), self, params={
            "verbose": verbose, "steps": math.ceil(len(dataset) / batch_size)})
        callback_list.on_test_begin()
        logs = self._evaluate_data(dataset, batch_size, callback_list).result()
        callback_list.on_test_end(logs)
        if verbose:
            steps = math.ceil(len(dataset) / batch_size)
            print(f"{steps}/{steps}"
                  + callbacks_module._format_logs(logs))
        return self._keras_result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None):
        """Model outputs for ``x`` as a float32 NumPy array (probabilities for sigmoid/softmax heads)."""
        _refuse_unimplemented(steps=steps, callbacks=callbacks)
        batch_size = self._batch_size(batch_size)
        _check_verbose(verbose)
        dataset = data.place(self._check_x(x))
        self.build()
        outputs = [backend.current().to_numpy(self._outputs(xb, training=False))
                   for xb, _ in dataset.batches(batch_size)]
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def _outputs(self, x, training):
        """The model's outputs for one batch, with the last activation applied even where the layer
        hands logits to a fused loss."""
        out = self._forward(x, training=training)
        last = self.layers[-1]
        if last.output_logits:
            ops = backend.current().ops
            out = ops.sigmoid_forward(out) if last.activation == "sigmoid" else ops.softmax_forward(out)
        return out

    def __call__(self, x, training=False):
        """The outputs for ``x`` in one batch, as an array of the backend; ``training=True`` runs
        Dropout and BatchNormalization in training mode (BatchNormalization then updates its moving
        statistics), as calling a Keras model does."""
        return self._outputs(self._prepare_x(x), training=bool(training))

    def profile(self, x, y, steps=10, warmup=2, print_fn=print):
        """Time ``steps`` training steps on the batch ``x``/``y`` layer by layer and print the table
        (forward / backward ms, share of the step, achieved TFLOP/s or GB/s, peak memory); returns a
        :class:`gpucnn.profiler.Profile`.  The weights and optimizer state are restored afterwards.
        See :func:`gpucnn.profiler.profile`."""
        return profiler.profile(self, x, y, steps=steps, warmup=warmup, print_fn=print_fn)

    # -- description and persistence ----------------------------------------------------------------
    def summary(self, print_fn=None):
        """Print the Keras table: layer (type), output shape, parameter count, and the totals."""
        self.build()
        rows = [(f"{layer.name} ({type(layer).__name__})", format_shape(layer.output_shape),
                 f"{layer.count_params():,}") for layer in self.layers]
        widths = [max(31, *(len(r[0]) for r in rows)), max(22, *(len(r[1]) for r in rows)),
                  max(13, *(len(r[2]) for r in rows))]
        total = self.count_params()
        trainable = sum(int(np.prod(w.shape)) for w in self.trainable_weights)
        lines = [f'Model: "{self.name}"',
                 "┏" + "┳".join("━" * (w + 2) for w in widths) + "┓",
                 "┃ " + " ┃ ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in
                                   enumerate(zip(("Layer (type)", "Output Shape", "Param #"), widths)))
                 + " ┃",
                 "┡" + "╇".join("━" * (w + 2) for w in widths) + "┩"]
        for row in rows:
            lines.append("│ " + " │ ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                                          enumerate(zip(row, widths))) + " │")
        lines.append("└" + "┴".join("─" * (w + 2) for w in widths) + "┘")
        # Like Keras, once the optimizer has its state (after the first training step) its variables
        # count in the total: the slots (m and v for Adam, velocity for SGD with momentum) plus the
        # iteration counter (int64) and the learning rate (float32).
        optimizer_count, optimizer_bytes = 0, 0
        if self.optimizer is not None and self._packed_for is not None:
            slots = sum(int(np.prod(array.shape)) for array in self.optimizer.state.values())
            optimizer_count, optimizer_bytes = slots + 2, 4 * slots + 8 + 4
        lines += [f" Total params: {total + optimizer_count:,} "
                  f"({_format_bytes(4 * total + optimizer_bytes)})",
                  f" Trainable params: {trainable:,} ({_format_bytes(4 * trainable)})",
                  f" Non-trainable params: {total - trainable:,} ({_format_bytes(4 * (total - trainable))})"]
        if optimizer_count:
            lines.append(f" Optimizer params: {optimizer_count:,} ({_format_bytes(optimizer_bytes)})")
        for line in lines:
            (print_fn or print)(line)

    def get_config(self):
        return {"name": self.name,
                "input_shape": list(self._input_shape) if self._input_shape is not None else None,
                "layers": [serialize(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config):
        model = cls(name=config.get("name"))
        if config.get("input_shape") is not None:
            model.add(Input(tuple(config["input_shape"])))
        for entry in config.get("layers", []):
            model.add(deserialize(entry))
        return model

    def save(self, filepath):
        """Write the model (config, weights, compile settings, optimizer state) to one file,
        atomically: a crash mid-save leaves any previous file at ``filepath`` intact."""
        saving.save_model(self, filepath)


def load_model(filepath, compile=True):
    """Read a model written by ``Sequential.save``."""
    return saving.load_model(filepath, compile=compile)


_FINITE_CHECK_BYTES = 64 << 20


def _all_finite(array, where):
    """Whether ``array`` holds no NaN/Inf.  Host data is checked in slices of about 64 MiB, so data far
    larger than the device (and a memory-mapped file) needs no full-size temporary mask."""
    if where is not np:
        return bool(where.isfinite(array).all())
    rows = max(1, _FINITE_CHECK_BYTES // max(array[:1].nbytes, 1))
    return all(np.isfinite(array[start:start + rows]).all() for start in range(0, len(array), rows))


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


def _as_array(data):
    """``data`` as an array without copying device data: on the cuda backend, CuPy arrays and objects
    with ``__cuda_array_interface__`` or CUDA DLPack capsules (PyTorch, JAX, Numba) become CuPy views
    of the same memory; everything else becomes a NumPy array."""
    if backend.current().name == "cuda":
        xp = backend.current().xp
        if hasattr(data, "__cuda_array_interface__"):
            return xp.asarray(data)
        if hasattr(data, "__dlpack_device__") and data.__dlpack_device__()[0] == _DLPACK_CUDA_DEVICE:
            return xp.from_dlpack(data)
    return data if isinstance(data, np.ndarray) else np.asarray(data)


# DLPack's device type code for CUDA memory (kDLCUDA).
_DLPACK_CUDA_DEVICE = 2


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"Argument `verbose` must be 0, 1, 2 or 'auto', got {verbose!r}.")
    return verbose


def _format_bytes(count):
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.2f} {unit}"
        count /= 1024
