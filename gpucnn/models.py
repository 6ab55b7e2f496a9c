"""Models: layers, the order they run in, their weights and config (:class:`Model`), and the linear
stack of layers, :class:`Sequential`.  ``Model(inputs, outputs)`` makes a model over a graph of layers
(:class:`gpucnn.functional.Functional`), as ``keras.Model`` does.

Training and inference (compile, fit, evaluate, predict, ...) come from :class:`gpucnn.trainer.Trainer`,
which ``Model`` inherits as in Keras 3.  The trainer, and every other module, uses a model only through
its public interface, so a model over a graph of layers trains the same way as ``Sequential``:

- ``layers`` (every layer, in execution order) and ``output_layer`` (the one whose output is the
  model's: the trainer fuses its activation with the loss);
- ``build(input_shape=None)``, ``built``, ``input_shape``, ``output_shape``;
- ``execution_plan()``: the units (:mod:`gpucnn.execution`) that ``forward(x, training)`` runs in order
  and ``backward(dy)`` in reverse; ``call(x, training)``: the outputs with the last activation applied;
- the weights, ``get_weights`` / ``set_weights``, ``count_params``, ``get_config`` / ``from_config``.
"""

from gpucnn import backend, data, execution, profiler, saving
from gpucnn import summary as summary_module
from gpucnn.layers import Input, Layer, deserialize, serialize
from gpucnn.layers.base import _unique_name, assign_weights, format_shape
from gpucnn.trainer import Trainer


class Model(Trainer):
    """What every model has: named layers run in an execution order, their weights, summary and
    saving; subclasses say how the layers connect (``build``, ``get_config``, ``from_config``)."""

    def __new__(cls, *args, **kwargs):
        # As keras.Model: gpucnn.Model(inputs, outputs) makes a model over the graph of layer calls.
        if cls is Model:
            from gpucnn.functional import Functional
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, name):
        super().__init__()
        self.name = name
        self.layers = []
        self._input_shape = None
        self._execution_plan = None

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

    @property
    def input_shape(self):
        """``(None, height, width, channels)`` as in Keras (None: the batch axis), or None before the
        input shape is known."""
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        """The output shape with the batch axis first, as in Keras, e.g. ``(None, 1)``."""
        self.build()
        return (None,) + tuple(self.output_layer.output_shape)

    @property
    def output_layer(self):
        """The layer whose output is the model's output."""
        return self.layers[-1]

    # -- running the layers -------------------------------------------------------------------------
    # Layers run as execution units (gpucnn.execution): one layer each, or a fused Conv2D-ReLU +
    # MaxPooling2D pair; each unit's forward/backward is an NVTX range for nsys timelines.
    def execution_plan(self):
        """The units ``forward`` runs in order and ``backward`` in reverse, kept on the model (a fused
        unit holds its output between forward and backward) and re-planned whenever the layers,
        their activations or the compiled loss' use of the output layer's logits change."""
        logits = self.output_logits
        key = (tuple((id(layer), layer.activation) for layer in self.layers), logits)
        if self._execution_plan is None or self._execution_plan[0] != key:
            self._execution_plan = (key, execution.plan_units(self.layers, output_logits=logits))
        return self._execution_plan[1]

    def forward(self, x, training, after_unit=None):
        """The output layer's output for the batch ``x`` on the backend: its pre-activation logits
        where the compiled loss takes them (``output_logits``).  ``after_unit()``, when given, is
        called after each unit (the profiler's clock marks)."""
        for unit in self.execution_plan():
            with profiler.nvtx_range(unit.name, "forward"):
                x = unit.forward(x, training)
            if after_unit is not None:
                after_unit()
        return x

    def backward(self, dy, after_unit=None):
        """Back-propagate ``dy`` (the gradient of ``forward``'s output, after a forward with
        ``training=True``) through every unit in reverse, filling the weights' gradients;
        ``after_unit`` as in ``forward``."""
        units = self.execution_plan()
        for index in range(len(units) - 1, -1, -1):
            with profiler.nvtx_range(units[index].name, "backward"):
                dy = units[index].backward(dy, need_input_grad=index > 0)
            if after_unit is not None:
                after_unit()

    def release_activations(self):
        """Drop what layers and fused units saved for backward (frees that memory between uses)."""
        for unit in self.execution_plan():
            unit.release()

    def call(self, x, training=False):
        """The model's outputs for the batch ``x`` on the backend, with the last activation applied
        even where the output layer hands logits to a fused loss."""
        out = self.forward(x, training=training)
        if self.output_logits:
            ops = backend.current().ops
            last = self.output_layer
            out = ops.sigmoid_forward(out) if last.activation == "sigmoid" else ops.softmax_forward(out)
        return out

    def __call__(self, x, training=False):
        """The outputs for ``x`` in one batch, as an array of the backend; ``training=True`` runs
        Dropout and BatchNormalization in training mode (BatchNormalization then updates its moving
        statistics), as calling a Keras model does."""
        return self.call(data.x_on_backend(self, x), training=bool(training))

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
        """Set every weight from arrays in ``get_weights()`` order, all or nothing: a wrong count,
        shape or dtype (complex included) raises before any weight changes."""
        self.build()
        assign_weights(self.weights, weights, f"Model '{self.name}'")

    def save_weights(self, filepath):
        """Write only the weights (with the layer config they belong to) to ``filepath``, atomically."""
        saving.save_weights(self, filepath)

    def load_weights(self, filepath):
        """Load weights written by ``save_weights`` (or ``save``) into this model; the weight shapes
        must match."""
        saving.load_weights(self, filepath)

    # -- description and persistence ----------------------------------------------------------------
    def summary(self, print_fn=None):
        """Print the Keras table: layer (type), output shape, parameter count, and the totals."""
        summary_module.summary(self, print_fn)

    def save(self, filepath):
        """Write the model (config, weights, compile settings, optimizer state) to one file,
        atomically: a crash mid-save leaves any previous file at ``filepath`` intact."""
        saving.save_model(self, filepath)


class Sequential(Model):
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
        super().__init__(name or _unique_name("sequential"))
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
            self._input_shape = layer.shape[1:]
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

    def build(self, input_shape=None):
        """Build every layer for ``input_shape`` (without the batch axis; a leading None is ignored)."""
        if input_shape is not None:
            shape = tuple(input_shape)
            shape = shape[1:] if shape and shape[0] is None else shape
            if self._input_shape is not None and shape != self._input_shape:
                raise ValueError(f"Model '{self.name}' was built for inputs {format_shape(self._input_shape)}"
                                 f", got input_shape {input_shape!r}.")
            self._input_shape = Input(shape).shape[1:]
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


def load_model(filepath, compile=True):
    """Read a model written by ``model.save``."""
    return saving.load_model(filepath, compile=compile)
