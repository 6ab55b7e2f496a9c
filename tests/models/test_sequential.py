"""The Keras-style Sequential API on the cpu backend: building, Keras defaults, training wiring
(gradients checked by finite differences through the whole model), history, save/load."""
import math

import numpy as np
import pytest

import gpucnn
from gpucnn import optimizers
from gpucnn.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Input,
    LeakyReLU,
    MaxPooling2D,
    ReLU,
)


def article_model(flatten=True):
    model = gpucnn.Sequential()
    model.add(Conv2D(512, kernel_size=(3, 3), input_shape=(100, 100, 1)))
    model.add(MaxPooling2D(pool_size=(3, 3)))
    model.add(Conv2D(256, kernel_size=(3, 3)))
    model.add(MaxPooling2D(pool_size=(3, 3)))
    model.add(Conv2D(128, kernel_size=(3, 3)))
    model.add(MaxPooling2D(pool_size=(3, 3)))
    if flatten:
        model.add(Flatten())
    model.add(Dense(1, activation="sigmoid"))
    return model


def test_article_model_without_flatten_says_flatten_is_needed(cpu):
    with pytest.raises(ValueError, match=r"Flatten\(\)"):
        article_model(flatten=False)


def test_article_model_summary_reports_keras_parameter_count(cpu):
    model = article_model()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 1,480,577" in text
    assert "(None, 98, 98, 512)" in text and "(None, 32, 32, 512)" in text and "(None, 512)" in text
    # Independent count: 3x3 kernels plus biases, then the Dense on the flattened 2x2x128 map.
    expected = (9 * 1 * 512 + 512) + (9 * 512 * 256 + 256) + (9 * 256 * 128 + 128) + (2 * 2 * 128 + 1)
    assert model.count_params() == expected == 1_480_577


def test_keras_defaults(cpu):
    conv = Conv2D(4, 3)
    pool = MaxPooling2D((3, 3))
    adam = optimizers.Adam()
    assert conv.activation == "linear" and conv.strides == (1, 1) and conv.padding == "valid"
    assert pool.strides == (3, 3)
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (1e-3, 0.9, 0.999, 1e-7)
    bn = BatchNormalization()
    assert (bn.momentum, bn.epsilon) == (0.99, 1e-3)
    assert LeakyReLU().negative_slope == 0.3


def test_glorot_uniform_bounds_and_zero_bias(cpu):
    gpucnn.utils.set_random_seed(0)
    model = gpucnn.Sequential([Conv2D(64, (3, 3), input_shape=(8, 8, 16))])
    kernel, bias = model.get_weights()
    limit = math.sqrt(6.0 / (9 * 16 + 9 * 64))
    assert kernel.shape == (3, 3, 16, 64) and bias.shape == (64,)
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.95 * limit
    # Uniform on [-limit, limit] has standard deviation limit / sqrt(3).
    assert kernel.std() == pytest.approx(limit / math.sqrt(3), rel=0.05)
    assert not bias.any()


def test_input_layer_and_same_padding_strides_shapes(cpu):
    model = gpucnn.Sequential([Input((9, 7, 3)), Conv2D(5, 3, strides=2, padding="same"),
                               MaxPooling2D(2, padding="same"), Flatten(), Dense(2)])
    assert model.layers[0].output_shape == (5, 4, 5)
    assert model.layers[1].output_shape == (3, 2, 5)
    assert model.output_shape == (None, 2)  # Keras: the batch axis first


