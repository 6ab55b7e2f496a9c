"""Writes reference.npz: Keras 3's predictions, losses and weights for a small residual network, which
tests/models/test_keras_resnet.py compares gpucnn with.  Keras is not a test dependency; run this with
a Keras 3 installation (the committed file came from Keras 3.15.1 with the torch 2.13 CPU backend):

    KERAS_BACKEND=torch python tests/models/keras_resnet/generate.py

The network (``build``) is the same graph as ``test_keras_resnet.build``, with the same layer names:
stem conv-BN-ReLU, an identity block, a projection block (stride 2), global average pooling, softmax.
Weights come from a fixed NumPy generator, then the model is evaluated, takes STEPS Adam steps with
train_on_batch (BatchNormalization in training mode) and is evaluated again.
"""
import os

import numpy as np

STEPS = 3
LEARNING_RATE = 0.01
OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.npz")


def build(keras):
    layers = keras.layers

    def block(x, filters, strides, prefix):
        y = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{prefix}_conv1")(x)
        y = layers.Activation("relu", name=f"{prefix}_relu1")(layers.BatchNormalization(name=f"{prefix}_bn1")(y))
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{prefix}_conv2")(y)
        y = layers.BatchNormalization(name=f"{prefix}_bn2")(y)
        shortcut = x
        if strides != 1 or x.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{prefix}_proj")(x)
            shortcut = layers.BatchNormalization(name=f"{prefix}_proj_bn")(shortcut)
        return layers.Activation("relu", name=f"{prefix}_out")(layers.Add(name=f"{prefix}_add")([y, shortcut]))

    inputs = keras.Input(shape=(8, 8, 1), name="image")
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.Activation("relu", name="stem_relu")(layers.BatchNormalization(name="stem_bn")(x))
    x = block(x, 4, 1, "block1")
    x = block(x, 6, 2, "block2")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="resnet")


def main():
    import keras

    model = build(keras)
    rng = np.random.default_rng(0)
    weights = []
    for variable in model.weights:
        shape = tuple(variable.shape)
        if variable.path.endswith("moving_variance") or variable.path.endswith("gamma"):
            weights.append(rng.uniform(0.5, 1.5, shape).astype(np.float32))
        else:
            weights.append((rng.normal(size=shape) * 0.2).astype(np.float32))
    model.set_weights(weights)
    x = rng.normal(size=(6, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 6).astype(np.int32)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
                  loss="sparse_categorical_crossentropy")
    predictions = model.predict(x, verbose=0)
    loss = model.evaluate(x, y, verbose=0)
    step_losses = [float(model.train_on_batch(x, y)) for _ in range(STEPS)]
    np.savez(OUTPUT, x=x, y=y, predictions=predictions, loss=np.float32(loss),
             step_losses=np.array(step_losses, np.float32), predictions_after=model.predict(x, verbose=0),
             layer_names=np.array([layer.name for layer in model.layers[1:]]),
             weight_names=np.array([variable.path for variable in model.weights]),
             **{f"weight_{i}": w for i, w in enumerate(weights)},
             **{f"trained_{i}": w for i, w in enumerate(model.get_weights())})
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
