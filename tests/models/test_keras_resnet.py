"""A residual network matches Keras 3 given the same weights: layer and weight order, predictions,
loss, and three Adam steps (losses, weights, predictions after).  The Keras side is committed in
keras_resnet/reference.npz, written by keras_resnet/generate.py (which builds the same graph)."""
import os

import numpy as np
import pytest

import gpucnn
from gpucnn.layers import (
    Activation,
    Add,
    BatchNormalization,
    Conv2D,
    Dense,
    GlobalAveragePooling2D,
)

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras_resnet", "reference.npz")


def block(x, filters, strides, prefix):
    y = Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{prefix}_conv1")(x)
    y = Activation("relu", name=f"{prefix}_relu1")(BatchNormalization(name=f"{prefix}_bn1")(y))
    y = Conv2D(filters, 3, padding="same", use_bias=False, name=f"{prefix}_conv2")(y)
    y = BatchNormalization(name=f"{prefix}_bn2")(y)
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{prefix}_proj")(x)
        shortcut = BatchNormalization(name=f"{prefix}_proj_bn")(shortcut)
    return Activation("relu", name=f"{prefix}_out")(Add(name=f"{prefix}_add")([y, shortcut]))


def build():
    inputs = gpucnn.Input(shape=(8, 8, 1), name="image")
    x = Conv2D(4, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = Activation("relu", name="stem_relu")(BatchNormalization(name="stem_bn")(x))
    x = block(x, 4, 1, "block1")
    x = block(x, 6, 2, "block2")
    outputs = Dense(3, activation="softmax", name="head")(GlobalAveragePooling2D(name="pool")(x))
    return gpucnn.Model(inputs, outputs, name="resnet")


@pytest.fixture
def keras_run():
    with np.load(REFERENCE) as archive:
        return dict(archive)


def indexed(run, prefix):
    return [run[f"{prefix}_{i}"] for i in range(len(run["weight_names"]))]


def test_layer_and_weight_order_are_keras(cpu, keras_run):
    model = build()
    assert [layer.name for layer in model.layers] == list(keras_run["layer_names"])
    assert [w.name for w in model.weights] == list(keras_run["weight_names"])


def test_predictions_loss_and_adam_steps_match_keras(cpu, keras_run):
    model = build()
    model.set_weights(indexed(keras_run, "weight"))
    x, y = keras_run["x"], keras_run["y"]
    model.compile(optimizer=gpucnn.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    np.testing.assert_allclose(model.predict(x), keras_run["predictions"], rtol=1e-5, atol=1e-6)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(float(keras_run["loss"]), rel=1e-5)
    losses = [model.train_on_batch(x, y) for _ in range(len(keras_run["step_losses"]))]
    np.testing.assert_allclose(losses, keras_run["step_losses"], rtol=1e-5)
    for weight, got, want in zip(model.weights, model.get_weights(), indexed(keras_run, "trained")):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=weight.name)
    np.testing.assert_allclose(model.predict(x), keras_run["predictions_after"], rtol=1e-4, atol=1e-6)
