"""Keras 3 files both ways (gpucnn.keras_format): files written by real Keras (tests/data/keras, made by
make_keras_files.py) load and predict what Keras predicted, and training continues from the optimizer
state Keras saved; gpucnn -> .keras / .weights.h5 -> gpucnn round trips are bit-identical; bad files and
options gpucnn does not have are refused with errors that name the file, layer and option.  (The other
direction, real Keras reading gpucnn's files, is tests/data/keras/check_in_keras.py, run on demand.)"""
import importlib.util
import io
import json
import os
import pathlib
import zipfile

import h5py
import numpy as np
import pytest

import gpucnn
from gpucnn import keras_format, losses, optimizers, saving, utils
from gpucnn.layers import (
    Activation,
    Add,
    AveragePooling2D,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    LeakyReLU,
    MaxPooling2D,
    ReLU,
    ZeroPadding2D,
)
from gpucnn.saving import CorruptModelFileError

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERAS_FILES = ROOT / "tests" / "data" / "keras"
KERAS_FUNCTIONAL = ["residual_functional", "concat_functional"]
KERAS_MODELS = ["sigmoid_cnn", "softmax_cnn", "sgd_dense", "pooling_cnn", "mse_gap", "clipvalue_logits",
                *KERAS_FUNCTIONAL]
# The models without Dropout: their files hold Keras' weights after one more training step.
KERAS_STEPPED = [name for name in KERAS_MODELS if name != "sigmoid_cnn"]
# Keras sums in another order than gpucnn: float32 results differ in the last bits.
TOLERANCE = 1e-5


def keras_file(name):
    return KERAS_FILES / name


def keras_config(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("config.json"))


def h5_arrays(source):
    """Every dataset of an H5 file, read with h5py directly (independently of gpucnn's reader)."""
    arrays = {}
    with h5py.File(source, "r") as h5:
        h5.visititems(lambda path, item: arrays.update({path: item[()]})
                      if isinstance(item, h5py.Dataset) else None)
    return arrays


def archive_h5(path):
    with zipfile.ZipFile(path) as zf:
        return h5_arrays(io.BytesIO(zf.read("model.weights.h5")))


def rewrite_archive(source, target, edit_config=None, edit_metadata=None, members=None):
    """A copy of the .keras archive ``source`` with its JSON members edited (or other members)."""
    with zipfile.ZipFile(source) as zf:
        contents = {name: zf.read(name) for name in zf.namelist()}
    for name, edit in (("config.json", edit_config), ("metadata.json", edit_metadata)):
        if edit:
            document = json.loads(contents[name])
            edit(document)
            contents[name] = json.dumps(document).encode()
    with zipfile.ZipFile(target, "w") as zf:
        for name, data in (members or contents).items():
            zf.writestr(name, data)
    return target


def layer_config(document, class_name):
    return next(entry["config"] for entry in document["config"]["layers"]
                if entry["class_name"] == class_name)


