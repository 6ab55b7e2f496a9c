"""The Keras-style loss objects (gpucnn.losses): names, options, the op they bind, mse in a model."""
import numpy as np
import pytest

import gpucnn
from gpucnn import losses, reference
from gpucnn.layers import Dense


@pytest.mark.parametrize("identifier", ["mse", "MSE", "mean_squared_error", "MeanSquaredError"])
def test_mean_squared_error_by_every_keras_name(identifier):
    assert isinstance(losses.get(identifier), losses.MeanSquaredError)


@pytest.mark.parametrize("loss", [losses.MeanSquaredError(), losses.BinaryCrossentropy(label_smoothing=0.1),
                                  losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.25)])
def test_serialize_round_trip(loss):
    restored = losses.deserialize(losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()


@pytest.mark.parametrize("cls", [losses.BinaryCrossentropy, losses.CategoricalCrossentropy])
@pytest.mark.parametrize("smoothing", [-0.5, 2.0, float("nan")])
def test_label_smoothing_outside_0_1_is_refused_at_construction(cls, smoothing):
    with pytest.raises(ValueError, match=r"`label_smoothing` must be a float in \[0, 1\]"):
        cls(label_smoothing=smoothing)


@pytest.mark.parametrize("logits", [False, True])
def test_op_binds_label_smoothing(logits):
    loss = losses.BinaryCrossentropy(label_smoothing=0.2)
    outputs = np.array([[0.3], [0.8], [0.6]], np.float32)
    labels = np.array([[0.0], [1.0], [0.0]], np.float32)
    got = loss.op(reference, logits)(outputs, labels)
    op = reference.sigmoid_binary_crossentropy if logits else reference.binary_crossentropy
    smoothed = labels * 0.8 + 0.1
    expected_loss = op(outputs, smoothed)[0]
    np.testing.assert_allclose(got[0], expected_loss, rtol=1e-6)
    assert got[2] == op(outputs, labels)[2]  # accuracy against the labels as given


def test_op_without_options_is_the_backend_op():
    assert losses.get("mse").op(reference, False) is reference.mean_squared_error
    assert losses.get("binary_crossentropy").op(reference, True) is reference.sigmoid_binary_crossentropy


def test_mse_labels_are_checked():
    loss = losses.MeanSquaredError()
    assert loss.prepare_labels(np.array([1, 2]), (1,)).shape == (2, 1)
    with pytest.raises(ValueError, match=r"`y` has shape \(2, 3\).*mean_squared_error"):
        loss.prepare_labels(np.zeros((2, 3)), (2,))
    with pytest.raises(ValueError, match="NaN"):
        loss.prepare_labels(np.array([np.nan]), (1,))


def test_mse_model_evaluates_keras_numbers(cpu):
    """A linear regression head compiled with loss='mse': evaluate's loss and 'accuracy' (binary for one
    unit, as Keras picks) against NumPy on predict's outputs."""
    gpucnn.utils.set_random_seed(3)
    x = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    y = (x.sum(axis=1) > 0).astype(np.float32)
    model = gpucnn.Sequential([Dense(1, input_shape=(4,))])
    model.compile(optimizer="sgd", loss="mse", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    predictions = model.predict(x, verbose=0)[:, 0].astype(np.float64)
    loss, accuracy = model.evaluate(x, y, batch_size=10, verbose=0)
    np.testing.assert_allclose(loss, np.mean((predictions - y) ** 2), rtol=1e-5)
    assert accuracy == pytest.approx(np.mean((predictions > 0.5) == y))


@pytest.mark.parametrize("loss, labels", [
    ("categorical_crossentropy", np.eye(3, dtype=np.float32)[[0, 2, 1, 1, 0, 2]]),
    ("binary_crossentropy", np.array([[0, 1, 1], [1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0]])),
])
def test_fortran_order_labels_evaluate_on_the_kernels(emulated, small_numba_launches, loss, labels):
    """Labels in Fortran order (pandas' to_numpy() of several columns) reach the loss kernels as C-contiguous
    batches, and give the numbers of the same labels in C order."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    model = gpucnn.Sequential([gpucnn.Input((4,)), Dense(3, activation="softmax" if loss.startswith("cat")
                                                              else "sigmoid")])
    model.compile(optimizer="sgd", loss=loss, metrics=["categorical_accuracy" if loss.startswith("cat")
                                                      else "binary_accuracy"])
    fortran = np.asfortranarray(labels)
    assert not fortran.flags.c_contiguous
    expected = model.evaluate(x, labels, batch_size=4, verbose=0)
    assert model.evaluate(x, fortran, batch_size=4, verbose=0) == expected
