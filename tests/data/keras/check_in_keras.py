"""On demand (not in CI, which has no Keras): checks that real Keras 3 reads the files gpucnn writes.

Run it with gpucnn's Python and point it at a Python that has Keras 3 (any backend; not a gpucnn
dependency):

    python tests/data/keras/check_in_keras.py --keras-python /path/to/keras-venv/bin/python

gpucnn builds and briefly trains a few models (the faces example's, the article's, the ResNet
example's, one with LeakyReLU/Activation/softmax, one with SGD momentum and a from_logits loss, ones
with ZeroPadding2D, AveragePooling2D, GlobalAveragePooling2D, tanh, AdamW, weight decay, the three
clips, label smoothing and mean squared error, and a Functional one with Add, Concatenate and a shared
layer), saves each as ``.keras`` and ``.weights.h5`` with its predictions on fixed inputs and, for models
without Dropout, its weights after one more ``train_on_batch``.  Then Keras, in a subprocess, loads each ``.keras`` with
``keras.saving.load_model`` (no custom objects), checks the predictions, the optimizer's iteration
count, the next training step from the saved optimizer state, and ``load_weights`` of the
``.weights.h5`` file into the model built from the archive's config.  Exit status 0 when all pass.
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[3]
# Keras computes in a different order than gpucnn: float32 rounding differs in the last bits.
PREDICTION_TOLERANCE = 1e-5
# One more optimizer step on top of that.  (The models have no bias feeding BatchNormalization: its
# gradient is zero up to rounding, and Adam would scale that noise up to a learning-rate-sized step.)
STEP_TOLERANCE = 1e-5


def gpucnn_models():
    sys.path.insert(0, str(ROOT / "examples"))
    import faces_cnn
    import resnet_cnn
    import textures_cnn

    import gpucnn
    from gpucnn import losses, optimizers
    from gpucnn.layers import (
        Activation,
        Add,
        AveragePooling2D,
        BatchNormalization,
        Concatenate,
        Conv2D,
        Dense,
        Flatten,
        GlobalAveragePooling2D,
        LeakyReLU,
        MaxPooling2D,
        ZeroPadding2D,
    )

    faces = faces_cnn.build_model()
    faces.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    yield faces, (faces.input_shape[1:]), "binary"
    article = textures_cnn.build_model()  # full width: 1.48 M weights
    article.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    yield article, (article.input_shape[1:]), "binary"
    resnet = resnet_cnn.build_model()  # Functional: residual blocks with projection shortcuts
    resnet.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    yield resnet, (resnet.input_shape[1:]), "one_hot"
    softmax = gpucnn.Sequential([
        Conv2D(4, (2, 3), strides=(2, 1), padding="same", use_bias=False, input_shape=(9, 8, 2)), LeakyReLU(0.2),
        MaxPooling2D(3, strides=2, padding="same"), BatchNormalization(momentum=0.8, center=False),
        Conv2D(3, 2, activation="relu"), Flatten(), Dense(4), Activation("sigmoid"),
        Dense(3, activation="softmax")], name="softmax_model")
    softmax.compile(optimizer=optimizers.Adam(learning_rate=0.01, beta_1=0.8),
                    loss="categorical_crossentropy", metrics=["accuracy"])
    yield softmax, (9, 8, 2), "one_hot"
    logits = gpucnn.Sequential([Flatten(input_shape=(3, 4, 1)), Dense(4, trainable=False),
                                Dense(5, activation="leaky_relu"), Dense(1)], name="sgd_logits")
    logits.compile(optimizer=optimizers.SGD(learning_rate=0.1, momentum=0.5, nesterov=False),
                   loss=losses.BinaryCrossentropy(from_logits=True), metrics=["binary_accuracy"])
    yield logits, (3, 4, 1), "binary"
    pooling = gpucnn.Sequential([
        ZeroPadding2D(((1, 1), (2, 1)), input_shape=(7, 8, 2)), Conv2D(4, 3, activation="tanh"),
        # 'same' padding equal on both sides: Keras' torch backend repeats the edge cells into uneven
        # 'same' windows (its TensorFlow and JAX backends, like gpucnn, average the cells inside only).
        AveragePooling2D(3, strides=2, padding="same"), ZeroPadding2D(1), Conv2D(3, 2),
        ZeroPadding2D((0, 1)), AveragePooling2D((2, 1)), GlobalAveragePooling2D(keepdims=True), Flatten(),
        Dense(3, activation="softmax")], name="pooling_adamw")
    pooling.compile(optimizer=optimizers.AdamW(learning_rate=0.01, weight_decay=0.05, clipnorm=0.05),
                    loss=losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    yield pooling, (7, 8, 2), "one_hot"
    mse = gpucnn.Sequential([Conv2D(4, 2, padding="same", activation="relu", input_shape=(5, 6, 3)),
                             GlobalAveragePooling2D(), Dense(2, activation="tanh")], name="gap_mse")
    mse.compile(optimizer=optimizers.SGD(learning_rate=0.1, momentum=0.5, weight_decay=0.02,
                                         global_clipnorm=0.1), loss="mse", metrics=["accuracy"])
    yield mse, (5, 6, 3), "regression"
    clipped = gpucnn.Sequential([AveragePooling2D(2, strides=1, input_shape=(4, 4, 1)), Flatten(), Dense(1)],
                                name="clipvalue_logits")
    clipped.compile(optimizer=optimizers.Adam(learning_rate=0.02, clipvalue=0.01, weight_decay=0.1),
                    loss=losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
                    metrics=["binary_accuracy"])
    yield clipped, (4, 4, 1), "binary"
    inputs = gpucnn.Input(shape=(8, 8, 3))
    x = Conv2D(4, 3, padding="same", activation="relu")(inputs)
    y = BatchNormalization()(Conv2D(4, 3, padding="same", use_bias=False)(x))
    x = Activation("relu")(Add()([x, y]))
    shared = Conv2D(2, 1)
    x = Concatenate()([shared(x), MaxPooling2D(1)(shared(x))])  # one layer called twice
    outputs = Dense(3, activation="softmax")(GlobalAveragePooling2D()(x))
    functional = gpucnn.Model(inputs, outputs, name="residual_concat")
    functional.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    yield functional, (8, 8, 3), "one_hot"
    unfit = gpucnn.Sequential([Flatten(input_shape=(2, 3, 1)), Dense(3, activation="softmax")],
                              name="compiled_unfit")
    unfit.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    yield unfit, (2, 3, 1), "one_hot"


def labels(kind, rng, count, classes=3):
    if kind == "binary":
        return (rng.random(count) > 0.5).astype(np.float32)
    if kind == "regression":
        return rng.random((count, 2), np.float32)
    return np.eye(classes, dtype=np.float32)[rng.integers(0, classes, count)]


def write(directory):
    """gpucnn's side: the files and what Keras must find in them."""
    import gpucnn
    from gpucnn.layers import Dropout

    gpucnn.set_backend("cpu")
    gpucnn.utils.set_random_seed(0)
    names = []
    for model, shape, kind in gpucnn_models():
        rng = np.random.default_rng(1)
        x = rng.random((6,) + tuple(shape), np.float32)
        if model.name != "compiled_unfit":  # its optimizer stays fresh: no state yet
            model.fit(x, labels(kind, rng, 6), batch_size=3, epochs=1, verbose=0)
        model.save(directory / f"{model.name}.keras")
        model.save_weights(directory / f"{model.name}.weights.h5")
        arrays = {"x": x[:2], "y": model.predict(x[:2]), "iterations": model.optimizer.iterations}
        if not any(isinstance(layer, Dropout) for layer in model.layers):
            arrays["labels"] = labels(kind, rng, 2)
            model.train_on_batch(x[:2], arrays["labels"])
            arrays.update({f"after_step_{i}": w for i, w in enumerate(model.get_weights())})
        np.savez(directory / f"{model.name}.npz", **arrays)
        names.append(model.name)
    return names