# -- files written by Keras ----------------------------------------------------------------------
@pytest.mark.parametrize("name", KERAS_MODELS)
def test_keras_archive_predicts_what_keras_predicted(cpu, name):
    expected = np.load(keras_file(f"{name}.npz"))
    model = gpucnn.load_model(keras_file(f"{name}.keras"))
    np.testing.assert_allclose(model.predict(expected["x"]), expected["y"], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", KERAS_MODELS)
def test_keras_compile_config_and_optimizer_state_are_read(cpu, name):
    path = keras_file(f"{name}.keras")
    compiled = keras_config(path)["compile_config"]
    saved = archive_h5(path)
    model = gpucnn.load_model(path)
    settings = compiled["optimizer"]["config"]
    assert type(model.optimizer).__name__ == compiled["optimizer"]["class_name"]
    for option, value in model.optimizer.get_config().items():
        assert value == settings[option], option
    loss = compiled["loss"]
    if isinstance(loss, dict):
        assert type(model.loss).__name__ == loss["class_name"]
        assert model.loss.get_config() == {k: loss["config"][k] for k in model.loss.get_config()}
    else:
        assert model.loss.name == {"mse": "mean_squared_error"}.get(loss, loss)
    assert model.metrics == compiled["metrics"]
    assert model.optimizer.iterations == int(saved["optimizer/vars/0"]) > 0
    names = model.optimizer.state_names()
    per_weight = [saved[f"optimizer/vars/{i}"] for i in range(2, 2 + len(names) * len(model.weights))
                  if f"optimizer/vars/{i}" in saved]
    for index, name_ in enumerate(names):  # Keras interleaves the states per trainable weight
        flat = np.concatenate([a.ravel() for a in per_weight[index::len(names)]])
        np.testing.assert_array_equal(model.optimizer.state[name_], flat)
        assert flat.any()


@pytest.mark.parametrize("name", KERAS_STEPPED)
def test_training_continues_from_keras_optimizer_state(cpu, name):
    expected = np.load(keras_file(f"{name}.npz"))
    model = gpucnn.load_model(keras_file(f"{name}.keras"))
    model.train_on_batch(expected["x"], expected["labels"])
    after = [expected[f"after_step_{i}"] for i in range(len(model.weights))]
    for weight, keras_weight in zip(model.get_weights(), after):
        np.testing.assert_allclose(weight, keras_weight, atol=1e-6, rtol=0)


def test_keras_optimizer_never_built_loads_as_a_fresh_one(cpu):
    path = keras_file("compiled_unfit.keras")
    assert sorted(p for p in archive_h5(path) if p.startswith("optimizer/")) == [
        "optimizer/vars/0", "optimizer/vars/1"]
    model = gpucnn.load_model(path)
    assert (type(model.optimizer), model.optimizer.iterations, model.optimizer.learning_rate) == \
        (optimizers.Adam, 0, 0.0010000000474974513)
    assert model.metrics == ["categorical_accuracy"] and model.loss.name == "categorical_crossentropy"
    np.testing.assert_array_equal(model.get_weights()[1], archive_h5(path)["layers/dense/vars/1"])


def test_keras_weights_file_loads_into_a_gpucnn_model_by_layer_class_not_name(cpu):
    expected = np.load(keras_file("sgd_dense.npz"))
    # Other layer names than the Keras model's: Keras keys the H5 groups by class (dense, dense_1).
    model = gpucnn.Sequential([Flatten(input_shape=(4, 3, 1), name="f"), Dense(5, "relu", name="a"),
                               Dense(1, "sigmoid", name="b")])
    model.load_weights(keras_file("sgd_dense.weights.h5"))
    np.testing.assert_allclose(model.predict(expected["x"]), expected["y"], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", KERAS_MODELS)
def test_keras_weights_file_and_archive_weights(cpu, name):
    expected = np.load(keras_file(f"{name}.npz"))
    model = gpucnn.load_model(keras_file(f"{name}.keras"), compile=False)
    assert model.loss is None
    for source in (f"{name}.weights.h5", f"{name}.keras"):  # Keras' load_weights takes both
        model.set_weights([np.zeros(w.shape, np.float32) for w in model.weights])
        model.load_weights(keras_file(source))
        np.testing.assert_allclose(model.predict(expected["x"]), expected["y"], atol=TOLERANCE, rtol=0)


def test_keras_layer_configs_become_gpucnn_layers(cpu):
    model = gpucnn.load_model(keras_file("softmax_cnn.keras"))
    document = keras_config(keras_file("softmax_cnn.keras"))
    keras_layers = [entry for entry in document["config"]["layers"] if entry["class_name"] != "InputLayer"]
    assert [type(layer).__name__ for layer in model.layers] == [e["class_name"] for e in keras_layers]
    assert [layer.name for layer in model.layers] == [e["config"]["name"] for e in keras_layers]
    assert model.input_shape == (None, 8, 7, 3)
    conv = model.layers[0]
    assert (conv.filters, conv.kernel_size, conv.strides, conv.padding, conv.use_bias) == \
        (5, (2, 3), (1, 2), "same", False)
    assert model.layers[1].negative_slope == pytest.approx(0.1)
    pool = model.layers[2]
    assert (pool.pool_size, pool.strides, pool.padding) == ((3, 3), (2, 2), "same")
    norm = model.layers[3]
    assert (norm.momentum, norm.epsilon) == (0.9, 0.01)


def test_keras_pooling_and_padding_configs_become_gpucnn_layers(cpu):
    model = gpucnn.load_model(keras_file("pooling_cnn.keras"))
    pads = [layer.padding for layer in model.layers if isinstance(layer, ZeroPadding2D)]
    assert pads == [((1, 1), (2, 1)), ((1, 1), (1, 1)), ((0, 0), (1, 1))]  # Keras' three forms
    pools = [(layer.pool_size, layer.strides, layer.padding) for layer in model.layers
             if isinstance(layer, AveragePooling2D)]
    assert pools == [((3, 3), (2, 2), "same"), ((2, 1), (2, 1), "valid")]
    assert model.layers[7].keepdims is True and model.layers[1].activation == "tanh"
    assert type(model.optimizer) is optimizers.AdamW
    assert (model.optimizer.weight_decay, model.optimizer.clipnorm) == (0.05, 0.05)
    assert model.loss.label_smoothing == 0.1


@pytest.mark.parametrize("class_name", ["AveragePooling2D", "GlobalAveragePooling2D", "ZeroPadding2D"])
def test_channels_first_pooling_and_padding_are_refused_by_name(cpu, tmp_path, class_name):
    path = rewrite_archive(keras_file("pooling_cnn.keras"), tmp_path / "edited.keras",
                           edit_config=edit_layer(class_name, data_format="channels_first"))
    with pytest.raises(ValueError, match=rf"\({class_name}\): option `data_format='channels_first'`.*"
                                         r"only data_format='channels_last'"):
        gpucnn.load_model(path)


# -- Functional models ---------------------------------------------------------------------------
def keras_calls(entry):
    """The [layer, call] references of each call of a Keras Functional layer entry, read directly."""
    calls = []
    for node in entry["inbound_nodes"]:
        tensors = node["args"][0] if isinstance(node["args"][0], list) else [node["args"][0]]
        calls.append([t["config"]["keras_history"][:2] for t in tensors])
    return calls


@pytest.mark.parametrize("name", KERAS_FUNCTIONAL)
def test_keras_functional_config_becomes_gpucnn_graph_config(cpu, name):
    path = keras_file(f"{name}.keras")
    document = keras_config(path)
    graph = keras_format._functional_from_keras(document, str(path))
    keras_layers = [entry for entry in document["config"]["layers"] if entry["class_name"] != "InputLayer"]
    # Keras' layer order is the order of the weights in get_weights and of the H5 keys: kept.
    assert [(e["class_name"], e["config"]["name"]) for e in graph["layers"]] == \
        [(e["class_name"], e["name"]) for e in keras_layers]
    assert [e["inbound_nodes"] for e in graph["layers"]] == [keras_calls(e) for e in keras_layers]
    input_entry = document["config"]["layers"][0]
    assert graph["input"] == {"name": input_entry["name"], "shape": input_entry["config"]["batch_shape"][1:]}
    assert graph["output"] == document["config"]["output_layers"][:2] == [keras_layers[-1]["name"], 0]
    classes = {e["class_name"]: e["config"] for e in graph["layers"]}
    assert ("Add" in classes) != ("Concatenate" in classes)
    assert classes.get("Concatenate", {"axis": -1})["axis"] == -1
    built = gpucnn.load_model(path).get_config()  # the model gpucnn builds from it
    assert [(e["class_name"], e["config"]["name"], e["inbound_nodes"]) for e in built["layers"]] == \
        [(e["class_name"], e["config"]["name"], e["inbound_nodes"]) for e in graph["layers"]]
    assert (built["input"], built["output"]) == (graph["input"], graph["output"])


def functional_model():
    """Add (a residual shortcut), Concatenate, a Conv2D called twice, BatchNormalization, GAP, softmax."""
    utils.set_random_seed(5)
    inputs = gpucnn.Input(shape=(6, 5, 2))
    x = Conv2D(3, 3, padding="same", activation="relu")(inputs)
    y = BatchNormalization(momentum=0.8)(Conv2D(3, 3, padding="same", use_bias=False)(x))
    x = Activation("relu")(Add()([x, y]))
    shared = Conv2D(2, 1, name="shared")
    x = Concatenate()([shared(x), MaxPooling2D(1)(shared(x)), AveragePooling2D(3, 1, "same")(x)])
    outputs = Dense(3, activation="softmax")(GlobalAveragePooling2D()(x))
    return gpucnn.Model(inputs, outputs, name="graph")


def test_functional_round_trip_is_bit_identical_and_training_continues(cpu, tmp_path):
    model = functional_model()
    x, labels = train(model, optimizers.AdamW(learning_rate=0.01, clipnorm=0.5))
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "w.weights.h5")
    loaded = gpucnn.load_model(tmp_path / "m.keras")
    assert loaded.get_config() == model.get_config()
    assert_same_model(model, loaded)
    assert_same_optimizer(model, loaded)
    fresh = functional_model()  # other initial weights
    fresh.compile(optimizer=optimizers.AdamW(learning_rate=0.01, clipnorm=0.5),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    fresh.load_weights(tmp_path / "w.weights.h5")
    assert_same_optimizer(model, fresh)
    for m in (model, loaded, fresh):
        m.train_on_batch(x, labels)
    for a, b, c in zip(model.get_weights(), loaded.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def keras_graph(document):
    """Per layer of a Keras Functional config: class, name and the calls it makes."""
    return [(e["class_name"], e["name"], [[(t["config"]["keras_history"], t["config"]["shape"]) for t in
               (node["args"][0] if isinstance(node["args"][0], list) else [node["args"][0]])]
              for node in e["inbound_nodes"]]) for e in document["config"]["layers"]]


@pytest.mark.parametrize("name", KERAS_FUNCTIONAL)
def test_written_functional_config_and_h5_are_keras_own(cpu, tmp_path, name):
    path = keras_file(f"{name}.keras")
    gpucnn.load_model(path).save(tmp_path / "m.keras")
    written, original = keras_config(tmp_path / "m.keras"), keras_config(path)
    assert (written["module"], written["class_name"]) == (original["module"], original["class_name"])
    assert keras_graph(written) == keras_graph(original)
    for ours, keras_entry in zip(written["config"]["layers"], original["config"]["layers"]):
        if "build_config" in keras_entry:  # (Keras leaves it out for layers without a build step)
            assert ours["build_config"] == keras_entry["build_config"], ours["name"]
    for key in ("input_layers", "output_layers"):
        assert written["config"][key] == original["config"][key]
    assert written["config"]["layers"][0]["config"]["batch_shape"] == \
        original["config"]["layers"][0]["config"]["batch_shape"]
    saved, keras_saved = archive_h5(tmp_path / "m.keras"), archive_h5(path)
    layer_arrays = sorted(p for p in keras_saved if p.startswith("layers/"))
    assert sorted(p for p in saved if p.startswith("layers/")) == layer_arrays
    for key in layer_arrays:
        np.testing.assert_array_equal(saved[key], keras_saved[key])
    with zipfile.ZipFile(tmp_path / "m.keras") as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5"))) as h5:
        assert "layers/input_layer/vars" in h5  # Keras' group for the InputLayer, without variables


def edit_functional(edit):
    """An edit of the residual_functional config: ``edit(layers by name, config)``."""
    def apply(document):
        edit({entry["name"]: entry for entry in document["config"]["layers"]}, document["config"])
    return apply


def read_from(layer, call=0, output=0):
    return {"class_name": "__keras_tensor__", "config": {"shape": [None], "keras_history": [layer, call, output]}}


def set_reads(layers, name, *references):
    layers[name]["inbound_nodes"][0]["args"] = [read_from(*references[0])] if len(references) == 1 else \
        [[read_from(*reference) for reference in references]]


@pytest.mark.parametrize("edit, match", [
    (lambda layers, config: set_reads(layers, "dense_8", ("nothing",)),
     (r"not a valid Keras archive: layer 'dense_8' call 0 reads \['nothing', 0\], which is not a layer call "
      r"of the Functional config")),
    (lambda layers, config: set_reads(layers, "dense_8", ("global_average_pooling2d_2", 1)),
     r"layer 'dense_8' call 0 reads \['global_average_pooling2d_2', 1\], which is not a layer call"),
    (lambda layers, config: set_reads(layers, "conv2d_7", ("activation_1",)),
     r"'conv2d_7' call 0 on \[\['activation_1', 0\]\].*they wait on each other's outputs \(a cycle\)"),
    (lambda layers, config: config.update(output_layers=[["dense_8", 0, 0], ["add", 0, 0]]),
     r"several outputs.*one input and one output"),
    (lambda layers, config: config.update(output_layers=["add", 1, 0]),
     r"the model's output reads \['add', 1\], which is not a layer call"),
    (lambda layers, config: config.update(output_layers=["input_layer_6", 0, 0]),
     r"the model's output reads \['input_layer_6', 0\], which is not a layer call"),
    (lambda layers, config: config.update(input_layers=["conv2d_7", 0, 0]),
     r"input layers \['input_layer_6'\] and takes \['conv2d_7', 0\].*one input"),
    (lambda layers, config: set_reads(layers, "dense_8", ("global_average_pooling2d_2", 0, 1)),
     r"reads output 1 of layer 'global_average_pooling2d_2', whose layers have one output each"),
    (lambda layers, config: layers["add"]["inbound_nodes"][0].update(args=[read_from("conv2d_7")]),
     r"layer 'add' \(Add\): call 0 reads one tensor, but a merge layer joins a list of at least 2"),
    (lambda layers, config: set_reads(layers, "dense_8", ("conv2d_7",), ("add",)),
     r"layer 'dense_8' \(Dense\): call 0 reads a list, but the layer takes one"),
    (lambda layers, config: layers["batch_normalization_2"]["inbound_nodes"][0].update(
        kwargs={"training": True}),
     (r"layer 'batch_normalization_2' \(BatchNormalization\), call 0: option `training=True` is not "
      r"supported.*mask=None")),
    (lambda layers, config: layers["add"].update(class_name="Multiply"),
     r"layer 'add' \(Multiply\): Keras layer class 'Multiply' is not supported.*'Add', .*'Concatenate'"),
    (lambda layers, config: layers["max_pooling2d_2"].update(inbound_nodes=[]),
     r"layer 'max_pooling2d_2' \(MaxPooling2D\) is never called"),
    (lambda layers, config: layers["add"]["config"].update(name="other"), r"layer 'add' is named 'other'"),
])
def test_bad_functional_graphs_are_refused_by_name(cpu, tmp_path, edit, match):
    path = rewrite_archive(keras_file("residual_functional.keras"), tmp_path / "edited.keras",
                           edit_config=edit_functional(edit))
    with pytest.raises(ValueError, match=match) as error:
        gpucnn.load_model(path)
    assert str(path) in str(error.value)


def test_concatenate_on_another_axis_is_refused_by_name(cpu, tmp_path):
    path = rewrite_archive(keras_file("concat_functional.keras"), tmp_path / "axis.keras",
                           edit_config=edit_layer("Concatenate", axis=1))
    with pytest.raises(ValueError, match=r"axis\.keras.*'concatenate' \(Concatenate\): argument `axis=1` is "
                                         r"not supported.*channels axis only"):
        gpucnn.load_model(path)


def test_merge_layer_in_a_sequential_keras_file_is_refused_by_name(cpu, tmp_path):
    def add_merge(document):
        document["config"]["layers"].insert(2, {"class_name": "Add", "config": {"name": "add"}})
    path = rewrite_archive(keras_file("sigmoid_cnn.keras"), tmp_path / "merge.keras", edit_config=add_merge)
    with pytest.raises(ValueError, match=r"merge\.keras.*'add' \(Add\) merges a list.*Sequential"):
        gpucnn.load_model(path)


# -- gpucnn -> Keras files -> gpucnn -------------------------------------------------------------
def every_layer_model(dropout=True):
    utils.set_random_seed(3)
    layers = [Conv2D(3, 3, padding="same", use_bias=False, input_shape=(7, 6, 2)),
              BatchNormalization(momentum=0.9, center=False), LeakyReLU(0.25),
              MaxPooling2D(2, strides=1, padding="same"),
              Conv2D(4, (2, 3), strides=(2, 1), activation="relu", kernel_initializer="he_normal"),
              ReLU(negative_slope=0.1), MaxPooling2D(2), Flatten(), Dropout(0.3, seed=5), Dense(5),
              Activation("relu"), Dense(3, activation="softmax")]
    return gpucnn.Sequential([layer for layer in layers if dropout or not isinstance(layer, Dropout)],
                             name="every_layer")


def train(model, optimizer="adam", loss="sparse_categorical_crossentropy", steps=2):
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((4,) + model.input_shape[1:], np.float32)
    labels = rng.integers(0, 3, 4) if "sparse" in str(loss) else (rng.random(4) > 0.5).astype(np.float32)
    for _ in range(steps):
        model.train_on_batch(x, labels)
    return x, labels


def layer_configs(model, leave_out):
    return [{k: v for k, v in layer.get_config().items() if k not in leave_out} for layer in model.layers]


def assert_same_model(model, loaded, names=True):
    # The input shape is in the Keras InputLayer, not in the first layer's config.
    leave_out = ("input_shape",) if names else ("input_shape", "name")
    assert layer_configs(loaded, leave_out) == layer_configs(model, leave_out)
    assert loaded.input_shape == model.input_shape and (loaded.name == model.name or not names)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def assert_same_optimizer(model, loaded):
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert sorted(loaded.optimizer.state) == sorted(model.optimizer.state)
    for name, state in model.optimizer.state.items():
        np.testing.assert_array_equal(loaded.optimizer.state[name], state)


def test_keras_archive_round_trip_is_bit_identical(cpu, tmp_path):
    model = every_layer_model()
    x, _ = train(model, optimizers.Adam(learning_rate=0.01, beta_1=0.8, epsilon=1e-6))
    model.save(tmp_path / "m.keras")
    loaded = gpucnn.load_model(tmp_path / "m.keras")
    assert_same_model(model, loaded)
    assert_same_optimizer(model, loaded)
    assert loaded.loss.name == model.loss.name and loaded.metrics == model.metrics
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_training_continues_identically_after_a_keras_round_trip(cpu, tmp_path):
    # No Dropout: its mask counters are gpucnn-only state that Keras files do not carry.
    model = every_layer_model(dropout=False)
    x, labels = train(model)
    model.save(tmp_path / "m.keras")
    loaded = gpucnn.load_model(tmp_path / "m.keras")
    for m in (model, loaded):
        m.train_on_batch(x, labels)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def pooling_model(units, activation):
    utils.set_random_seed(4)
    return gpucnn.Sequential([
        ZeroPadding2D(((2, 0), (1, 3)), input_shape=(6, 5, 2)), Conv2D(3, 3, activation="tanh"),
        AveragePooling2D(2, strides=1, padding="same"), ZeroPadding2D((1, 0)), AveragePooling2D((2, 3)),
        ZeroPadding2D(1), GlobalAveragePooling2D(keepdims=True), Flatten(), Dense(units, activation)],
        name="pooling")


@pytest.mark.parametrize("optimizer, loss, units, activation", [
    (optimizers.AdamW(learning_rate=0.01, weight_decay=0.1, clipnorm=0.5),
     losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2), 2, None),
    (optimizers.SGD(0.1, momentum=0.5, weight_decay=0.01, global_clipnorm=0.3), "mse", 2, "tanh"),
    (optimizers.Adam(clipvalue=0.01), losses.BinaryCrossentropy(label_smoothing=0.1), 1, "sigmoid"),
], ids=["adamw-clipnorm-smoothing", "sgd-global-clipnorm-mse", "adam-clipvalue-binary"])
def test_pooling_layers_and_optimizer_options_round_trip(cpu, tmp_path, optimizer, loss, units, activation):
    model = pooling_model(units, activation)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((4,) + model.input_shape[1:], np.float32)
    labels = rng.random((4,) + model.output_shape[1:]).astype(np.float32)
    model.train_on_batch(x, labels)
    model.save(tmp_path / "m.keras")
    written = keras_config(tmp_path / "m.keras")
    assert [entry["config"]["padding"] for entry in written["config"]["layers"]
            if entry["class_name"] == "ZeroPadding2D"] == [[[2, 0], [1, 3]], [[1, 1], [0, 0]], [[1, 1], [1, 1]]]
    assert layer_config(written, "GlobalAveragePooling2D")["keepdims"] is True
    loaded = gpucnn.load_model(tmp_path / "m.keras")
    assert_same_model(model, loaded)
    assert_same_optimizer(model, loaded)
    assert loaded.loss.get_config() == model.loss.get_config() and loaded.loss.name == model.loss.name
    for m in (model, loaded):
        m.train_on_batch(x, labels)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", [optimizers.SGD(0.1, momentum=0.9, nesterov=True), "sgd"],
                         ids=["momentum", "plain"])
def test_weights_file_round_trip_with_sgd_is_bit_identical(cpu, tmp_path, optimizer):
    model = every_layer_model()
    train(model, optimizer)
    model.save_weights(tmp_path / "w.weights.h5")
    saved = h5_arrays(tmp_path / "w.weights.h5")
    # Keras' layout: iteration, learning rate, then SGD's momentum per trainable weight (none without).
    momentum_count = len(model.trainable_weights) if model.optimizer.momentum else 0
    assert len([p for p in saved if p.startswith("optimizer/vars/")]) == 2 + momentum_count
    other = every_layer_model()  # other automatic names, other initial weights
    train(other, type(model.optimizer)(**model.optimizer.get_config()), steps=0)
    other.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same_optimizer(model, other)


def test_written_h5_follows_keras_layout(cpu, tmp_path):
    model = every_layer_model()
    train(model)
    model.save(tmp_path / "m.keras")
    saved = archive_h5(tmp_path / "m.keras")
    assert sorted({p.rsplit("/vars/", 1)[0] for p in saved if p.startswith("layers/")}) == [
        "layers/batch_normalization", "layers/conv2d", "layers/conv2d_1", "layers/dense", "layers/dense_1"]
    np.testing.assert_array_equal(saved["layers/conv2d_1/vars/0"], model.layers[4].kernel.numpy())
    norm = model.layers[1]  # center=False: gamma, moving_mean, moving_variance
    for index, weight in enumerate([norm.gamma, norm.moving_mean, norm.moving_variance]):
        np.testing.assert_array_equal(saved[f"layers/batch_normalization/vars/{index}"], weight.numpy())
    assert int(saved["optimizer/vars/0"]) == 2 and saved["optimizer/vars/1"] == np.float32(0.001)
    # Adam's m and v of the first trainable weight (the first kernel), then of the second (gamma).
    size = model.layers[0].kernel.numpy().size
    np.testing.assert_array_equal(saved["optimizer/vars/2"].ravel(), model.optimizer.state["m"][:size])
    np.testing.assert_array_equal(saved["optimizer/vars/3"].ravel(), model.optimizer.state["v"][:size])
    assert saved["optimizer/vars/4"].shape == norm.gamma.shape


def test_written_config_is_keras_config(cpu, tmp_path):
    model = every_layer_model()
    train(model, loss=losses.CategoricalCrossentropy(from_logits=True), steps=0)
    model.save(tmp_path / "m.keras")
    document = keras_config(tmp_path / "m.keras")
    assert document["class_name"] == "Sequential" and document["module"] == "keras"
    layers = document["config"]["layers"]
    assert layers[0]["class_name"] == "InputLayer"
    assert layers[0]["config"]["batch_shape"] == [None, 7, 6, 2]
    conv = layer_config(document, "Conv2D")
    assert conv["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert (conv["data_format"], conv["dilation_rate"], conv["groups"]) == ("channels_last", [1, 1], 1)
    compiled = document["compile_config"]
    assert compiled["optimizer"]["class_name"] == "Adam"
    assert compiled["loss"] == {"module": "keras.losses", "class_name": "CategoricalCrossentropy",
                                "config": {"from_logits": True, "label_smoothing": 0.0},
                                "registered_name": None}
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert zf.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        assert json.loads(zf.read("metadata.json"))["keras_version"].startswith("3.")


@pytest.mark.parametrize("filepath, weights_only", [("m-{epoch}.keras", False),
                                                     ("w-{epoch}.weights.h5", True)])
def test_model_checkpoint_writes_keras_files_by_suffix(cpu, tmp_path, filepath, weights_only):
    model = every_layer_model(dropout=False)
    x, labels = train(model, steps=0)
    checkpoint = gpucnn.callbacks.ModelCheckpoint(str(tmp_path / filepath), save_weights_only=weights_only,
                                                  monitor="loss")
    model.fit(x, labels, epochs=2, verbose=0, callbacks=[checkpoint])
    saved = tmp_path / filepath.format(epoch=2)
    with h5py.File(io.BytesIO(zipfile.ZipFile(saved).read("model.weights.h5")) if not weights_only
                   else saved, "r") as h5:
        assert int(h5["optimizer/vars/0"][()]) == model.optimizer.iterations == 2


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("example, loss", [("faces_cnn", "binary_crossentropy"),
                                           ("textures_cnn", "binary_crossentropy"),
                                           ("resnet_cnn", "categorical_crossentropy")])
def test_example_models_round_trip(cpu, tmp_path, example, loss):
    model = load_example(example).build_model()  # the article's model at full width (textures_cnn)
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "w.weights.h5")
    loaded = gpucnn.load_model(tmp_path / "m.keras")
    assert_same_model(model, loaded)
    assert_same_optimizer(model, loaded)
    fresh = load_example(example).build_model()
    fresh.load_weights(tmp_path / "w.weights.h5")
    assert_same_model(model, fresh, names=False)


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, match", [
    ("unsupported_dilation", (r"layer 'conv2d_\d+' \(Conv2D\): option `dilation_rate=\[2, 2\]`.*only "
                              r"dilation_rate=\[1, 1\]")),
    ("unsupported_groups", r"\(Conv2D\): option `groups=2`.*only groups=1"),
    ("unsupported_channels_first", (r"\(Conv2D\): option `data_format='channels_first'`.*only "
                                    r"data_format='channels_last'")),
    ("unsupported_depthwise", r"'DepthwiseConv2D' is not supported.*'BatchNormalization', 'Concatenate', 'Conv2D'"),
    ("unsupported_lambda", r"layer 'lambda' \(Lambda\).*not supported.*'Conv2D'"),
])
def test_keras_files_with_what_gpucnn_lacks_are_refused_by_name(cpu, name, match):
    path = keras_file(f"{name}.keras")
    with pytest.raises(ValueError, match=match) as error:
        gpucnn.load_model(path)
    assert str(path) in str(error.value)


