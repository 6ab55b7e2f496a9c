"""Keras 3 model files, read and written: ``.keras`` archives and ``.weights.h5`` weight files.

The layout is Keras' own (``keras/src/saving/saving_lib.py``): a ``.keras`` file is a zip archive with
``metadata.json`` (the Keras version), ``config.json`` (the model serialized as Keras serializes it:
``{"module", "class_name", "config", "registered_name", "build_config", "compile_config"}``) and
``model.weights.h5``.  The HDF5 file (alone, it is a ``.weights.h5`` file) keeps each layer's variables
in ``layers/<key>/vars/0, 1, ...``, where ``<key>`` is the layer's class name in snake case made unique
in model order (``conv2d``, ``conv2d_1``, ...; not the layer's name), the variables in creation order
(Conv2D/Dense kernel then bias, BatchNormalization gamma, beta, moving_mean, moving_variance), Conv2D
kernels HWIO and Dense kernels (in, out) as in gpucnn.  The optimizer's variables are in
``optimizer/vars``: the iteration count, the learning rate, then per trainable weight (model order)
Adam's (or AdamW's) m and v interleaved, or SGD's momentum (none without momentum).  gpucnn keeps
those states in flat buffers, so they are split by weight on writing and joined on reading: training
continues in the other library.  Not carried (gpucnn-only): the Dropout layers' mask counters, so masks differ after a
round trip, and gpucnn's random generator state.

Configs are translated option by option through ``_LAYERS``: an option gpucnn implements becomes the
gpucnn argument, an option gpucnn does not implement must hold Keras' default (else a ValueError names
the layer, the option and what gpucnn supports), an option this module does not know is refused the
same way, so a loaded model never computes something other than the Keras model did.  The model config
is read by its class (``_MODEL_READERS``: the reader into gpucnn's config, then the model's maker).  A
Functional config (``keras/src/models/functional.py``, ``keras.Model(inputs, outputs)``: ``layers`` with
the calls each makes as ``inbound_nodes`` of serialized Keras tensors, ``input_layers``,
``output_layers``) is read into the config of ``gpucnn.Model(inputs, outputs)`` (the layers in Keras'
order, each call as the ``[layer, call]`` references it reads) and checked first: one input and one
output, merge layers (Add, Concatenate) called on lists and the others on one tensor, every reference to
a call the config has (``Functional.from_config`` refuses cycles); and written back the same way.
Keras keys the H5 groups of both model kinds over the same layer order (a Functional model's
``model.layers`` is Keras' order), a Functional one with an extra ``input_layer`` group that holds no
variables.

Files are built in memory and written atomically (``saving.write_atomically``).
"""
import datetime
import io
import json
import zipfile
import zlib

import h5py
import numpy as np

from gpucnn import activations, initializers, losses, optimizers, saving

CONFIG_NAME = "config.json"
METADATA_NAME = "metadata.json"
WEIGHTS_NAME = "model.weights.h5"
# The major version of the archives this module reads; metadata.json names the Keras release.
KERAS_MAJOR_VERSION = 3
# The Keras release this writer's files were checked against (tests/data/keras/check_in_keras.py).
KERAS_VERSION_WRITTEN = "3.15.1"

_ANY = object()  # an option whose value does not matter to gpucnn (e.g. renorm_momentum without renorm)
_NO_REGULARIZERS = {"kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
                    "kernel_constraint": None, "bias_constraint": None}


class _LayerSpec:
    """How one Keras layer class maps to gpucnn.  ``arguments``: options passed to the gpucnn layer;
    ``fixed``: options gpucnn does not implement, with the value it computes as (written to Keras
    configs and checked when read); ``tolerated``: options only checked when read (newer Keras
    releases write them); ``snake_key``: the H5 group name stem Keras derives from the class name."""

    def __init__(self, snake_key, arguments=(), fixed=None, tolerated=None):
        self.snake_key = snake_key
        self.arguments = arguments
        self.fixed = fixed or {}
        self.tolerated = tolerated or {}


