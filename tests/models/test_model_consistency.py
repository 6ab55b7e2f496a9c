"""A model stays consistent whatever happens to it between calls: layers added or popped after
training, a new compile, one layer instance used by two models (Keras: both train the same weights),
and set_weights that either replaces every weight or none.  Predictions and updates are checked
against NumPy computations of the same network."""
import numpy as np
import pytest

import gpucnn
from gpucnn.layers import Dense, Flatten
from gpucnn.optimizers import SGD


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


ACTIVATIONS = {"sigmoid": sigmoid, "softmax": softmax, "linear": lambda z: z}


def numpy_predict(model, x):
    """The model's outputs computed from its weights in NumPy (Flatten and Dense layers only)."""
    out = x.reshape(len(x), -1).astype(np.float64)
    for layer in model.layers:
        if isinstance(layer, Dense):
            kernel, bias = layer.get_weights()
            out = ACTIVATIONS[layer.activation](out @ kernel + bias)
    return out


def data(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, 2, 1)).astype(np.float32)
    return x, (x.sum(axis=(1, 2, 3)) > 0).astype(np.float32)


def test_layers_added_or_popped_after_fit_keep_every_activation(cpu):
    gpucnn.utils.set_random_seed(0)
    x, y = data()
    model = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(x, np.eye(3, dtype=np.float32)[y.astype(int)], epochs=1, verbose=0)
    model.add(Dense(1, activation="sigmoid"))  # the softmax layer is no longer the output layer
    np.testing.assert_allclose(model.predict(x), numpy_predict(model, x), rtol=1e-5, atol=1e-6)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_allclose(model.predict(x), numpy_predict(model, x), rtol=1e-5, atol=1e-6)
    model.pop()  # the softmax layer is the output layer again, while the loss is binary
    np.testing.assert_allclose(model.predict(x), numpy_predict(model, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(x).sum(axis=1), 1, rtol=1e-5)


def sgd_step_expected(model, x, y, learning_rate):
    """The weights after one SGD step of BCE on Flatten → Dense(linear) → Dense(sigmoid), in NumPy."""
    (w1, b1), (w2, b2) = [[w.numpy().astype(np.float64) for w in layer.weights] for layer in model.layers[1:]]
    flat = x.reshape(len(x), -1).astype(np.float64)
    hidden = flat @ w1 + b1
    dz = (sigmoid(hidden @ w2 + b2) - y.reshape(-1, 1)) / len(x)
    dhidden = dz @ w2.T
    grads = [flat.T @ dhidden, dhidden.sum(axis=0), hidden.T @ dz, dz.sum(axis=0)]
    return [w - learning_rate * g for w, g in zip((w1, b1, w2, b2), grads)]


@pytest.mark.parametrize("backend_name", ["cpu", "emulated"])
def test_a_layer_in_two_models_trains_in_both(request, backend_name):
    request.getfixturevalue(backend_name)
    if backend_name == "emulated":
        request.getfixturevalue("small_numba_launches")
    gpucnn.utils.set_random_seed(1)
    x, y = data()
    shared = Dense(2, name="shared")
    a = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), shared, Dense(1, activation="sigmoid")])
    b = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), shared, Dense(1, activation="sigmoid")])
    for model in (a, b):
        model.compile(optimizer=SGD(learning_rate=0.5), loss="binary_crossentropy")
    for model in (a, b, a, b, a):
        want = sgd_step_expected(model, x, y, 0.5)
        model.train_on_batch(x, y)
        got = [w.numpy() for layer in model.layers[1:] for w in layer.weights]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    model.fit(x, y, batch_size=3, epochs=1, verbose=0)
    # Both models compute with the one set of shared weights.
    for model in (a, b):
        np.testing.assert_allclose(model.predict(x), numpy_predict(model, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.layers[1].weights[0].numpy(), b.layers[1].weights[0].numpy())


def test_a_shared_layer_keeps_each_models_optimizer_state(cpu):
    """Repacking a model's flat buffer (its shared layer was trained by another model) keeps what its
    optimizer learned: with momentum, alternating models equals training each with its own velocity."""
    gpucnn.utils.set_random_seed(2)
    x, y = data()
    shared = Dense(2, name="shared_momentum")
    a = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), shared, Dense(1, activation="sigmoid")])
    b = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(2), Dense(1, activation="sigmoid")])
    b.compile(optimizer=SGD(learning_rate=0.1, momentum=0.9), loss="binary_crossentropy")
    b.set_weights(a.get_weights())
    a.compile(optimizer=SGD(learning_rate=0.1, momentum=0.9), loss="binary_crossentropy")
    other = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), shared, Dense(1, activation="sigmoid")])
    other.compile(optimizer=SGD(learning_rate=0.1, momentum=0.9), loss="binary_crossentropy")
    for _ in range(3):
        a.train_on_batch(x, y)
        b.train_on_batch(x, y)  # b: a's twin that nothing else touches
        saved = [w.numpy() for w in shared.weights]
        other.train_on_batch(x, y)  # moves the shared weights into other's buffer ...
        for weight, value in zip(shared.weights, saved):
            weight.assign(value)  # ... and back to a's values, so a and b stay twins
    for got, want in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_a_weight_listed_twice_is_packed_once(cpu):
    """A layer called twice in one model lists its weights twice: one slot each in the flat buffer,
    and the buffer still holds them afterwards (no repacking on every step)."""
    layer = Dense(2)
    layer.build((3,))
    weights = layer.weights + layer.weights
    flat = gpucnn.trainer.FlatParameters(weights)
    assert flat.size == 3 * 2 + 2 and flat.holds(weights) and flat.holds(layer.weights)
    np.testing.assert_array_equal(flat.values[:6].reshape(3, 2), layer.weights[0].value)