def edit_layer(class_name, **options):
    return lambda document: layer_config(document, class_name).update(options)


def edit_compile(**options):
    def edit(document):
        for key, value in options.items():
            target = document["compile_config"]
            *path, last = key.split("__")
            for part in path:
                target = target[part]
            target[last] = value
    return edit


@pytest.mark.parametrize("edit, match", [
    (edit_layer("Conv2D", activation="elu"), r"\(Conv2D\): option `activation='elu'`.*'relu'"),
    (edit_layer("Conv2D", kernel_regularizer={"class_name": "L2"}),
     r"option `kernel_regularizer=.*only kernel_regularizer=None"),
    (edit_layer("Conv2D", future_option=3), r"\(Conv2D\): option\(s\) \['future_option'\] are not known"),
    (edit_layer("Dense", kernel_initializer={"class_name": "Orthogonal", "config": {}}),
     r"\(Dense\): option `kernel_initializer='Orthogonal'`.*glorot_uniform"),
    (edit_layer("Dense", dtype="mixed_float16"), r"\(Dense\): option `dtype='mixed_float16'`.*float32"),
    (edit_layer("BatchNormalization", renorm=True), r"option `renorm=True`.*only renorm=False"),
    (edit_layer("BatchNormalization", axis=1), r"option `axis=1`.*only axis=-1"),
    (edit_layer("Dropout", noise_shape=[None, 1]), r"option `noise_shape=\[None, 1\]`"),
    (edit_layer("MaxPooling2D", padding="full"), r"Argument `padding`.*'full'"),
    (edit_layer("InputLayer", batch_shape=[None, None, None, 2]), r"no fixed input shape.*Input\(shape="),
    (edit_layer("InputLayer", sparse=True), r"the InputLayer: option `sparse=True`"),
    (edit_compile(optimizer__class_name="RMSprop"),
     r"optimizer \('RMSprop'\) is not supported.*'Adam'.*compile=False"),
    (edit_compile(optimizer__config__use_ema=True), r"option `use_ema=True`.*only use_ema=False"),
    (edit_compile(optimizer__config__clipnorm=1.0, optimizer__config__clipvalue=0.5),
     r"Only one of `clipnorm`, `clipvalue` and `global_clipnorm`.*compile=False"),
    (edit_compile(optimizer__class_name="AdamW", optimizer__config__weight_decay=None),
     r"`weight_decay` must be a float for AdamW"),
    (edit_compile(loss={"class_name": "BinaryCrossentropy", "config": {"label_smoothing": 0.1, "axis": 1}}),
     r"\(BinaryCrossentropy\): option `axis=1`.*only axis=-1"),
    (edit_compile(loss={"class_name": "MeanSquaredError", "config": {"from_logits": True}}),
     r"\(MeanSquaredError\): option\(s\) \['from_logits'\] are not known"),
    (edit_compile(loss={"class_name": "SparseCategoricalCrossentropy", "config": {"label_smoothing": 0.1}}),
     r"option `label_smoothing=0.1`.*only label_smoothing=0.0"),
    (edit_compile(optimizer__config__learning_rate={"class_name": "ExponentialDecay"}),
     r"`learning_rate='ExponentialDecay'`.*constant float"),
    (edit_compile(loss="hinge"), r"option `loss='hinge'`.*binary_crossentropy"),
    (edit_compile(loss_weights=[2.0]), r"option `loss_weights=\[2.0\]`"),
    (edit_compile(metrics=["auc"]), r"unsupported metric 'auc'.*'binary_accuracy'.*compile=False"),
    (lambda document: document.update(class_name="CustomModel"),
     r"model of class 'CustomModel'; gpucnn reads Sequential and Functional models"),
])
def test_unsupported_options_are_refused_by_name(cpu, tmp_path, edit, match):
    path = rewrite_archive(keras_file("sigmoid_cnn.keras"), tmp_path / "edited.keras", edit_config=edit)
    with pytest.raises(ValueError, match=match) as error:
        gpucnn.load_model(path)
    assert str(path) in str(error.value)