_LAYERS = {
    "Conv2D": _LayerSpec(
        "conv2d", ("filters", "kernel_size", "strides", "padding", "activation", "use_bias",
                   "kernel_initializer", "bias_initializer"),
        {"data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, **_NO_REGULARIZERS},
        {"lora_rank": None, "lora_alpha": _ANY}),
    "Dense": _LayerSpec(
        "dense", ("units", "activation", "use_bias", "kernel_initializer", "bias_initializer"),
        {key: value for key, value in _NO_REGULARIZERS.items() if key != "activity_regularizer"},
        {"activity_regularizer": None, "quantization_config": None, "lora_rank": None,
         "lora_alpha": _ANY}),
    "MaxPooling2D": _LayerSpec("max_pooling2d", ("pool_size", "strides", "padding"),
                               {"data_format": "channels_last"}),
    # Both average only the cells inside the input in 'same' windows, as Keras does.
    "AveragePooling2D": _LayerSpec("average_pooling2d", ("pool_size", "strides", "padding"),
                                   {"data_format": "channels_last"}),
    "GlobalAveragePooling2D": _LayerSpec("global_average_pooling2d", ("keepdims",),
                                         {"data_format": "channels_last"}),
    "ZeroPadding2D": _LayerSpec("zero_padding2d", ("padding",), {"data_format": "channels_last"}),
    # Merge layers: only in Functional models (gpucnn's refuse a Sequential stack's single tensor).
    "Add": _LayerSpec("add"),
    "Concatenate": _LayerSpec("concatenate", ("axis",)),
    "Flatten": _LayerSpec("flatten", (), {"data_format": "channels_last"}),
    "Activation": _LayerSpec("activation", ("activation",)),
    "ReLU": _LayerSpec("re_lu", ("negative_slope",), {"max_value": None, "threshold": 0.0}),
    "LeakyReLU": _LayerSpec("leaky_re_lu", ("negative_slope",)),
    "Dropout": _LayerSpec("dropout", ("rate", "seed"), {"noise_shape": None}),
    "BatchNormalization": _LayerSpec(
        "batch_normalization",
        ("momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
         "moving_mean_initializer", "moving_variance_initializer"),
        {"axis": -1, "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
         "gamma_constraint": None, "synchronized": False},
        {"renorm": False, "renorm_clipping": None, "renorm_momentum": _ANY}),
}
# Keras writes these with every layer; gpucnn reads name and trainable, and computes in float32 only.
_BASE_OPTIONS = ("name", "trainable", "dtype")

_OPTIMIZER_OPTIONS = ("learning_rate", "weight_decay") + optimizers.CLIP_ARGUMENTS
_OPTIMIZER_FIXED = {"use_ema": False, "ema_overwrite_frequency": None, "loss_scale_factor": None,
                    "gradient_accumulation_steps": None}
_ADAM = (_OPTIMIZER_OPTIONS + ("beta_1", "beta_2", "epsilon"), {**_OPTIMIZER_FIXED, "amsgrad": False})
# AdamW is Adam with a weight decay that must be set: the same options and variables.
_OPTIMIZERS = {"Adam": _ADAM, "AdamW": _ADAM,
               "SGD": (_OPTIMIZER_OPTIONS + ("momentum", "nesterov"), _OPTIMIZER_FIXED)}
# Options that change nothing gpucnn computes: the optimizer's name, EMA momentum without EMA, and
# how Keras runs steps.
_OPTIMIZER_IGNORED = ("name", "ema_momentum")
_COMPILE_IGNORED = ("run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss")
# Keras' loss options gpucnn does not have; each loss class reads the options its get_config names
# (from_logits, and label_smoothing for the binary and categorical cross-entropies).
_LOSS_FIXED = {"label_smoothing": 0.0, "axis": -1, "reduction": "sum_over_batch_size",
               "ignore_class": None}
_LOSS_IGNORED = ("name",)
_METRIC_CLASSES = {"BinaryAccuracy": "binary_accuracy", "CategoricalAccuracy": "categorical_accuracy",
                   "SparseCategoricalAccuracy": "sparse_categorical_accuracy"}


# -- small helpers --------------------------------------------------------------------------------
def _keras_object(module, class_name, config, **extra):
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None,
            **extra}


def _dtype_policy():
    return _keras_object("keras", "DTypePolicy", {"name": "float32"})


def _corrupt(filepath, what, why, fix="save the model again, or restore the file from a backup"):
    return saving.CorruptModelFileError(f"{filepath!r} is not a valid Keras {what}: {why}. Fix: {fix}.")


def _unsupported(where, option, value, supported):
    return ValueError(f"{where}: option `{option}={value!r}` is not supported by gpucnn, which "
                      f"implements {supported}. Fix: change it in Keras and save again, or load the "
                      f"model in Keras.")


def _same(value, expected):
    if expected is _ANY:
        return True
    if isinstance(value, bool) or isinstance(expected, bool) or expected is None:
        return value is expected  # False == 0 in Python, but groups=False is not groups=1
    if isinstance(expected, list):
        # Keras also accepts one int for both axes (dilation_rate=1).
        values = list(value) if isinstance(value, (list, tuple)) else [value] * len(expected)
        return values == expected
    return value == expected


def _check_fixed(where, config, fixed):
    for option, expected in fixed.items():
        if option in config and not _same(config[option], expected):
            raise _unsupported(where, option, config[option], f"only {option}={expected!r}")


def _spec(layer):
    spec = _LAYERS.get(type(layer).__name__)
    if spec is None:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) has no Keras counterpart that "
                         f"gpucnn knows; it reads and writes {sorted(_LAYERS)}.")
    return spec


def _layer_keys(model):
    """Each layer's H5 group name in Keras' scheme: the class's snake-case key, made unique in order."""
    used = {}
    keys = []
    for layer in model.layers:
        stem = _spec(layer).snake_key
        keys.append(stem if stem not in used else f"{stem}_{used[stem] + 1}")
        used[stem] = used.get(stem, -1) + 1
    return keys


# -- gpucnn -> Keras ------------------------------------------------------------------------------
def _keras_initializer(name):
    name = initializers.serialize(initializers.get(name))
    class_name = "".join(part.capitalize() for part in name.split("_"))
    return _keras_object("keras.initializers", class_name,
                         {} if name in ("zeros", "ones") else {"seed": None})


