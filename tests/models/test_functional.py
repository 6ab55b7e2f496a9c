"""gpucnn.Model(inputs, outputs): graphs of layers built on symbolic tensors (Keras 3's Functional API).

Gradients are checked against closed forms computed here in float64 NumPy (a tensor read by two
layers, a layer called twice), a chain against the same Sequential model, the cpu backend against the
emulated one (every op a real kernel), and the graph step runner against eager steps.  Layer order
and the summary's "Connected to" column are those Keras 3.15 printed for the same graphs.
"""
import numpy as np
import pytest

import gpucnn
from gpucnn import backend, execution, step_runners
from gpucnn.layers import (
    Activation,
    Add,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    MaxPooling2D,
)
from gpucnn.optimizers import SGD


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def one_sgd_step(model, x, labels):
    """Weights before and after one SGD step (learning rate 1, no momentum) on a softmax head."""
    model.compile(optimizer=SGD(learning_rate=1.0), loss="categorical_crossentropy")
    before = model.get_weights()
    model.train_on_batch(x, labels)
    return [w.astype(np.float64) for w in before], model.get_weights()


def data(n=5, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    return x, np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]


def test_a_tensor_read_by_two_layers_gets_the_sum_of_their_gradients(cpu):
    x, labels = data()
    inputs = gpucnn.Input(shape=(4,))
    hidden = Dense(5)(inputs)
    outputs = Activation("softmax")(Add()([Dense(3)(hidden), Dense(3)(hidden)]))
    model = gpucnn.Model(inputs, outputs)
    (w0, b0, w1, b1, w2, b2), after = one_sgd_step(model, x, labels)
    h = x @ w0 + b0
    dz = (softmax(h @ w1 + b1 + h @ w2 + b2) - labels) / len(x)
    dh = dz @ w1.T + dz @ w2.T
    expected = [w0 - x.T @ dh, b0 - dh.sum(0), w1 - h.T @ dz, b1 - dz.sum(0), w2 - h.T @ dz, b2 - dz.sum(0)]
    for got, want in zip(after, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_layer_called_twice_shares_its_weights_and_sums_both_gradients(cpu):
    x, labels = data()
    inputs = gpucnn.Input(shape=(4,))
    shared = Dense(4, name="shared")
    outputs = Dense(3, activation="softmax")(shared(shared(inputs)))
    model = gpucnn.Model(inputs, outputs)
    assert model.layers[0].name == "shared" and len(model.weights) == 4
    (w, b, v, c), after = one_sgd_step(model, x, labels)
    h1 = x @ w + b
    h2 = h1 @ w + b
    dz = (softmax(h2 @ v + c) - labels) / len(x)
    dh2 = dz @ v.T
    dh1 = dh2 @ w.T
    expected = [w - (h1.T @ dh2 + x.T @ dh1), b - (dh2.sum(0) + dh1.sum(0)), v - h2.T @ dz, c - dz.sum(0)]
    for got, want in zip(after, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def conv_stack(functional, seed=3):
    gpucnn.utils.set_random_seed(seed)
    layers = [Conv2D(3, 3, activation="relu"), MaxPooling2D(), BatchNormalization(), Dropout(0.3, seed=1),
              Flatten(), Dense(1, activation="sigmoid")]
    if not functional:
        return gpucnn.Sequential([gpucnn.Input((8, 8, 2))] + layers)
    x = inputs = gpucnn.Input(shape=(8, 8, 2))
    for layer in layers:
        x = layer(x)
    return gpucnn.Model(inputs, x)


def images(n=8, seed=1):
    x = np.random.default_rng(seed).normal(size=(n, 8, 8, 2)).astype(np.float32)
    return x, (x[..., 0].mean(axis=(1, 2)) > 0).astype(np.float32)


def test_a_chain_trains_exactly_as_the_same_sequential_model(cpu):
    x, y = images()
    models = [conv_stack(functional) for functional in (False, True)]
    models[1].set_weights(models[0].get_weights())
    histories = []
    for model in models:
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        histories.append(model.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0).history)
    assert type(models[1].execution_plan()[0]) is execution.ConvReluPool
    assert histories[0] == histories[1]
    for got, want in zip(models[1].get_weights(), models[0].get_weights()):
        np.testing.assert_array_equal(got, want)


def residual_model(seed=2):
    gpucnn.utils.set_random_seed(seed)
    inputs = gpucnn.Input(shape=(6, 6, 2))
    x = Conv2D(3, 3, padding="same", activation="relu", name="stem")(inputs)
    shortcut = Conv2D(3, 1, strides=2, name="shortcut")(x)
    y = MaxPooling2D(name="pool")(Conv2D(3, 3, padding="same", activation="relu", name="branch")(x))
    y = Activation("relu")(Add(name="add")([y, shortcut]))
    y = Concatenate()([y, Conv2D(2, 1, strides=2)(x)])
    outputs = Dense(1, activation="sigmoid")(GlobalAveragePooling2D()(y))
    model = gpucnn.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def residual_data(n, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 6, 6, 2)).astype(np.float32)
    return x, (x[..., 1].mean(axis=(1, 2)) > 0).astype(np.float32)