def test_dense_on_a_4d_tensor_is_refused_by_name(cpu, tmp_path):
    # Keras applies Dense to the last axis of any input; gpucnn's Dense needs a Flatten before it.
    def drop_flatten(document):
        document["config"]["layers"] = [entry for entry in document["config"]["layers"]
                                        if entry["class_name"] != "Flatten"]
    path = rewrite_archive(keras_file("sigmoid_cnn.keras"), tmp_path / "no_flatten.keras",
                           edit_config=drop_flatten)
    with pytest.raises(ValueError, match=r"no_flatten\.keras.*\(Dense\) expects a flat input.*Flatten"):
        gpucnn.load_model(path)


def test_unsupported_compile_options_load_with_compile_false(cpu, tmp_path):
    path = rewrite_archive(keras_file("sigmoid_cnn.keras"), tmp_path / "rmsprop.keras",
                           edit_config=edit_compile(optimizer__class_name="RMSprop"))
    expected = np.load(keras_file("sigmoid_cnn.npz"))
    model = gpucnn.load_model(path, compile=False)
    np.testing.assert_allclose(model.predict(expected["x"]), expected["y"], atol=TOLERANCE, rtol=0)


def test_keras_defaults_in_other_spellings_are_accepted(cpu, tmp_path):
    path = rewrite_archive(keras_file("sigmoid_cnn.keras"), tmp_path / "ok.keras",
                           edit_config=edit_layer("Conv2D", dilation_rate=1, dtype="float32"))
    assert gpucnn.load_model(path).layers[0].kernel_size == (3, 3)