def _keras_layer(layer):
    spec = _spec(layer)
    config = layer.get_config()
    keras_config = {"name": layer.name, "trainable": layer.trainable, "dtype": _dtype_policy()}
    for option in spec.arguments:
        value = config[option]
        keras_config[option] = _keras_initializer(value) if option.endswith("_initializer") else value
    keras_config.update(spec.fixed)
    shape = layer.input_shape  # a merge layer's: one per input
    input_shape = [[None, *s] for s in shape] if isinstance(shape, list) else [None, *shape]
    return _keras_object("keras.layers", type(layer).__name__, keras_config,
                         build_config={"input_shape": input_shape})


def _keras_compile_config(model):
    optimizer = model.optimizer
    arguments, fixed = _OPTIMIZERS[type(optimizer).__name__]
    settings = optimizer.get_config()
    optimizer_config = {"name": type(optimizer).__name__.lower(),
                        **{option: settings[option] for option in arguments}, **fixed}
    loss = model.loss
    # Keras' name when every option is at its default (from_logits, label_smoothing), else the class.
    settings = loss.get_config()
    loss_entry = (_keras_object("keras.losses", type(loss).__name__, settings) if any(settings.values())
                  else loss.name)
    return {"optimizer": _keras_object("keras.optimizers", type(optimizer).__name__, optimizer_config),
            "loss": loss_entry, "loss_weights": None, "metrics": list(model.metrics),
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}


def _keras_input_layer(model, name):
    return _keras_object("keras.layers", "InputLayer",
                         {"batch_shape": [None, *model.input_shape[1:]], "dtype": "float32", "sparse": False,
                          "name": name})


def _keras_functional_layers(model, graph):
    """Keras' Functional ``layers`` from gpucnn's graph config: each layer's Keras config with its
    name and calls, every tensor a call reads serialized as Keras serializes a KerasTensor."""
    shapes = {layer.name: layer.output_shape for layer in model.layers}
    shapes[graph["input"]["name"]] = tuple(graph["input"]["shape"])

    def tensor(reference):
        name, index = reference
        return {"class_name": "__keras_tensor__",
                "config": {"shape": [None, *shapes[name]], "dtype": "float32",
                           "keras_history": [name, index, 0]}}

    entries = [{**_keras_input_layer(model, graph["input"]["name"]), "name": graph["input"]["name"],
                "inbound_nodes": []}]
    for layer, layer_graph in zip(model.layers, graph["layers"]):
        calls = [{"args": [[tensor(r) for r in refs] if layer.merges_inputs else tensor(refs[0])],
                  "kwargs": {}} for refs in layer_graph["inbound_nodes"]]
        entries.append({**_keras_layer(layer), "name": layer.name, "inbound_nodes": calls})
    return entries


def _keras_config(model):
    batch_shape = [None, *model.input_shape[1:]]
    if _is_functional(model):
        graph = model.get_config()
        config = {"name": model.name, "trainable": model.trainable,
                  "layers": _keras_functional_layers(model, graph),
                  "input_layers": [graph["input"]["name"], 0, 0], "output_layers": [*graph["output"], 0]}
        entry = {**_keras_object("keras.src.models.functional", "Functional", config),
                 "registered_name": "Functional", "build_config": {"input_shape": None}}
    else:
        config = {"name": model.name, "trainable": model.trainable, "dtype": _dtype_policy(),
                  "layers": [_keras_input_layer(model, "input_layer")]
                  + [_keras_layer(layer) for layer in model.layers],
                  "build_input_shape": batch_shape}
        entry = _keras_object("keras", "Sequential", config, build_config={"input_shape": batch_shape})
    if model.loss is not None:
        entry["compile_config"] = _keras_compile_config(model)
    return entry


def _optimizer_variables(model):
    """The optimizer's variables in Keras' order, from gpucnn's flat state (zeros when it has none
    yet, which is what a fresh optimizer holds)."""
    from gpucnn.backend import current

    optimizer = model.optimizer
    shapes = [w.shape for w in model.trainable_weights]
    sizes = [int(np.prod(shape)) for shape in shapes]
    flat = {name: current().to_numpy(optimizer.state[name]) if name in optimizer.state else None
            for name in optimizer.state_names()}
    if any(array is None or array.size != sum(sizes) for array in flat.values()):
        # Not built for these weights: gpucnn starts such a state from zeros at the next fit.
        flat = {name: np.zeros(sum(sizes), np.float32) for name in flat}
    variables = [np.array(optimizer.iterations, np.int64), np.array(optimizer.learning_rate, np.float32)]
    offsets = np.cumsum([0] + sizes)
    for start, size, shape in zip(offsets, sizes, shapes):
        for name in optimizer.state_names():  # Keras interleaves the states per weight
            variables.append(np.asarray(flat[name][start:start + size], np.float32).reshape(shape))
    return variables


def _is_functional(model):
    from gpucnn.functional import Functional

    return isinstance(model, Functional)