def test_deferred_build_from_data(cpu):
    model = gpucnn.Sequential([Conv2D(2, 3), Flatten(), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((4, 6, 6, 1), np.float32)
    model.fit(x, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    assert model.input_shape == (None, 6, 6, 1) and model.count_params() == (9 * 2 + 2) + (32 + 1)


def small_model(head="sigmoid", units=1):
    return gpucnn.Sequential([
        Conv2D(3, (3, 3), padding="same", activation="relu", input_shape=(7, 6, 2)),
        MaxPooling2D((2, 2), strides=(1, 2)),
        Conv2D(4, (2, 2), strides=2, activation="leaky_relu"),
        Flatten(),
        Dense(5),
        ReLU(negative_slope=0.1),
        Dense(units, activation=head),
    ])


def _flat_gradient_and_loss(model, x, y):
    model.setup_training()
    out = model.forward(x, training=True)
    loss, dout, _ = model.loss_and_gradient(out, y)
    model.backward(dout)
    return float(loss), model.flat_parameters.grads.copy()


@pytest.mark.parametrize("loss,head,units", [("binary_crossentropy", "sigmoid", 1),
                                             ("categorical_crossentropy", "softmax", 3),
                                             ("sparse_categorical_crossentropy", "softmax", 3),
                                             ("binary_crossentropy", None, 1)])
def test_model_gradients_match_finite_differences(cpu, loss, head, units):
    """The whole chain (fused logits head, backward order, Flatten, activations, pools) against central
    differences of the model's own loss; the last case uses BCE on a linear head with from_logits."""
    gpucnn.utils.set_random_seed(3)
    rng = np.random.default_rng(1)
    model = small_model(head, units)
    loss_object = gpucnn.losses.get(loss) if head else gpucnn.losses.BinaryCrossentropy(from_logits=True)
    model.compile(optimizer="sgd", loss=loss_object)
    x = rng.normal(size=(3, 7, 6, 2)).astype(np.float32)
    if loss == "categorical_crossentropy":
        y = np.eye(units, dtype=np.float32)[rng.integers(0, units, 3)]
    elif loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, units, 3).astype(np.int32)
    else:
        y = rng.integers(0, 2, (3, 1)).astype(np.float32)
    _, grads = _flat_gradient_and_loss(model, x, y)
    params = model.flat_parameters.values
    eps = 1e-3  # small enough that no ReLU kink or pooling winner changes on these draws
    for index in rng.choice(params.size, 25, replace=False):
        saved = params[index]
        params[index] = saved + eps
        plus = float(model.loss_and_gradient(model.forward(x, training=False), y)[0])
        params[index] = saved - eps
        minus = float(model.loss_and_gradient(model.forward(x, training=False), y)[0])
        params[index] = saved
        assert grads[index] == pytest.approx((plus - minus) / (2 * eps), rel=0.05, abs=1e-3)


def textures_like_data(count, seed=0):
    """Two separable classes: vertical versus horizontal stripes with noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count).astype(np.float32)
    grid = np.arange(12, dtype=np.float32)
    vertical = np.sin(grid)[None, :].repeat(12, 0)
    images = np.where(labels[:, None, None] > 0, vertical, vertical.T)
    images = images + 0.3 * rng.normal(size=images.shape)
    return images[..., None].astype(np.float32), labels


def test_fit_learns_and_history_has_keras_keys(cpu):
    gpucnn.utils.set_random_seed(0)
    x, y = textures_like_data(96)
    model = gpucnn.Sequential([Conv2D(4, 3, activation="relu", input_shape=(12, 12, 1)),
                               MaxPooling2D(2), Flatten(), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=10, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == list(range(10))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] >= 0.9


def test_validation_split_takes_the_last_fraction_before_shuffling(cpu):
    gpucnn.utils.set_random_seed(0)
    x, y = textures_like_data(40)
    model = gpucnn.Sequential([Flatten(input_shape=(12, 12, 1)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=8, epochs=1, validation_split=0.2, verbose=0)
    loss, accuracy = model.evaluate(x[32:], y[32:], verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(loss, rel=1e-6)
    assert history.history["val_accuracy"][0] == pytest.approx(accuracy)


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses(cpu):
    """With lr 0 the weights never change, so the epoch loss equals evaluate() on the same data, even
    with a partial last batch (Keras weights each batch loss by its size)."""
    x, y = textures_like_data(21)
    model = gpucnn.Sequential([Flatten(input_shape=(12, 12, 1)), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.SGD(learning_rate=1e-30), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    loss, accuracy = model.evaluate(x, y, batch_size=5, verbose=0)
    assert history.history["loss"][0] == pytest.approx(loss, rel=1e-5)
    assert history.history["accuracy"][0] == pytest.approx(accuracy)


def test_predict_returns_probabilities_of_the_sigmoid_head(cpu):
    x, _ = textures_like_data(5)
    model = gpucnn.Sequential([Flatten(input_shape=(12, 12, 1)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    kernel, bias = model.get_weights()
    expected = 1 / (1 + np.exp(-(x.reshape(5, -1).astype(np.float64) @ kernel + bias)))
    np.testing.assert_allclose(model.predict(x, batch_size=2), expected, rtol=1e-5)
    assert model.evaluate(x, np.zeros(5), verbose=0) > 0  # no metrics: a scalar loss


def test_get_and_set_weights_keras_order(cpu):
    model = gpucnn.Sequential([Conv2D(3, (2, 4), input_shape=(5, 5, 2)), BatchNormalization(),
                               Flatten(), Dense(2)])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(2, 4, 2, 3), (3,), (3,), (3,), (3,), (3,), (4 * 2 * 3, 2), (2,)]
    new = [np.full(s, i, np.float32) for i, s in enumerate(shapes)]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="shape"):
        model.set_weights([np.zeros((1, 1))] + new[1:])


def test_batchnorm_and_dropout_train_and_switch_modes(cpu):
    gpucnn.utils.set_random_seed(0)
    x, y = textures_like_data(32)
    model = gpucnn.Sequential([Conv2D(4, 3, input_shape=(12, 12, 1)), BatchNormalization(),
                               Activation("relu"), Flatten(), Dropout(0.5), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    bn = model.layers[1]
    assert not np.allclose(bn.moving_mean.numpy(), 0)  # moving statistics were updated
    # Inference is deterministic (no dropout, moving statistics).
    np.testing.assert_array_equal(model.predict(x), model.predict(x))


def test_save_and_load_round_trip(cpu, tmp_path):
    gpucnn.utils.set_random_seed(0)
    x, y = textures_like_data(16)
    model = gpucnn.Sequential([Conv2D(2, 3, activation="relu", input_shape=(12, 12, 1)),
                               MaxPooling2D(2), BatchNormalization(), Flatten(),
                               Dense(1, activation="sigmoid")], name="round_trip")
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "model.gpucnn"
    model.save(path)
    loaded = gpucnn.load_model(path)
    assert loaded.name == "round_trip" and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.learning_rate == 0.01 and loaded.optimizer.iterations == 2
    np.testing.assert_array_equal(loaded.optimizer.state["m"], model.optimizer.state["m"])
    # Training continues identically from the saved state.
    gpucnn.utils.set_random_seed(5)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    gpucnn.utils.set_random_seed(5)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_progress_bar_prints_epochs_and_metrics(cpu, capsys):
    x, y = textures_like_data(10)
    model = gpucnn.Sequential([Flatten(input_shape=(12, 12, 1)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=4, epochs=2, verbose=1, validation_split=0.2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "2/2 ━━━━━━━━━━━━━━━━━━━━" in out and "val_accuracy:" in out and "- loss:" in out


def test_train_on_batch_as_keras(cpu):
    model = gpucnn.Sequential([Conv2D(2, (3, 3), input_shape=(6, 6, 1)), Flatten(), Dense(1, activation="sigmoid")])
    x = np.random.default_rng(0).random((4, 6, 6, 1), dtype=np.float32)
    y = np.array([0, 1, 0, 1], dtype=np.float32)
    with pytest.raises(ValueError, match="compile"):
        model.train_on_batch(x, y)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.train_on_batch(x, y)
    assert isinstance(loss, float) and loss > 0 and 0 <= accuracy <= 1
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    for _ in range(20):
        logs = model.train_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] < before
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    assert isinstance(model.train_on_batch(x, y), float)