def check(directory, names):
    """Keras' side (runs in the Keras environment; imports no gpucnn)."""
    import keras

    failures = 0
    for name in names:
        expected = np.load(directory / f"{name}.npz")
        with warnings.catch_warnings(record=True) as caught:
            # Keras warns instead of failing when it skips state it cannot match (e.g. optimizer
            # variables): such a warning while loading is a problem here.
            warnings.simplefilter("always")
            model = keras.saving.load_model(directory / f"{name}.keras")
            fresh = keras.saving.load_model(directory / f"{name}.keras", compile=False)
            fresh.set_weights([np.zeros_like(w) for w in fresh.get_weights()])
            fresh.load_weights(directory / f"{name}.weights.h5")
        # (Keras' own warnings are UserWarnings; torch + NumPy 2 add DeprecationWarnings here.)
        problems = [f"Keras warned: {w.message}" for w in caught if issubclass(w.category, UserWarning)]
        error = np.abs(model.predict(expected["x"], verbose=0) - expected["y"]).max()
        if error > PREDICTION_TOLERANCE:
            problems.append(f"predictions differ by {error:.3g}")
        if int(model.optimizer.iterations) != int(expected["iterations"]):
            problems.append(f"optimizer iterations {int(model.optimizer.iterations)}, gpucnn "
                            f"{int(expected['iterations'])}")
        if "labels" in expected:
            model.train_on_batch(expected["x"], expected["labels"])
            step_error = max(np.abs(w - expected[f"after_step_{i}"]).max()
                             for i, w in enumerate(model.get_weights()))
            if step_error > STEP_TOLERANCE:
                problems.append(f"the next training step differs by {step_error:.3g}")
        else:
            step_error = None
        weights_error = np.abs(fresh.predict(expected["x"], verbose=0) - expected["y"]).max()
        if weights_error > PREDICTION_TOLERANCE:
            problems.append(f"predictions after load_weights(.weights.h5) differ by {weights_error:.3g}")
        step = "" if step_error is None else f", next step {step_error:.2g}"
        print(f"{'FAIL' if problems else 'ok  '} {name}: predictions {error:.2g}{step}, weights.h5 "
              f"{weights_error:.2g}{'; ' + '; '.join(problems) if problems else ''}")
        failures += bool(problems)
    print(f"Keras {keras.__version__} ({keras.backend.backend()}): {len(names) - failures} of "
          f"{len(names)} gpucnn models read back correctly")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keras-python", help="a Python with Keras 3 installed")
    parser.add_argument("--check", nargs="+", metavar=("DIRECTORY", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.check:
        sys.exit(1 if check(pathlib.Path(args.check[0]), args.check[1:]) else 0)
    if not args.keras_python:
        parser.error("--keras-python is required")
    with tempfile.TemporaryDirectory() as directory:
        names = write(pathlib.Path(directory))
        environment = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch")}
        sys.exit(subprocess.run([args.keras_python, __file__, "--check", directory, *names],
                                env=environment, check=False).returncode)


if __name__ == "__main__":
    main()