def _write_h5(model, stream):
    with h5py.File(stream, "w") as h5:
        h5.create_group("vars").attrs["name"] = model.name
        if _is_functional(model):
            # Keras' Functional models list their InputLayer among the layers: a group without variables.
            h5.create_group("layers/input_layer/vars").attrs["name"] = model.input.name
        for key, layer in zip(_layer_keys(model), model.layers):
            group = h5.create_group(f"layers/{key}/vars")
            group.attrs["name"] = layer.name
            for index, weight in enumerate(layer.weights):
                group[str(index)] = weight.numpy()
        if model.loss is not None:
            group = h5.create_group("optimizer/vars")
            group.attrs["name"] = type(model.optimizer).__name__.lower()
            for index, array in enumerate(_optimizer_variables(model)):
                group[str(index)] = array


def _h5_bytes(model):
    stream = io.BytesIO()
    _write_h5(model, stream)
    return stream.getvalue()


def save_model(model, filepath):
    """Write ``model`` as a Keras 3 ``.keras`` archive, atomically."""
    from gpucnn import __version__

    model.build()
    metadata = {"keras_version": KERAS_VERSION_WRITTEN, "gpucnn_version": __version__,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    config = json.dumps(_keras_config(model))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(METADATA_NAME, json.dumps(metadata))
        zf.writestr(CONFIG_NAME, config)
        zf.writestr(WEIGHTS_NAME, _h5_bytes(model))
    saving.write_atomically(filepath, archive.getvalue())


def save_weights(model, filepath):
    """Write ``model``'s weights (and its optimizer's state when compiled, as Keras does) as a Keras
    ``.weights.h5`` file, atomically."""
    model.build()
    saving.write_atomically(filepath, _h5_bytes(model))


# -- Keras -> gpucnn ------------------------------------------------------------------------------
def _read_h5(source, filepath, what):
    """Every dataset of an H5 file as ``{path: ndarray}``, read at once so that a damaged file fails
    here with a clear error instead of in the middle of setting weights."""
    arrays = {}

    def collect(path, item):
        if isinstance(item, h5py.Dataset):
            arrays[path] = item[()]

    try:
        with h5py.File(source, "r") as h5:
            legacy = "layer_names" in h5.attrs or "model_weights" in h5
            if not legacy:
                h5.visititems(collect)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise _corrupt(filepath, what, f"unreadable HDF5 data ({error})") from None
    if legacy:
        raise _corrupt(filepath, what, "it is a Keras 2 (legacy HDF5) file",
                       "load it in Keras and save it again as .keras or .weights.h5")
    if arrays and not any(path.startswith(("layers/", "vars/", "optimizer/")) for path in arrays):
        raise _corrupt(filepath, what, "the HDF5 file has no Keras layer variables (layers/<name>/vars)",
                       "pass a file written by Keras' save_weights or model.save")
    return arrays


def _numbered(arrays, prefix):
    """The datasets ``prefix/0, 1, ...`` in order ([] when there is no such group)."""
    count = sum(1 for path in arrays if path.startswith(prefix + "/") and "/" not in path[len(prefix) + 1:])
    if not count:
        return []
    try:
        return [arrays[f"{prefix}/{index}"] for index in range(count)]
    except KeyError as missing:
        raise KeyError(f"{prefix} is not numbered 0..{count - 1} (missing {missing})") from None


def _set_weights(model, arrays, filepath):
    """Set every layer's weights from Keras' H5 layout, all shapes checked before any is set."""
    model.build()
    keys = _layer_keys(model)
    saved_layers = {path.split("/")[1] for path in arrays if path.startswith("layers/")}
    extra = sorted(saved_layers - set(keys))
    if extra:
        raise ValueError(f"{filepath!r} holds variables of layers {extra} that this model does not have "
                         f"(its layers are {keys}). Fix: load weights saved from a model with the same "
                         f"layers in the same order.")
    values = []
    for key, layer in zip(keys, model.layers):
        try:
            saved = _numbered(arrays, f"layers/{key}/vars")
        except KeyError as error:
            raise _corrupt(filepath, "weights file", error.args[0]) from None
        expected = [w.shape for w in layer.weights]
        found = [tuple(np.shape(a)) for a in saved]
        if found != expected:
            raise ValueError(f"{filepath!r} does not match this model: layer '{layer.name}' "
                             f"({type(layer).__name__}, group layers/{key}) has weights of shapes "
                             f"{expected}, the file holds {found}. Fix: load weights saved from a model "
                             f"with the same layers and shapes.")
        values.extend(np.asarray(a, np.float32) for a in saved)
    model.set_weights(values)


def _optimizer_variables_read(model, arrays, filepath):
    """Keras' ``optimizer/vars`` checked against the compiled model's optimizer (the state of one
    Keras never built filled in with its zeros), or [] when the file has none."""
    try:
        saved = _numbered(arrays, "optimizer/vars")
    except KeyError as error:
        raise _corrupt(filepath, "weights file", error.args[0]) from None
    if not saved:
        return []
    optimizer = model.optimizer
    names = optimizer.state_names()
    shapes = [w.shape for w in model.trainable_weights]
    expected = [(), ()] + [shape for shape in shapes for _ in names]
    found = [tuple(np.shape(a)) for a in saved]
    if found == [(), ()]:
        # An optimizer Keras never built (compiled, not trained): only its iteration and learning
        # rate, and gpucnn's fresh optimizer starts from the zeros Keras would build.
        saved = saved + [np.zeros(shape, np.float32) for shape in expected[2:]]
    elif found != expected:
        raise ValueError(f"{filepath!r}: the saved optimizer state holds arrays of shapes {found}, but "
                         f"{type(optimizer).__name__} over this model's trainable weights keeps "
                         f"{expected} (iteration, learning rate, then {list(names) or 'nothing'} per "
                         f"weight). Fix: compile with the optimizer the file was saved with, or read "
                         f"the file into an uncompiled model (load_model(..., compile=False)).")
    return saved


def _set_optimizer_state(model, saved):
    """Set the compiled model's optimizer from Keras' optimizer variables (checked; none: nothing)."""
    if not saved:
        return
    optimizer = model.optimizer
    names = optimizer.state_names()
    shapes = [w.shape for w in model.trainable_weights]
    flat = {name: np.concatenate([np.ravel(a) for a in saved[2 + index::len(names)]]).astype(np.float32)
            if shapes else np.zeros(0, np.float32) for index, name in enumerate(names)}
    if int(saved[0]) or any(array.any() for array in flat.values()):
        # A fresh optimizer's zeros are what gpucnn's optimizer starts from anyway: it stays unbuilt.
        saving.set_optimizer_state(model, int(saved[0]), flat)
    learning_rate = float(saved[1])
    # Keras keeps the rate as a float32 variable: it differs from the config's value only when a
    # callback changed it, and then it is the rate training continues with.
    if np.float32(optimizer.learning_rate) != np.float32(learning_rate):
        optimizer.learning_rate = learning_rate


def _initializer(where, option, value):
    name = value.get("class_name") if isinstance(value, dict) else value
    try:
        return initializers.serialize(initializers.get(name, option))
    except ValueError:
        raise _unsupported(where, option, name, f"the initializers {list(initializers.NAMES)}") \
            from None


def _activation(where, value):
    if isinstance(value, str) and value in activations.NAMES:
        return value
    raise _unsupported(where, "activation", value, f"the activations {list(activations.NAMES)}")


def _check_dtype(where, value):
    name = value.get("config", {}).get("name") if isinstance(value, dict) else value
    if name not in (None, "float32"):
        raise _unsupported(where, "dtype", name, "only float32")


def _gpucnn_layer(entry, filepath):
    class_name = entry.get("class_name") if isinstance(entry, dict) else None
    config = (entry.get("config") if isinstance(entry, dict) else None) or {}
    where = f"{filepath!r}: layer '{config.get('name', '?')}' ({class_name})"
    if class_name not in _LAYERS:
        raise ValueError(f"{where}: Keras layer class {class_name!r} is not supported by gpucnn, which "
                         f"has {sorted(_LAYERS) + ['InputLayer']}. Fix: rebuild the model from those "
                         f"layers in Keras, or load it in Keras.")
    spec = _LAYERS[class_name]
    _check_dtype(where, config.get("dtype"))
    unknown = sorted(set(config) - set(_BASE_OPTIONS) - set(spec.arguments) - set(spec.fixed)
                     - set(spec.tolerated))
    if unknown:
        raise ValueError(f"{where}: option(s) {unknown} are not known to gpucnn, which reads "
                         f"{sorted(set(spec.arguments) | set(spec.fixed))}. Fix: save the model with "
                         f"Keras options gpucnn implements, or load it in Keras.")
    _check_fixed(where, config, {**spec.fixed, **spec.tolerated})
    arguments = {"name": config["name"]} if "name" in config else {}
    arguments["trainable"] = bool(config.get("trainable", True))
    for option in spec.arguments:
        if option not in config:
            continue
        value = config[option]
        if option.endswith("_initializer"):
            value = _initializer(where, option, value)
        elif option == "activation":
            value = _activation(where, value)
        arguments[option] = value
    return {"class_name": class_name, "config": arguments}


def _input_shape(entry, filepath):
    config = entry.get("config") or {}
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if not isinstance(shape, list) or len(shape) < 2:
        raise _corrupt(filepath, "archive", f"the InputLayer has no batch_shape ({shape!r})")
    where = f"{filepath!r}: the InputLayer"
    _check_dtype(where, config.get("dtype"))
    _check_fixed(where, config, {"sparse": False, "ragged": False})
    return shape[1:]


def _sequential_from_keras(entry, filepath):
    """gpucnn's Sequential config from a Keras Sequential config."""
    config = entry.get("config") or {}
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise _corrupt(filepath, "archive", "the Sequential config has no list of layers")
    input_shape = config.get("build_input_shape") or (entry.get("build_config") or {}).get("input_shape")
    input_shape = list(input_shape[1:]) if input_shape else None
    gpucnn_layers = []
    for layer_entry in layers:
        if isinstance(layer_entry, dict) and layer_entry.get("class_name") == "InputLayer":
            input_shape = _input_shape(layer_entry, filepath)
        else:
            gpucnn_layers.append(_gpucnn_layer(layer_entry, filepath))
    if input_shape is None or any(not isinstance(s, int) for s in input_shape):
        raise ValueError(f"{filepath!r}: the Keras model has no fixed input shape ({input_shape!r}); "
                         f"gpucnn builds models for one sample shape. Fix: give the Keras model an "
                         f"Input(shape=(height, width, channels)) and save it again.")
    return {"name": config.get("name"), "input_shape": input_shape, "layers": gpucnn_layers}


def _keras_tensor(value, where, filepath):
    """``[layer name, call index]`` of one serialized Keras tensor that a layer call reads."""
    is_tensor = isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"
    config = value.get("config") if is_tensor else None
    history = config.get("keras_history") if isinstance(config, dict) else None
    if not (isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in history[1:])):
        raise _corrupt(filepath, "archive", f"{where} reads {value!r}, which is not a Keras tensor "
                                            f"(a __keras_tensor__ with keras_history [layer, node, index])")
    if history[2] != 0:
        raise _corrupt(filepath, "archive", f"{where} reads output {history[2]} of layer "
                                            f"{history[0]!r}, whose layers have one output each")
    return history[:2]


