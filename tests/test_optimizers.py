"""The optimizer objects (gpucnn.optimizers): argument checks, Keras 3's clipping / weight decay order
against a textbook float64 loop, the same step on the emulated kernels, config round trips."""
import math

import numpy as np
import pytest

from gpucnn import Sequential, backend, losses, optimizers
from gpucnn.layers import Dense, Input

SIZES = [6, 1, 9]  # three weights in one flat buffer


def _buffers(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(sum(SIZES)).astype(np.float32), rng.standard_normal(sum(SIZES)).astype(np.float32) * 3


def _step(optimizer, params, grads, steps=2):
    """Build and apply ``optimizer`` on the current backend; the parameters after ``steps`` updates."""
    b = backend.current()
    params, grads = b.asarray(params).copy(), b.asarray(grads)  # asarray may return the array itself
    optimizer.build(params, SIZES)
    for _ in range(steps):
        optimizer.apply(params, grads)
    return b.to_numpy(params).astype(np.float64)


def _textbook_sgd(params, grads, lr, steps=2, weight_decay=None, clip=lambda g: g):
    """Keras 3 SGD without momentum: clip the gradients, decay the weights, update."""
    p, g = params.astype(np.float64), clip(grads.astype(np.float64))
    for _ in range(steps):
        if weight_decay is not None:
            p = p - p * weight_decay * lr
        p = p - lr * g
    return p


def _per_weight(grads, fn):
    return np.concatenate([fn(part) for part in np.split(grads, np.cumsum(SIZES)[:-1])])


CASES = [
    ({"weight_decay": 0.1}, {"weight_decay": 0.1}),
    ({"clipvalue": 0.5}, {"clip": lambda g: np.clip(g, -0.5, 0.5)}),
    ({"clipnorm": 1.0}, {"clip": lambda g: _per_weight(g, lambda v: v / max(np.linalg.norm(v), 1.0))}),
    ({"global_clipnorm": 2.0, "weight_decay": 0.05},
     {"weight_decay": 0.05, "clip": lambda g: g * 2.0 / max(np.linalg.norm(g), 2.0)}),
]


@pytest.mark.parametrize("options, textbook", CASES, ids=["weight_decay", "clipvalue", "clipnorm",
                                                          "global_clipnorm+weight_decay"])
def test_sgd_clips_then_decays_then_updates(cpu, options, textbook):
    params, grads = _buffers()
    result = _step(optimizers.SGD(learning_rate=0.1, **options), params, grads)
    np.testing.assert_allclose(result, _textbook_sgd(params, grads, 0.1, **textbook), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [case[0] for case in CASES])
def test_emulated_kernels_take_the_same_step(options):
    params, grads = _buffers(1)
    with backend.using_backend("cpu"):
        expected = _step(optimizers.Adam(learning_rate=0.01, **options), params, grads)
    with backend.using_backend("emulated"):
        actual = _step(optimizers.Adam(learning_rate=0.01, **options), params, grads)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_adamw_is_adam_after_keras_weight_decay(cpu):
    params, grads = _buffers(2)
    adamw = optimizers.AdamW(learning_rate=0.01)
    assert adamw.weight_decay == 0.004 and optimizers.get("adamw").weight_decay == 0.004
    decayed = _step(adamw, params, grads, steps=1)
    plain = _step(optimizers.Adam(learning_rate=0.01), params * np.float32(1 - 0.004 * 0.01), grads, steps=1)
    np.testing.assert_allclose(decayed, plain, rtol=1e-6, atol=1e-7)


def test_config_round_trip_keeps_every_option():
    for optimizer in (optimizers.AdamW(learning_rate=0.002, weight_decay=0.01, clipnorm=1.5),
                      optimizers.SGD(momentum=0.9, global_clipnorm=3.0, weight_decay=1e-4),
                      optimizers.Adam(clipvalue=0.25)):
        restored = optimizers.deserialize(optimizers.serialize(optimizer))
        assert type(restored) is type(optimizer) and restored.get_config() == optimizer.get_config()


@pytest.mark.parametrize("rate", [math.inf, -math.inf, math.nan, 0.0, -1e-3])
def test_learning_rate_must_be_finite_and_positive(rate):
    with pytest.raises(ValueError, match=r"`learning_rate` must be a float > 0.*finite.*got"):
        optimizers.Adam(learning_rate=rate)
    optimizer = optimizers.SGD()
    with pytest.raises(ValueError, match="`learning_rate`"):
        optimizer.learning_rate = rate
    assert optimizer.learning_rate == 0.01


def test_option_errors():
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.Adam(clipnorm=1.0, clipvalue=0.5)
    for name in ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay"):
        with pytest.raises(ValueError, match=f"`{name}` must be a float >= 0"):
            optimizers.SGD(**{name: -1.0})
        with pytest.raises(ValueError, match=f"`{name}`"):
            optimizers.SGD(**{name: math.inf})
    with pytest.raises(ValueError, match="`weight_decay`.*AdamW"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(TypeError):
        optimizers.Adam(clip_norm=1.0)


def test_clipnorm_needs_the_weight_sizes(cpu):
    params = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="`variable_sizes`"):
        optimizers.SGD(clipnorm=1.0).build(params)
    with pytest.raises(ValueError, match="add up to the 4 parameters"):
        optimizers.SGD(clipnorm=1.0).build(params, [1, 2])


def test_training_step_passes_weight_sizes_and_label_smoothing(cpu):
    """One SGD step of logistic regression through train_on_batch against NumPy by hand: the trainer
    gives the optimizer each weight's size (clipnorm clips kernel and bias separately) and binds the
    loss' label smoothing."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    y = (rng.random((8, 1)) > 0.5).astype(np.float32)
    model = Sequential([Input((3,)), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.5, clipnorm=0.05),
                  loss=losses.BinaryCrossentropy(label_smoothing=0.2))
    kernel, bias = (w.astype(np.float64) for w in model.get_weights())
    model.train_on_batch(x, y)
    probs = 1 / (1 + np.exp(-(x @ kernel + bias)))
    dz = (probs - (y * 0.8 + 0.1)) / len(x)  # Keras smooths binary labels towards 0.5

    def clip(g):
        return g * 0.05 / max(np.linalg.norm(g), 0.05)

    expected = [kernel - 0.5 * clip(x.T @ dz), bias - 0.5 * clip(dz.sum(axis=0))]
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_zero_weight_decay_launches_nothing(cpu, monkeypatch):
    """weight_decay=0 is no decay: no kernel per step, and weights stay exactly what the update made."""
    calls = []
    monkeypatch.setattr(backend.current().ops, "decay_weights", lambda *args: calls.append(args))
    params, grads = _buffers(3)
    with_zero = _step(optimizers.SGD(learning_rate=0.1, weight_decay=0.0), params, grads)
    np.testing.assert_array_equal(with_zero, _step(optimizers.SGD(learning_rate=0.1), params, grads))
    assert calls == []
    _step(optimizers.SGD(learning_rate=0.1, weight_decay=0.5), params, grads, steps=1)
    assert len(calls) == 1
