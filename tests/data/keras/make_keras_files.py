"""Writes the Keras 3 files that tests/test_keras_format.py reads: the proof that gpucnn reads what
Keras writes.  Run with a Keras 3 environment (not a gpucnn dependency), from anywhere:

    KERAS_BACKEND=torch python tests/data/keras/make_keras_files.py

For each supported model NAME it writes NAME.keras (the trained, compiled model), NAME.weights.h5
(``save_weights``) and NAME.npz: fixed inputs ``x``, Keras' predictions ``y`` on them, and for the
models without Dropout one more ``train_on_batch`` on (``x``, ``labels``) from the saved state
(``after_step_<i>``: every weight afterwards), so a test can check that training continues in gpucnn
from the optimizer state Keras saved.  compiled_unfit.keras has an optimizer Keras never built;
unsupported_*.keras are models gpucnn must refuse by name.
"""
import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers

HERE = pathlib.Path(__file__).resolve().parent


def sigmoid_cnn():
    """Conv2D (relu, same / valid, strides) + MaxPooling2D + BatchNormalization + Dropout + Flatten +
    Dense(sigmoid), Adam, binary cross-entropy."""
    model = keras.Sequential([
        keras.Input((9, 9, 2)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.Conv2D(3, (3, 2), strides=(2, 1), padding="valid", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.BatchNormalization(),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(1, activation="sigmoid"),
    ], name="sigmoid_cnn")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model, lambda rng, n: (rng.random(n) > 0.5).astype("float32")


def softmax_cnn():
    """InputLayer, Conv2D without activation and bias + LeakyReLU, ReLU, Activation, MaxPooling2D('same',
    strides), BatchNormalization, Dense + softmax; Adam with its own settings, sparse categorical
    cross-entropy.  No Dropout, so the next training step is deterministic in both libraries."""
    model = keras.Sequential([
        layers.InputLayer(shape=(8, 7, 3)),
        # No bias before BatchNormalization: its gradient would be zero up to rounding, which Adam
        # scales up to a learning-rate-sized step, so the next step could not be compared closely.
        layers.Conv2D(5, (2, 3), strides=(1, 2), padding="same", use_bias=False),
        layers.LeakyReLU(negative_slope=0.1),
        layers.MaxPooling2D(pool_size=3, strides=2, padding="same"),
        layers.BatchNormalization(momentum=0.9, epsilon=1e-2),
        layers.Conv2D(4, 2, activation="relu"),
        layers.ReLU(),
        layers.Flatten(),
        layers.Dense(6),
        layers.Activation("relu"),
        layers.Dense(3, activation="softmax"),
    ], name="softmax_cnn")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.003, beta_1=0.8, epsilon=1e-6),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, lambda rng, n: rng.integers(0, 3, n).astype("int32")


def sgd_dense():
    """Flatten + Dense layers trained with SGD (Nesterov momentum): the SGD state layout."""
    model = keras.Sequential([
        keras.Input((4, 3, 1)),
        layers.Flatten(),
        layers.Dense(5, activation="relu"),
        layers.Dense(1, activation="sigmoid"),
    ], name="sgd_dense")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
                  loss="binary_crossentropy", metrics=["binary_accuracy"])
    return model, lambda rng, n: (rng.random(n) > 0.5).astype("float32")


def pooling_cnn():
    """ZeroPadding2D in its three forms, tanh, AveragePooling2D ('same', averaging the cells inside the
    input only, and 'valid'), GlobalAveragePooling2D(keepdims=True); AdamW with clipnorm, label
    smoothing.  The clip and decay are large enough to change every step.  The 'same' pooling pads
    both sides equally: where it cannot, Keras' torch backend pads by repeating the edge cells and
    averages those too, unlike its TensorFlow and JAX backends and gpucnn."""
    model = keras.Sequential([
        keras.Input((7, 8, 2)),
        layers.ZeroPadding2D(((1, 1), (2, 1))),
        layers.Conv2D(4, 3, activation="tanh"),
        layers.AveragePooling2D(3, strides=2, padding="same"),
        layers.ZeroPadding2D(1),
        layers.Conv2D(5, 2),
        layers.ZeroPadding2D((0, 1)),
        layers.AveragePooling2D((2, 1)),
        layers.GlobalAveragePooling2D(keepdims=True),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ], name="pooling_cnn")
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.05, clipnorm=0.05),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    return model, lambda rng, n: np.eye(3, dtype="float32")[rng.integers(0, 3, n)]