def test_residual_graph_fuses_conv_relu_pool_and_trains_the_same_on_emulated_and_cpu(emulated,
                                                                                     small_numba_launches):
    x, y = residual_data(3)
    results = []
    for name in ("cpu", "emulated"):
        with backend.using_backend(name):
            model = residual_model()
            kinds = [type(unit).__name__ for unit in model.execution_plan()]
            history = model.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0).history
            results.append((model.get_weights(), history["loss"], model.predict(x, verbose=0)))
    assert kinds.count("ConvReluPool") == 1  # the conv feeding both branches does not fuse
    (cpu_weights, cpu_loss, cpu_predictions), (emu_weights, emu_loss, emu_predictions) = results
    for got, want in zip(emu_weights, cpu_weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emu_loss, cpu_loss, rtol=1e-5)
    np.testing.assert_allclose(emu_predictions, cpu_predictions, rtol=1e-4, atol=1e-6)


def test_graph_step_runner_matches_eager_steps_on_a_residual_graph(cpu):
    x, y = residual_data(9)
    eager_model, graph_model = residual_model(), residual_model()
    graph_model.setup_training()
    eager_model.setup_training()
    runner = step_runners.GraphStep(graph_model, capture=step_runners.EagerCapture())
    batches = [(x[i:i + 3], y[i:i + 3]) for i in range(0, 9, 3)]
    for xb, yb in batches:
        graph_loss, _ = runner(xb, yb)
        eager_loss, _ = eager_model.train_step(xb, yb)
        assert float(graph_loss) == float(eager_loss)
    assert (runner.captures, runner.replays) == (1, 2)
    for got, want in zip(graph_model.get_weights(), eager_model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_residual_graph_learns_and_round_trips_through_config_and_save(cpu, tmp_path):
    x, y = residual_data(64)
    model = residual_model()
    model.compile(optimizer=gpucnn.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=25, verbose=0).history
    assert history["loss"][-1] < 0.3 * history["loss"][0] and history["accuracy"][-1] > 0.9
    predictions = model.predict(x, verbose=0)
    rebuilt = gpucnn.Functional.from_config(model.get_config())
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_array_equal(rebuilt.predict(x, verbose=0), predictions)
    model.save(tmp_path / "residual.gpucnn")
    loaded = gpucnn.load_model(tmp_path / "residual.gpucnn")
    assert isinstance(loaded, gpucnn.Functional) and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), predictions)
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)


def test_a_shared_layer_survives_config_round_trip(cpu):
    x, _ = data()
    inputs = gpucnn.Input(shape=(4,))
    shared = Dense(4)
    outputs = Dense(2)(Concatenate()([shared(inputs), shared(Activation("relu")(shared(inputs)))]))
    model = gpucnn.Model(inputs, outputs, name="shared_config")
    rebuilt = gpucnn.Functional.from_config(model.get_config())
    assert len(rebuilt.nodes) == len(model.nodes) == 6 and len(rebuilt.weights) == 4
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_array_equal(rebuilt.predict(x), model.predict(x))