def _layer_calls(entry, merge, where, filepath):
    """The calls a Keras Functional config records for one layer (``inbound_nodes``), each as the list
    of ``[layer name, call index]`` it reads: one tensor, or the list a merge layer joins."""
    calls = []
    for node in entry.get("inbound_nodes") or []:
        args = node.get("args") if isinstance(node, dict) else None
        kwargs = node.get("kwargs", {}) if isinstance(node, dict) else None
        if not isinstance(args, list) or len(args) != 1 or not isinstance(kwargs, dict):
            raise _corrupt(filepath, "archive", f"{where} has a call {node!r} that is not one "
                                                f"{'list of tensors' if merge else 'tensor'} (args, kwargs)")
        for option, value in kwargs.items():
            if option != "mask" or value is not None:
                raise _unsupported(f"{where}, call {len(calls)}", option, value,
                                   "layer calls on their input tensors only (mask=None)")
        tensors = args[0]
        if merge != isinstance(tensors, list) or (merge and len(tensors) < 2):
            raise ValueError(f"{where}: call {len(calls)} reads {'one tensor' if merge else 'a list'}, but "
                             f"{'a merge layer joins a list of at least 2' if merge else 'the layer takes one'}"
                             f". Fix: save a model that calls the layer as Keras' API does.")
        calls.append([_keras_tensor(t, where, filepath) for t in (tensors if merge else [tensors])])
    if not calls:
        raise _corrupt(filepath, "archive", f"{where} is never called in the model's graph")
    return calls