def small_dense_model():
    gpucnn.utils.set_random_seed(4)
    model = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(3), Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


@pytest.mark.parametrize("bad_last, error, match", [
    (np.zeros(2, np.complex64), TypeError, r"complex64 for weight 'dense.*/bias'.*np\.real"),
    (np.array(["a", "b"]), TypeError, r"<U1 for weight 'dense.*/bias'.*weights hold real numbers"),
    ([[1.0], [2.0, 3.0]], TypeError, r"dense.*/bias'.*not a numeric array"),
    (np.zeros(3), ValueError, r"dense.*/bias' has shape \(2,\).*shape \(3,\)"),
])
def test_set_weights_changes_nothing_when_any_array_is_bad(cpu, bad_last, error, match):
    """Three good arrays and a bad last one: the error names the weight and nothing is assigned."""
    for target in ("model", "layer"):
        model = small_dense_model()
        before = model.get_weights()
        arrays = [w + 1 for w in before[:-1]] + [bad_last]
        with pytest.raises(error, match=match):
            if target == "model":
                model.set_weights(arrays)
            else:
                model.layers[2].set_weights(arrays[2:])
        for got, want in zip(model.get_weights(), before):
            np.testing.assert_array_equal(got, want)


def test_complex_labels_are_refused(cpu):
    model = small_dense_model()
    x = np.zeros((2, 2, 2, 1), np.float32)
    with pytest.raises(TypeError, match=r"`y` must hold real numbers.*complex128.*np\.real"):
        model.fit(x, np.eye(2)[[0, 1]] + 0j, verbose=0)


def test_the_output_layer_of_a_graph_keeps_its_activation_in_another_model(cpu):
    """A Functional model hands its output layer's logits to the fused loss only while its own unit
    runs: the same layer inside a Sequential model still applies its sigmoid."""
    gpucnn.utils.set_random_seed(8)
    x, y = data()
    head = Dense(3, activation="sigmoid")
    inputs = gpucnn.Input((2, 2, 1))
    graph = gpucnn.Model(inputs, head(Flatten()(inputs)))
    graph.compile(optimizer="adam", loss="binary_crossentropy")
    graph.fit(x, np.stack([y] * 3, axis=1), epochs=1, verbose=0)
    stack = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), head, Dense(1, activation="sigmoid")])
    for model in (graph, stack):
        np.testing.assert_allclose(model.predict(x), numpy_predict(model, x), rtol=1e-5, atol=1e-6)