def test_layer_order_and_summary_follow_keras(cpu):
    # Keras 3.15 on this graph: layers conv2d, conv2d_2, conv2d_1, add, ... and the rows below.
    inputs = gpucnn.Input(shape=(8, 8, 3), name="image")
    x = Conv2D(4, 3, padding="same", activation="relu", name="a")(inputs)
    shortcut = Conv2D(4, 1, name="c")(inputs)
    y = Add(name="add")([Conv2D(4, 3, padding="same", name="b")(x), shortcut])
    outputs = Dense(3, activation="softmax", name="head")(GlobalAveragePooling2D(name="gap")(y))
    model = gpucnn.Model(inputs, outputs, name="toy")
    assert [layer.name for layer in model.layers] == ["a", "b", "c", "add", "gap", "head"]
    assert [w.name for w in model.weights][:6] == ["a/kernel", "a/bias", "b/kernel", "b/bias", "c/kernel",
                                                   "c/bias"]
    lines = []
    model.summary(print_fn=lines.append)
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    assert rows == [["image (InputLayer)", "(None, 8, 8, 3)", "0", "-"],
                    ["a (Conv2D)", "(None, 8, 8, 4)", "112", "image[0][0]"],
                    ["b (Conv2D)", "(None, 8, 8, 4)", "148", "a[0][0]"],
                    ["c (Conv2D)", "(None, 8, 8, 4)", "16", "image[0][0]"],
                    ["add (Add)", "(None, 8, 8, 4)", "0", "b[0][0],"], ["", "", "", "c[0][0]"],
                    ["gap (GlobalAveragePooling2D)", "(None, 4)", "0", "add[0][0]"],
                    ["head (Dense)", "(None, 3)", "15", "gap[0][0]"]]
    assert " Total params: 291 (1.14 KB)" in lines


# -- errors at model construction -------------------------------------------------------------------
def test_several_inputs_or_outputs_are_refused_clearly(cpu):
    first, second = gpucnn.Input(shape=(4,)), gpucnn.Input(shape=(4,))
    out = Dense(2)(first)
    with pytest.raises(ValueError, match="holds 2 tensors.*one input and one output"):
        gpucnn.Model([first, second], out)
    with pytest.raises(ValueError, match="holds 2 tensors"):
        gpucnn.Model(first, [out, Dense(1)(first)])
    with pytest.raises(TypeError, match="needs both"):
        gpucnn.Model()
    with pytest.raises(TypeError, match="`inputs` must be a gpucnn.Input.*got the output of layer"):
        gpucnn.Model(out, Dense(1)(out))
    with pytest.raises(TypeError, match="dicts of several are not implemented"):
        gpucnn.Model({"x": first}, out)


def test_an_output_computed_eagerly_from_an_array_is_refused(cpu):
    inputs = gpucnn.Input(shape=(4,))
    array_output = Dense(2)(np.zeros((1, 4), np.float32))
    with pytest.raises(TypeError, match="`outputs` must be a symbolic tensor.*ndarray of shape \\(1, 2\\)"):
        gpucnn.Model(inputs, array_output)
    with pytest.raises(TypeError, match="'add' \\(Add\\) was called on a mix.*input 1 is a ndarray of shape "
                                        "\\(1, 4\\)"):
        Add(name="add")([inputs, np.zeros((1, 4), np.float32)])
    with pytest.raises(TypeError, match="has no values"):
        np.asarray(inputs)


def test_outputs_that_do_not_depend_on_the_input_or_need_another_input_are_refused(cpu):
    model_input, other = gpucnn.Input(shape=(4,), name="x"), gpucnn.Input(shape=(4,), name="other")
    with pytest.raises(ValueError, match="does not depend on the input 'x' \\(None, 4\\).*input 'other'"):
        gpucnn.Model(model_input, Dense(2, name="d")(other))
    joined = Add(name="join")([Dense(2)(model_input), Dense(2)(other)])
    with pytest.raises(ValueError, match="graph disconnected: layer 'dense_\\d+' is called on input 'other'"):
        gpucnn.Model(model_input, joined)
    with pytest.raises(ValueError, match="no layers"):
        gpucnn.Model(model_input, model_input)