def _one_endpoint(value, what, filepath):
    """The ``[layer, node]`` of a Functional config's ``input_layers`` / ``output_layers``: one tensor
    ([layer, node, index], or a list of one), as gpucnn models have one input and one output."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    if isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], list)):
        raise ValueError(f"{filepath!r}: the Keras model has several {what} ({value!r}); gpucnn models "
                         f"have one input and one output. Fix: save a model with one of each, or load it "
                         f"in Keras.")
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)):
        raise _corrupt(filepath, "archive", f"the Functional config's {what} is {value!r}, not "
                                            f"[layer, node, index]")
    return _keras_tensor({"class_name": "__keras_tensor__", "config": {"keras_history": value}},
                         f"the model's {what}", filepath)


def _check_references(model_input, layers, output, filepath):
    """Every ``[layer, call]`` a call reads, and the output, must be a call the config has (the input
    counts as one); the order of the calls (and cycles) is ``Functional.from_config``'s to check."""
    calls = {entry["config"]["name"]: len(entry["inbound_nodes"]) for entry in layers}
    reads = [(f"layer {entry['config']['name']!r} call {index}", reference) for entry in layers
             for index, references in enumerate(entry["inbound_nodes"]) for reference in references]
    for where, (name, index) in reads + [("the model's output", output)]:
        # The input is a tensor calls read, but not an output of the model.
        count = 1 if name == model_input[0] and where != "the model's output" else calls.get(name, 0)
        if index >= count:
            raise _corrupt(filepath, "archive", f"{where} reads {[name, index]}, which is not a layer "
                                                f"call of the Functional config")


