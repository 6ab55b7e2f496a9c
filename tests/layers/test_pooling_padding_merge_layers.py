"""The layers AveragePooling2D, GlobalAveragePooling2D, ZeroPadding2D, Add and Concatenate: Keras'
arguments and defaults, shapes, forward/backward through the backend's ops on the cpu and emulated
backends (checked against plain NumPy formulas), config round trips and the errors users see."""
import numpy as np
import pytest

import gpucnn
from gpucnn import backend
from gpucnn.layers import (
    Add,
    AveragePooling2D,
    Concatenate,
    Dense,
    GlobalAveragePooling2D,
    ZeroPadding2D,
    deserialize,
    serialize,
)

BACKENDS = ["cpu", "emulated"]


def _x(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _run(name, layer, inputs, dy):
    """(y, dx) of ``layer`` on the backend ``name`` as NumPy arrays (dx a list for merge layers)."""
    with backend.using_backend(name) as b:
        y = layer(inputs, training=True)
        dx = layer.backward(b.asarray(dy))
        to_numpy = b.to_numpy
        return to_numpy(y), ([to_numpy(d) for d in dx] if isinstance(dx, list) else to_numpy(dx))


def _roundtrip(layer):
    copy = deserialize(serialize(layer))
    assert type(copy) is type(layer) and copy.get_config() == layer.get_config()
    return copy


@pytest.mark.parametrize("name", BACKENDS)
def test_average_pooling_defaults_to_tiling_windows(name, small_numba_launches):
    layer = AveragePooling2D()
    assert (layer.pool_size, layer.strides, layer.padding) == ((2, 2), (2, 2), "valid")
    x, dy = _x((2, 4, 6, 3)), _x((2, 2, 3, 3), seed=1)
    y, dx = _run(name, layer, x, dy)
    np.testing.assert_allclose(y, x.reshape(2, 2, 2, 3, 2, 3).mean(axis=(2, 4)), rtol=1e-6)
    # Each input belongs to one window of 4 cells.
    np.testing.assert_allclose(dx, np.repeat(np.repeat(dy, 2, axis=1), 2, axis=2) / 4, rtol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
def test_average_pooling_same_padding_averages_the_cells_inside(name, small_numba_launches):
    layer = AveragePooling2D(pool_size=3, strides=2, padding="SAME")
    assert layer.compute_output_shape((5, 4, 2)) == (3, 2, 2)
    x = _x((1, 5, 4, 2))
    y, _ = _run(name, layer, x, np.ones((1, 3, 2, 2), np.float32))
    # Window (0, 0) covers rows -1..1 and columns 0..2 (the 'same' padding of TensorFlow).
    np.testing.assert_allclose(y[0, 0, 0], x[0, 0:2, 0:3].mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(y[0, 2, 1], x[0, 3:5, 2:4].mean(axis=(0, 1)), rtol=1e-6)
    copy = _roundtrip(layer)
    assert (copy.pool_size, copy.strides, copy.padding) == ((3, 3), (2, 2), "same")


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_average_pooling(name, keepdims, small_numba_launches):
    layer = GlobalAveragePooling2D(keepdims=keepdims)
    out_shape = (1, 1, 3) if keepdims else (3,)
    assert layer.compute_output_shape((4, 5, 3)) == out_shape
    x, dy = _x((2, 4, 5, 3)), _x((2,) + out_shape, seed=1)
    y, dx = _run(name, layer, x, dy)
    np.testing.assert_allclose(y, x.mean(axis=(1, 2), keepdims=keepdims), rtol=1e-6)
    np.testing.assert_allclose(dx, np.broadcast_to(dy.reshape(2, 1, 1, 3) / 20, x.shape), rtol=1e-6)
    assert _roundtrip(layer).keepdims is keepdims


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("padding, expected", [(1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))),
                                               (((0, 1), (2, 3)), ((0, 1), (2, 3)))])
def test_zero_padding(name, padding, expected, small_numba_launches):
    layer = ZeroPadding2D(padding)
    assert layer.padding == expected
    (top, bottom), (left, right) = expected
    out_shape = (3 + top + bottom, 2 + left + right, 2)
    assert layer.compute_output_shape((3, 2, 2)) == out_shape
    x, dy = _x((2, 3, 2, 2)), _x((2,) + out_shape, seed=1)
    y, dx = _run(name, layer, x, dy)
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))))
    np.testing.assert_array_equal(dx, dy[:, top:top + 3, left:left + 2])
    assert _roundtrip(layer).padding == expected
    assert ZeroPadding2D().padding == ((1, 1), (1, 1))  # Keras' default


