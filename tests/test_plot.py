"""gpucnn.plot: PNG files with the expected panels, whose pixels are the model's own numbers
(checked against scipy's correlation, not against gpucnn's ops)."""
import sys

import numpy as np
import pytest
from scipy.signal import correlate

import gpucnn
from gpucnn import plot
from gpucnn.layers import Conv2D, Dense, Flatten, MaxPooling2D

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def model_and_data(filters=5, channels=1):
    gpucnn.utils.set_random_seed(0)
    model = gpucnn.Sequential([Conv2D(filters, 3, input_shape=(8, 8, channels)), MaxPooling2D(2),
                               Flatten(), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((16, 8, 8, channels), np.float32)
    return model, x, (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.float32)


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_plot_history_one_panel_per_quantity_with_train_and_validation(cpu, tmp_path):
    model, x, y = model_and_data()
    history = model.fit(x, y, epochs=3, batch_size=4, validation_split=0.25, verbose=0)
    figure = plot.plot_history(history, tmp_path / "history.png")
    assert_png(tmp_path / "history.png")
    assert [axes.get_title() for axes in figure.axes] == ["loss", "accuracy"]
    loss_axes = figure.axes[0]
    assert [line.get_label() for line in loss_axes.get_lines()] == ["train", "validation"]
    np.testing.assert_allclose(loss_axes.get_lines()[1].get_ydata(), history.history["val_loss"])
    np.testing.assert_array_equal(loss_axes.get_lines()[0].get_xdata(), [1, 2, 3])


@pytest.mark.parametrize("channels", [1, 3])
def test_plot_filters_one_panel_per_filter(cpu, tmp_path, channels):
    model, _, _ = model_and_data(filters=5, channels=channels)
    figure = plot.plot_filters(model, filepath=tmp_path / "filters.png")
    assert_png(tmp_path / "filters.png")
    assert len(figure.axes) == 5
    kernel = model.layers[0].get_weights()[0]
    shown = figure.axes[2].get_images()[0].get_array()
    if channels == 1:
        np.testing.assert_allclose(shown, kernel[:, :, 0, 2])
    else:
        rgb = kernel[:, :, :, 2]
        np.testing.assert_allclose(shown, (rgb - rgb.min()) / (rgb.max() - rgb.min()), rtol=1e-6)


def test_plot_filters_max_panels(cpu):
    model, _, _ = model_and_data(filters=12)
    assert len(plot.plot_filters(model, layer=0, max_panels=4).axes) == 4


def test_plot_feature_maps_are_the_layer_outputs(cpu, tmp_path):
    model, x, _ = model_and_data(filters=4)
    figure = plot.plot_feature_maps(model, x[3], layer="{}".format(model.layers[0].name),
                                    filepath=tmp_path / "maps.png")
    assert_png(tmp_path / "maps.png")
    assert len(figure.axes) == 4
    kernel, bias = model.layers[0].get_weights()
    for channel in range(4):
        expected = correlate(x[3, :, :, 0].astype(np.float64), kernel[:, :, 0, channel], mode="valid")
        np.testing.assert_allclose(figure.axes[channel].get_images()[0].get_array(),
                                   expected + bias[channel], rtol=1e-5, atol=1e-6)


def test_plot_feature_maps_after_pooling_and_errors(cpu):
    model, x, _ = model_and_data(filters=4)
    assert len(plot.plot_feature_maps(model, x[:1], layer=1).axes) == 4
    with pytest.raises(ValueError, match=r"`layer`.*not feature maps.*Fix"):
        plot.plot_feature_maps(model, x[0], layer=2)
    with pytest.raises(ValueError, match=r"`x` must be one image.*\(16, 8, 8, 1\).*x\[0\]"):
        plot.plot_feature_maps(model, x, layer=0)
    with pytest.raises(ValueError, match=r"`layer` must be a Conv2D.*dense"):
        plot.plot_filters(model, layer=-1)
    with pytest.raises(ValueError, match=r"`layer` must be an index.*'nope'"):
        plot.plot_filters(model, layer="nope")


def test_missing_matplotlib_says_to_install_the_plot_extra(cpu, monkeypatch):
    model, _, _ = model_and_data()
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(ImportError, match=r"pip install 'gpucnn\[plot\]'"):
        plot.plot_filters(model)


def test_bad_layer_index_error_gives_the_accepted_range(cpu):
    model, _, _ = model_and_data()
    with pytest.raises(ValueError, match=r"`layer` must be an index in \[-4, 4\).*got 4"):
        plot.plot_filters(model, layer=4)