def test_shape_mismatches_name_the_layers_and_shapes(cpu):
    inputs = gpucnn.Input(shape=(6, 6, 2))
    a, b = Conv2D(4, 3, name="a")(inputs), Conv2D(4, 1, name="b")(inputs)
    with pytest.raises(ValueError, match="'sum' \\(Add\\) needs inputs of one shape, got \\(None, 4, 4, 4\\), "
                                         "\\(None, 6, 6, 4\\)"):
        Add(name="sum")([a, b])
    with pytest.raises(ValueError, match="'cat' \\(Concatenate\\) needs inputs that match"):
        Concatenate(name="cat")([a, b])
    with pytest.raises(TypeError, match="'c' \\(Conv2D\\) takes one tensor, got a list of 2"):
        Conv2D(2, 1, name="c")([a, b])
    shared = Conv2D(2, 1, name="shared")
    shared(a)
    with pytest.raises(ValueError, match="'shared' \\(Conv2D\\) was built for inputs \\(None, 4, 4, 4\\) and "
                                         "is now called on output of layer 'b' \\(None, 6, 6, 4\\)"):
        shared(b)


def test_config_with_a_cycle_or_a_missing_layer_is_refused(cpu):
    inputs = gpucnn.Input(shape=(4,), name="x")
    model = gpucnn.Model(inputs, Dense(2, name="second")(Dense(3, name="first")(inputs)), name="m")
    config = model.get_config()
    config["layers"][0]["inbound_nodes"] = [[["second", 0]]]  # first reads second, second reads first
    with pytest.raises(ValueError, match="'first' call 0 on \\[\\['second', 0\\]\\].*a cycle"):
        gpucnn.Functional.from_config(config)
    config["layers"][0]["inbound_nodes"] = [[["ghost", 0]]]
    with pytest.raises(ValueError, match="unknown layers \\['ghost'\\]"):
        gpucnn.Functional.from_config(config)


def test_duplicate_names_are_refused(cpu):
    inputs = gpucnn.Input(shape=(4,))
    with pytest.raises(ValueError, match="\\['twin'\\] name several layers"):
        gpucnn.Model(inputs, Dense(2, name="twin")(Dense(4, name="twin")(inputs)))


def test_an_output_layer_called_twice_hands_logits_to_the_loss_from_its_output_call_only(cpu):
    """The fused loss takes the output call's pre-activation logits; the layer's other call keeps its
    softmax, in training and in predict."""
    x, labels = data(classes=4)
    inputs = gpucnn.Input(shape=(4,))
    head = Dense(4, activation="softmax", name="head")
    model = gpucnn.Model(inputs, head(head(inputs)))
    (w, b), after = one_sgd_step(model, x, labels)
    a1 = softmax(x @ w + b)
    dz2 = (softmax(a1 @ w + b) - labels) / len(x)
    da1 = dz2 @ w.T
    dz1 = a1 * (da1 - np.sum(da1 * a1, axis=1, keepdims=True))
    for got, want in zip(after, [w - (a1.T @ dz2 + x.T @ dz1), b - (dz2.sum(0) + dz1.sum(0))]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    w, b = after
    np.testing.assert_allclose(model.predict(x), softmax(softmax(x @ w + b) @ w + b), rtol=1e-5, atol=1e-6)
    restored = gpucnn.Functional.from_config(model.get_config())
    restored.set_weights(after)
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))


def test_profile_and_feature_maps_run_the_graph(cpu):
    pytest.importorskip("matplotlib")
    from gpucnn import plot
    x, y = residual_data(4)
    model = residual_model()
    result = model.profile(x, y, steps=2, warmup=0, print_fn=None)
    assert [row["name"] for row in result.rows] == [unit.name for unit in model.execution_plan()] + [
        "loss", "optimizer"]
    add = next(row for row in result.rows if row["kind"] == "Add")
    # The profiler's byte count for elementwise units: forward reads both (4, 3, 3, 3) inputs and
    # writes the output; backward reads dy and a saved output-sized tensor and writes dx for both.
    tensor_bytes = 4 * 4 * 27
    assert add["rate"] == pytest.approx((3 + 4) * tensor_bytes / ((add["forward_ms"] + add["backward_ms"])
                                                                  * 1e-3) / 1e9)
    figure = plot.plot_feature_maps(model, x[0], layer="add")
    stem = model.get_layer("stem")(x[:1])
    expected = (model.get_layer("pool")(model.get_layer("branch")(stem))
                + model.get_layer("shortcut")(stem))[0]
    assert len(figure.axes) == 3
    for channel in range(3):
        np.testing.assert_allclose(figure.axes[channel].get_images()[0].get_array(), expected[..., channel],
                                   rtol=1e-6, atol=1e-6)