@pytest.mark.parametrize("name", BACKENDS)
def test_add_sums_its_inputs_and_gives_each_the_gradient(name, small_numba_launches):
    layer = Add()
    a, b, c = _x((2, 3, 3, 2)), _x((2, 3, 3, 2), 1), _x((2, 3, 3, 2), 2)
    dy = _x((2, 3, 3, 2), 3)
    y, grads = _run(name, layer, [a, b, c], dy)
    np.testing.assert_allclose(y, a + b + c, rtol=1e-6)
    assert len(grads) == 3 and all(np.array_equal(g, dy) for g in grads)
    assert layer.output_shape == (3, 3, 2)
    _roundtrip(layer)


@pytest.mark.parametrize("name", BACKENDS)
def test_concatenate_joins_channels_and_splits_the_gradient(name, small_numba_launches):
    layer = Concatenate()
    a, b = _x((2, 3, 3, 2)), _x((2, 3, 3, 5), 1)
    dy = _x((2, 3, 3, 7), 3)
    y, (da, db) = _run(name, layer, [a, b], dy)
    np.testing.assert_array_equal(y, np.concatenate([a, b], axis=-1))
    np.testing.assert_array_equal(da, dy[..., :2])
    np.testing.assert_array_equal(db, dy[..., 2:])
    assert layer.compute_output_shape([(4, 4, 1), (4, 4, 3)]) == (4, 4, 4)
    assert Concatenate(axis=3).compute_output_shape([(4, 4, 1), (4, 4, 3)]) == (4, 4, 4)
    assert _roundtrip(layer).axis == -1


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="`padding` must be 'valid' or 'same'"):
        AveragePooling2D(padding="full")
    with pytest.raises(ValueError, match="`pool_size`.*positive"):
        AveragePooling2D(pool_size=0)
    with pytest.raises(ValueError, match="`data_format`.*channels_last"):
        GlobalAveragePooling2D(data_format="channels_first")
    with pytest.raises(TypeError, match="`keepdims`"):
        GlobalAveragePooling2D(keepdims="yes")
    with pytest.raises(ValueError, match="`padding` must not be negative"):
        ZeroPadding2D(-1)
    with pytest.raises(TypeError, match="`axis` must be an int"):
        Concatenate(axis="channels")


def test_shape_errors_name_the_layer_and_the_shapes():
    with pytest.raises(ValueError, match=r"average_pooling2d.*pool_size \(3, 3\) does not fit"):
        AveragePooling2D(3, name="average_pooling2d_x").compute_output_shape((2, 2, 1))
    with pytest.raises(ValueError, match=r"'gap' \(GlobalAveragePooling2D\) expects inputs of shape"):
        GlobalAveragePooling2D(name="gap").compute_output_shape((8,))
    with pytest.raises(ValueError, match=r"'sum' \(Add\) needs inputs of one shape, got \(None, 4, 4, 2\), "
                                         r"\(None, 4, 4, 3\)"):
        Add(name="sum").build([(4, 4, 2), (4, 4, 3)])
    with pytest.raises(ValueError, match=r"match in every axis but the last, got \(None, 4, 4, 2\), "
                                         r"\(None, 3, 4, 3\)"):
        Concatenate().build([(4, 4, 2), (3, 4, 3)])
    with pytest.raises(ValueError, match="`axis=1` is not supported.*axis=-1"):
        Concatenate(axis=1).build([(4, 4, 2), (4, 4, 3)])
    with pytest.raises(ValueError, match="at least 2 inputs, got 1"):
        Add().build([(4, 4, 2)])


def test_merge_layers_are_refused_in_a_sequential_model(cpu):
    with pytest.raises(ValueError, match=r"'add_x' \(Add\) merges a list of at least 2 tensors.*Sequential"):
        gpucnn.Sequential([Dense(2, input_shape=(3,)), Add(name="add_x")])
    model = gpucnn.Sequential([Concatenate(name="cat_x")])  # no input shape yet: refused when built
    with pytest.raises(ValueError, match=r"'cat_x' \(Concatenate\) merges a list.*Sequential"):
        model.build((3,))
    with pytest.raises(ValueError, match="merges a list of at least 2 tensors"):
        Add()(np.zeros((2, 3), np.float32))