def _functional_from_keras(entry, filepath):
    """gpucnn's Functional config (``gpucnn.Model(inputs, outputs).get_config()``: the input, the layers
    with the calls each makes as ``inbound_nodes`` of ``[layer name, call index]``, the output) from a
    Keras Functional config (``keras/src/models/functional.py``: ``layers`` with ``inbound_nodes`` of
    serialized Keras tensors, ``input_layers``, ``output_layers``), every layer, call and reference
    checked."""
    from gpucnn.layers import _CLASSES

    config = entry.get("config") or {}
    layers = config.get("layers")
    if not isinstance(layers, list) or not all(isinstance(e, dict) for e in layers):
        raise _corrupt(filepath, "archive", "the Functional config has no list of layers")
    model_input = _one_endpoint(config.get("input_layers"), "inputs", filepath)
    output = _one_endpoint(config.get("output_layers"), "outputs", filepath)
    names = [layer_entry.get("name", (layer_entry.get("config") or {}).get("name")) for layer_entry in layers]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated or not all(isinstance(name, str) for name in names):
        raise _corrupt(filepath, "archive", f"the Functional config's layer names {names} are not unique "
                                            f"strings")
    inputs = [name for name, e in zip(names, layers) if e.get("class_name") == "InputLayer"]
    if inputs != [model_input[0]] or model_input[1] != 0:
        raise ValueError(f"{filepath!r}: the Keras model has the input layers {inputs} and takes "
                         f"{model_input}; gpucnn models have one input. Fix: save a model with one "
                         f"keras.Input, or load it in Keras.")
    input_entry = layers[names.index(model_input[0])]
    gpucnn_layers = []
    for name, layer_entry in zip(names, layers):
        if layer_entry is input_entry:
            continue
        layer = _gpucnn_layer(layer_entry, filepath)
        where = f"{filepath!r}: layer {name!r} ({layer['class_name']})"
        if layer["config"].get("name") != name:
            raise _corrupt(filepath, "archive", f"layer {name!r} is named {layer['config'].get('name')!r} "
                                                f"in its config")
        merge = _CLASSES[layer["class_name"]].merges_inputs
        gpucnn_layers.append({**layer, "inbound_nodes": _layer_calls(layer_entry, merge, where, filepath)})
    _check_references(model_input, gpucnn_layers, output, filepath)
    return {"name": config.get("name"),
            "input": {"name": model_input[0], "shape": _input_shape(input_entry, filepath)},
            "layers": gpucnn_layers, "output": output}


def _functional_model(gpucnn_config):
    from gpucnn.functional import Functional

    return Functional.from_config(gpucnn_config)


def _sequential_model(gpucnn_config):
    from gpucnn.models import Sequential

    return Sequential.from_config(gpucnn_config)


# Keras model classes by config class name: (the reader of the Keras config into gpucnn's config, the
# maker of the gpucnn model from that).
_MODEL_READERS = {"Sequential": (_sequential_from_keras, _sequential_model),
                  "Functional": (_functional_from_keras, _functional_model),
                  "Model": (_functional_from_keras, _functional_model)}


def _optimizer(entry):
    if isinstance(entry, str):
        return optimizers.get(entry)
    class_name = entry.get("class_name") if isinstance(entry, dict) else None
    where = f"The compiled optimizer ({class_name or entry!r})"
    if class_name not in _OPTIMIZERS:
        raise ValueError(f"{where} is not supported by gpucnn, which has {sorted(_OPTIMIZERS)}.")
    arguments, fixed = _OPTIMIZERS[class_name]
    config = entry.get("config") or {}
    unknown = sorted(set(config) - set(arguments) - set(fixed) - set(_OPTIMIZER_IGNORED))
    if unknown:
        raise ValueError(f"{where}: option(s) {unknown} are not known to gpucnn, which reads "
                         f"{sorted(set(arguments) | set(fixed))}.")
    _check_fixed(where, config, fixed)
    if isinstance(config.get("learning_rate"), dict):
        raise _unsupported(where, "learning_rate", config["learning_rate"].get("class_name"),
                           "a constant float learning rate (callbacks can change it)")
    return optimizers.deserialize({"class_name": class_name,
                                   "config": {k: config[k] for k in arguments if k in config}})


def _loss(entry):
    if isinstance(entry, dict) and entry.get("class_name") == "function":
        entry = entry.get("config")
    if isinstance(entry, str):
        try:
            return losses.get(entry)
        except ValueError:
            raise _unsupported("The compiled loss", "loss", entry, f"the losses {list(losses.NAMES)}") \
                from None
    class_name = entry.get("class_name") if isinstance(entry, dict) else entry
    classes = {type(losses.get(name)).__name__: type(losses.get(name)) for name in losses.NAMES}
    if class_name not in classes:
        raise _unsupported("The compiled loss", "loss", class_name, f"the losses {sorted(classes)}")
    config = entry.get("config") or {}
    where = f"The compiled loss ({class_name})"
    arguments = classes[class_name]().get_config()
    unknown = sorted(set(config) - set(arguments) - set(_LOSS_FIXED) - set(_LOSS_IGNORED) - {"dtype"})
    if unknown:
        raise ValueError(f"{where}: option(s) {unknown} are not known to gpucnn, which reads "
                         f"{sorted(set(arguments) | set(_LOSS_FIXED))}.")
    _check_dtype(where, config.get("dtype"))
    _check_fixed(where, config, {k: v for k, v in _LOSS_FIXED.items() if k not in arguments})
    return classes[class_name](**{option: config[option] for option in arguments if option in config})


def _metrics(entry):
    if entry is None:
        return None
    if not isinstance(entry, list):
        raise _unsupported("The compiled metrics", "metrics", entry, "a list of accuracy metrics")
    names = []
    for metric in entry:
        if isinstance(metric, dict) and metric.get("class_name") in _METRIC_CLASSES:
            threshold = (metric.get("config") or {}).get("threshold", 0.5)
            if threshold != 0.5:
                raise _unsupported("The compiled metric BinaryAccuracy", "threshold", threshold,
                                   "only threshold=0.5")
            metric = _METRIC_CLASSES[metric["class_name"]]
        if not isinstance(metric, str):
            raise _unsupported("The compiled metrics", "metrics", metric,
                               f"the names 'accuracy', 'acc' and {sorted(_METRIC_CLASSES.values())}")
        names.append(metric)
    return names


