"""gpucnn.datasets: argument checks that name the argument and the bad value."""
import pytest

from gpucnn import datasets


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=50.0), r"`size` must be a positive int, got 50\.0"),
    (dict(size=True), r"`size` must be a positive int, got True"),
    (dict(size=113), r"`size` must be at most 112.*got 113.*Fix"),
    (dict(train_per_class=0), r"`train_per_class` must be a positive int, got 0"),
    (dict(names=("grass",)), r"`names` must list at least 2 distinct.*got \('grass',\)"),
    (dict(names=("grass", "grass")), r"`names` must list"),
    (dict(names=("grass", "camera")), r"`names` must list.*\('brick', 'grass', 'gravel'\)"),
])
def test_textures_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.textures(**kwargs)


@pytest.mark.parametrize("test_fraction", [0.001, 0.999, 0, 1])
def test_faces_refuses_a_fraction_that_leaves_a_set_empty(test_fraction):
    with pytest.raises(ValueError, match=rf"`test_fraction`.*each set, got {test_fraction}.*Fix"):
        datasets.faces(test_fraction=test_fraction)


def test_faces_split_sizes():
    (x_train, y_train), (x_test, y_test) = datasets.faces(test_fraction=0.25)
    assert x_train.shape == (150, 25, 25, 1) and x_test.shape == (50, 25, 25, 1)
    assert y_train.sum() + y_test.sum() == 100


def test_textures_label_each_named_photograph_by_its_position():
    import numpy as np
    from skimage import data
    (x_train, y_train), (_, y_val) = datasets.textures(train_per_class=3, validation_per_class=2, size=8,
                                                       names=("gravel", "brick", "grass"))
    assert x_train.shape == (9, 8, 8, 1) and sorted(y_val) == [0, 0, 1, 1, 2, 2]
    # Every label-1 training crop is an 8x8 window (possibly flipped) of brick's training rows.
    windows = np.lib.stride_tricks.sliding_window_view(data.brick()[:384].astype(np.float32) / 255.0, (8, 8))
    for crop in x_train[y_train == 1, ..., 0]:
        assert any((windows == flipped).all(axis=(2, 3)).any()
                   for flipped in (crop, crop[::-1], crop[:, ::-1], crop[::-1, ::-1]))