def damaged(path, tmp_path, how):
    data = bytearray(path.read_bytes())
    target = tmp_path / f"{how}{''.join(path.suffixes)}"
    if how == "truncated":
        data = data[:len(data) // 2]
    elif how == "flipped":  # inside the weights (stored uncompressed): the zip CRC or HDF5 catches it
        for offset in range(len(data) // 2, len(data) // 2 + 64):
            data[offset] ^= 0xFF
    elif how == "text":
        data = b"not a model at all\n" * 10
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("how, match", [
    ("truncated", r"not a valid Keras \.keras archive: unreadable zip archive"),
    ("flipped", r"not a valid Keras \.keras archive"),
    ("text", r"not a valid Keras \.keras archive: unreadable zip archive"),
])
def test_damaged_keras_archives_are_refused(cpu, tmp_path, how, match):
    path = damaged(keras_file("sigmoid_cnn.keras"), tmp_path, how)
    with pytest.raises(CorruptModelFileError, match=match) as error:
        gpucnn.load_model(path)
    assert str(path) in str(error.value)


# Not "flipped": HDF5 keeps no checksum of its data, so damaged values go unnoticed (in a .keras archive
# the zip's CRC catches them).
@pytest.mark.parametrize("how", ["truncated", "text"])
def test_damaged_weights_files_are_refused(cpu, tmp_path, how):
    path = damaged(keras_file("sgd_dense.weights.h5"), tmp_path, how)
    model = gpucnn.load_model(keras_file("sgd_dense.keras"), compile=False)
    before = model.get_weights()
    with pytest.raises(CorruptModelFileError, match=r"not a valid Keras \.weights\.h5 file") as error:
        model.load_weights(path)
    assert str(path) in str(error.value)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("members, match", [
    ({"readme.txt": b"hello"}, r"lacks \['metadata.json', 'config.json'\] \(it is not a Keras archive\)"),
    ({"metadata.json": b'{"keras_version": "3.1.0"}', "config.json": b"{}",
      "model.weights.npz": b""}, r"model\.weights\.npz, which gpucnn does not read"),
    ({"metadata.json": b"{}", "config.json": b"{}", "model.weights.h5": b""}, r"names no Keras version"),
    ({"metadata.json": b'{"keras_version": "3.1.0"}', "config.json": b"[1, 2",
      "model.weights.h5": b""}, r"unreadable zip archive \(.*JSON|Expecting"),
])
def test_zip_files_that_are_not_keras_archives_are_refused(cpu, tmp_path, members, match):
    path = rewrite_archive(keras_file("sgd_dense.keras"), tmp_path / "other.keras", members=members)
    with pytest.raises(CorruptModelFileError, match=match):
        gpucnn.load_model(path)


def test_newer_keras_format_version_is_refused(cpu, tmp_path):
    path = rewrite_archive(keras_file("sgd_dense.keras"), tmp_path / "new.keras",
                           edit_metadata=lambda m: m.update(keras_version="4.0.1"))
    with pytest.raises(CorruptModelFileError, match=r"written by Keras 4\.0\.1.*reads Keras 3 archives"):
        gpucnn.load_model(path)


def test_legacy_keras2_h5_is_refused(cpu, tmp_path):
    path = tmp_path / "old.weights.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = [b"dense"]
    model = gpucnn.load_model(keras_file("sgd_dense.keras"), compile=False)
    with pytest.raises(CorruptModelFileError, match=r"Keras 2 \(legacy HDF5\)"):
        model.load_weights(path)


def test_h5_without_keras_layout_is_refused(cpu, tmp_path):
    path = tmp_path / "other.weights.h5"
    with h5py.File(path, "w") as h5:
        h5["data"] = np.zeros(3)
    model = gpucnn.load_model(keras_file("sgd_dense.keras"), compile=False)
    with pytest.raises(CorruptModelFileError, match=r"no Keras layer variables"):
        model.load_weights(path)


def test_weights_of_another_shape_are_refused_and_nothing_is_set(cpu):
    model = gpucnn.Sequential([Flatten(input_shape=(4, 3, 1)), Dense(6, "relu"), Dense(1, "sigmoid")])
    before = model.get_weights()
    path = keras_file("sgd_dense.weights.h5")
    with pytest.raises(ValueError, match=r"sgd_dense\.weights\.h5.*does not match this model: layer "
                                         r"'.*' \(Dense, group layers/dense\) has weights of shapes "
                                         r"\[\(12, 6\), \(6,\)\], the file holds \[\(12, 5\), \(5,\)\]"):
        model.load_weights(path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_of_a_model_with_more_layers_are_refused(cpu):
    model = gpucnn.Sequential([Flatten(input_shape=(4, 3, 1)), Dense(1, "sigmoid")])
    with pytest.raises(ValueError, match=r"holds variables of layers \['dense_1'\] that this model does "
                                         r"not have"):
        model.load_weights(keras_file("sgd_dense.weights.h5"))


def test_optimizer_state_of_another_layout_is_refused(cpu):
    model = gpucnn.load_model(keras_file("sgd_dense.keras"), compile=False)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.set_weights([np.zeros(w.shape, np.float32) for w in model.weights])
    with pytest.raises(ValueError, match=r"saved optimizer state holds arrays of shapes.*Adam over this "
                                         r"model's trainable weights keeps.*\['m', 'v'\] per weight.*"
                                         r"uncompiled model"):
        model.load_weights(keras_file("sgd_dense.weights.h5"))
    assert not any(w.any() for w in model.get_weights())  # refused before any weight was set


@pytest.mark.parametrize("call, name, match", [
    (lambda m, p: m.save(p), "m.weights.h5", r"save: .*ends in '\.weights\.h5'.*save_weights"),
    (lambda m, p: m.save_weights(p), "m.keras", r"save_weights: .*ends in '\.keras'.*model\.save"),
    (lambda m, p: gpucnn.load_model(p), "m.weights.h5", r"load_model: .*load_weights"),
])
def test_suffixes_choose_the_format_and_misuse_is_named(cpu, tmp_path, call, name, match):
    model = every_layer_model()
    with pytest.raises(ValueError, match=match):
        call(model, tmp_path / name)
    assert not os.listdir(tmp_path)


def test_training_state_stays_in_gpucnn_format(cpu, tmp_path):
    with pytest.raises(ValueError, match=r"training state \(epoch=2\).*'\.gpucnn'"):
        saving.save_model(every_layer_model(), tmp_path / "b.keras", epoch=2)


@pytest.mark.parametrize("name", ["m.keras", "w.weights.h5"])
def test_failed_keras_save_keeps_the_previous_file(cpu, tmp_path, monkeypatch, name):
    model = every_layer_model()
    path = tmp_path / name
    save = model.save if name.endswith(".keras") else model.save_weights
    save(path)
    before = path.read_bytes()
    model.layers[0].kernel.value[...] += 1.0

    def failing_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(saving.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("name", ["missing.keras", "missing.weights.h5"])
def test_missing_keras_files_are_named(cpu, tmp_path, name):
    model = every_layer_model()
    with pytest.raises(FileNotFoundError, match=rf"No model file at '.*{name}'"):
        model.load_weights(tmp_path / name)