def _compile(model, compile_config, filepath):
    unknown = sorted(set(compile_config) - {"optimizer", "loss", "metrics", "loss_weights",
                                            "weighted_metrics"} - set(_COMPILE_IGNORED))
    try:
        if unknown:
            raise ValueError(f"compile option(s) {unknown} are not known to gpucnn.")
        _check_fixed("The compile config", compile_config, {"loss_weights": None, "weighted_metrics": None})
        model.compile(optimizer=_optimizer(compile_config.get("optimizer")),
                      loss=_loss(compile_config.get("loss")),
                      metrics=_metrics(compile_config.get("metrics")))
    except (ValueError, TypeError) as error:
        raise type(error)(f"{filepath!r}: {error} Or: load it with compile=False and compile the model "
                          f"in gpucnn.") from None


def _read_archive(filepath):
    """(config, {h5 path: array}) of a ``.keras`` archive, every problem a CorruptModelFileError."""
    what = ".keras archive"
    data = saving.read_bytes(filepath)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            missing = [name for name in (METADATA_NAME, CONFIG_NAME) if name not in names]
            if missing:
                raise _corrupt(filepath, what, f"the zip file lacks {missing} (it is not a Keras archive)",
                               "pass a file written by Keras' model.save('….keras') or gpucnn's")
            if WEIGHTS_NAME not in names:
                why = ("its weights are in model.weights.npz, which gpucnn does not read"
                       if "model.weights.npz" in names else f"the archive lacks {WEIGHTS_NAME}")
                raise _corrupt(filepath, what, why, "save the model in Keras with the default "
                                                    "weights format (HDF5)")
            metadata, config = (json.loads(zf.read(name).decode("utf-8"))
                                for name in (METADATA_NAME, CONFIG_NAME))
            weights = zf.read(WEIGHTS_NAME)
    except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _corrupt(filepath, what, f"unreadable zip archive ({error}); the file is truncated, "
                                       f"damaged or of another kind") from None
    version = str(metadata.get("keras_version", "")) if isinstance(metadata, dict) else ""
    major = version.split(".")[0]
    if not major.isdigit():
        raise _corrupt(filepath, what, f"metadata.json names no Keras version ({metadata!r})")
    if int(major) != KERAS_MAJOR_VERSION:
        raise _corrupt(filepath, what, f"it was written by Keras {version}, a format version gpucnn "
                                       f"does not read (it reads Keras {KERAS_MAJOR_VERSION} archives)",
                       f"save it with Keras {KERAS_MAJOR_VERSION}")
    if not isinstance(config, dict):
        raise _corrupt(filepath, what, "config.json does not hold a model config")
    return config, _read_h5(io.BytesIO(weights), filepath, f"{what} ({WEIGHTS_NAME})")


def load_model(filepath, compile=True):
    """A gpucnn model from a Keras 3 ``.keras`` archive (weights, compile settings, optimizer state)."""
    filepath = saving.check_filepath(filepath)
    config, arrays = _read_archive(filepath)
    class_name = config.get("class_name")
    if class_name not in _MODEL_READERS:
        raise ValueError(f"{filepath!r} holds a Keras model of class {class_name!r}; gpucnn reads "
                         f"Sequential and Functional models. Fix: rebuild it as keras.Sequential or "
                         f"keras.Model(inputs, outputs), or load it in Keras.")
    read, make = _MODEL_READERS[class_name]
    gpucnn_config = read(config, filepath)
    try:
        model = make(gpucnn_config)
    except (ValueError, TypeError) as error:
        # gpucnn's layers refuse what they cannot compute (e.g. Dense on a 4-D input, which Keras
        # applies to the last axis): the same refusal, naming the file.
        raise type(error)(f"{filepath!r}: {error}") from None
    _set_weights(model, arrays, filepath)
    if compile and config.get("compile_config"):
        _compile(model, config["compile_config"], filepath)
        _set_optimizer_state(model, _optimizer_variables_read(model, arrays, filepath))
    return model


def load_weights(model, filepath):
    """Set ``model``'s weights from a Keras ``.weights.h5`` file or ``.keras`` archive, and its
    optimizer's state when the model is compiled and the file has one (as Keras does)."""
    filepath = saving.check_filepath(filepath)
    if filepath.endswith(".keras"):
        _, arrays = _read_archive(filepath)
    else:
        arrays = _read_h5(io.BytesIO(saving.read_bytes(filepath)), filepath, ".weights.h5 file")
    model.build()
    # Both checked before either is set: a refused file leaves the model as it was.
    optimizer_variables = _optimizer_variables_read(model, arrays, filepath) if model.loss is not None else []
    _set_weights(model, arrays, filepath)
    _set_optimizer_state(model, optimizer_variables)