def mse_gap():
    """GlobalAveragePooling2D into Dense, mean squared error ('mse'), SGD with momentum, weight decay
    and global_clipnorm."""
    model = keras.Sequential([
        keras.Input((5, 6, 3)),
        layers.Conv2D(4, 2, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(2, activation="tanh"),
    ], name="mse_gap")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.5, weight_decay=0.02,
                                                 global_clipnorm=0.1),
                  loss="mse", metrics=["accuracy"])
    return model, lambda rng, n: rng.random((n, 2)).astype("float32")


def clipvalue_logits():
    """Adam with clipvalue and weight decay, binary cross-entropy from logits with label smoothing."""
    model = keras.Sequential([
        keras.Input((4, 4, 1)),
        layers.AveragePooling2D(2, strides=1),
        layers.Flatten(),
        layers.Dense(1),
    ], name="clipvalue_logits")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02, clipvalue=0.01, weight_decay=0.1),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
                  metrics=["binary_accuracy"])
    return model, lambda rng, n: (rng.random(n) > 0.5).astype("float32")


def residual_functional():
    """Functional: a residual block (Conv2D + BatchNormalization on one branch, Add with the shortcut),
    then MaxPooling2D, GlobalAveragePooling2D and a softmax Dense; Adam, sparse cross-entropy."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    y = layers.Conv2D(4, 3, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization()(y)
    x = layers.Activation("relu")(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(layers.MaxPooling2D(2)(x))
    outputs = layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="residual_functional")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model, lambda rng, n: rng.integers(0, 3, n).astype("int32")


def concat_functional():
    """Functional: three branches from the input joined by Concatenate (axis=-1), one of them through
    a Conv2D that is also called on another branch (a shared layer: two calls, one set of weights),
    then BatchNormalization, GlobalAveragePooling2D, a sigmoid Dense; SGD with momentum."""
    inputs = keras.Input((6, 6, 2))
    shared = layers.Conv2D(2, 3, padding="same", activation="relu")
    a = shared(inputs)
    b = shared(layers.Conv2D(2, 1)(inputs))
    c = layers.AveragePooling2D(3, strides=1, padding="same")(inputs)
    x = layers.BatchNormalization()(layers.Concatenate()([a, b, c]))
    outputs = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs, name="concat_functional")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model, lambda rng, n: (rng.random(n) > 0.5).astype("float32")


def compiled_unfit():
    """Compiled, never trained: Keras' optimizer is not built yet, its variables are the iteration and
    the learning rate only."""
    model = keras.Sequential([keras.Input((3, 3, 1)), layers.Flatten(), layers.Dense(2, activation="softmax")],
                             name="compiled_unfit")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["categorical_accuracy"])
    return model


def unsupported():
    """One file per thing gpucnn does not have, each otherwise a plain model."""
    def conv_model(name, conv, shape=(6, 6, 2)):
        return name, keras.Sequential([keras.Input(shape), conv, layers.Flatten(), layers.Dense(1)])

    yield conv_model("unsupported_dilation", layers.Conv2D(2, 3, dilation_rate=2))
    yield conv_model("unsupported_groups", layers.Conv2D(2, 3, groups=2))
    yield conv_model("unsupported_depthwise", layers.DepthwiseConv2D(3))
    yield conv_model("unsupported_channels_first",
                     layers.Conv2D(2, 3, data_format="channels_first"), shape=(2, 6, 6))
    yield conv_model("unsupported_lambda", layers.Lambda(lambda t: t * 2.0))


def main():
    keras.utils.set_random_seed(0)
    for build in (sigmoid_cnn, softmax_cnn, sgd_dense, pooling_cnn, mse_gap, clipvalue_logits,
                  residual_functional, concat_functional):
        model, labels_for = build()
        name = model.name
        rng = np.random.default_rng(len(name))
        shape = model.input_shape[1:]
        train_x = rng.random((16,) + shape).astype("float32")
        model.fit(train_x, labels_for(rng, 16), batch_size=8, epochs=2, verbose=0)
        model.save(HERE / f"{name}.keras")
        model.save_weights(HERE / f"{name}.weights.h5")
        x = rng.random((3,) + shape).astype("float32")
        arrays = {"x": x, "y": model.predict(x, verbose=0)}
        if not any(isinstance(layer, layers.Dropout) for layer in model.layers):
            arrays["labels"] = labels_for(rng, 3)
            model.train_on_batch(x, arrays["labels"])
            arrays.update({f"after_step_{i}": w for i, w in enumerate(model.get_weights())})
        np.savez(HERE / f"{name}.npz", **arrays)
    model = compiled_unfit()
    model.save(HERE / f"{model.name}.keras")
    for name, model in unsupported():
        model.save(HERE / f"{name}.keras")
    print(f"Keras {keras.__version__} ({keras.backend.backend()}) wrote the files in {HERE}")


if __name__ == "__main__":
    main()
