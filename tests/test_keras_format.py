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
from gpucnn import losses, optimizers, saving, utils
from gpucnn.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPooling2D,
    ReLU,
)
from gpucnn.saving import CorruptModelFileError

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERAS_FILES = ROOT / "tests" / "data" / "keras"
KERAS_MODELS = ["sigmoid_cnn", "softmax_cnn", "sgd_dense"]
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
    assert model.loss.name == compiled["loss"] and model.metrics == compiled["metrics"]
    assert model.optimizer.iterations == int(saved["optimizer/vars/0"]) > 0
    names = model.optimizer.state_names()
    per_weight = [saved[f"optimizer/vars/{i}"] for i in range(2, 2 + len(names) * len(model.weights))
                  if f"optimizer/vars/{i}" in saved]
    for index, name_ in enumerate(names):  # Keras interleaves the states per trainable weight
        flat = np.concatenate([a.ravel() for a in per_weight[index::len(names)]])
        np.testing.assert_array_equal(model.optimizer.state[name_], flat)
        assert flat.any()


@pytest.mark.parametrize("name", ["softmax_cnn", "sgd_dense"])
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
                                "config": {"from_logits": True}, "registered_name": None}
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


@pytest.mark.parametrize("example", ["faces_cnn", "textures_cnn"])
def test_example_models_round_trip(cpu, tmp_path, example):
    model = load_example(example).build_model()  # the article's model at full width (textures_cnn)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
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
    ("unsupported_depthwise", r"'DepthwiseConv2D' is not supported.*'BatchNormalization', 'Conv2D'"),
    ("unsupported_lambda", r"layer 'lambda' \(Lambda\).*not supported.*'Conv2D'"),
    ("unsupported_functional", r"Functional model.*only Sequential.*keras\.Sequential"),
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
    (edit_compile(optimizer__config__clipnorm=1.0), r"option `clipnorm=1.0`.*only clipnorm=None"),
    (edit_compile(optimizer__config__learning_rate={"class_name": "ExponentialDecay"}),
     r"`learning_rate='ExponentialDecay'`.*constant float"),
    (edit_compile(loss="hinge"), r"option `loss='hinge'`.*binary_crossentropy"),
    (edit_compile(loss_weights=[2.0]), r"option `loss_weights=\[2.0\]`"),
    (edit_compile(metrics=["auc"]), r"unsupported metric 'auc'.*'binary_accuracy'.*compile=False"),
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
