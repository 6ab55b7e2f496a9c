"""Step counters on the device (gpucnn/counters.py) and the objects that keep one."""
import numpy as np

from gpucnn import backend, optimizers
from gpucnn.counters import StepCounter
from gpucnn.layers import Dropout


def test_counter_keeps_its_value_and_its_array():
    with backend.using_backend("cpu"):
        counter = StepCounter(4)
        assert counter.value == 4
        array = counter.array()
        assert array.dtype == np.int64 and array.shape == (1,) and array[0] == 4
        assert counter.advance() is array and counter.value == 5
        # Setting writes into the same array: a captured CUDA graph holds its address.
        counter.value = 2
        assert counter.array() is array and array[0] == 2 and counter.value == 2


def test_optimizer_iterations_live_in_its_counter():
    with backend.using_backend("cpu"):
        optimizer = optimizers.Adam()
        optimizer.iterations = 3  # before build: kept on the host
        params, grads = np.zeros(4, np.float32), np.ones(4, np.float32)
        optimizer.build(params)
        assert optimizer.counter.array()[0] == 3
        optimizer.apply(params, grads)
        assert optimizer.iterations == 4
        # Update 4 (not 1) sets the bias correction: the first step of Adam would move each
        # parameter by exactly lr, update 4 of a fresh state by lr·sqrt(1-β₂⁴)/(1-β₁⁴)·(1-β₁)/sqrt(1-β₂).
        expected = -1e-3 * np.sqrt(1 - 0.999**4) / (1 - 0.9**4) * 0.1 / (np.sqrt(0.001) + 1e-7)
        np.testing.assert_allclose(params, expected, rtol=1e-5)


def test_dropout_steps_resume_from_a_saved_state():
    with backend.using_backend("cpu"):
        x = np.ones((8, 16), np.float32)
        layer = Dropout(0.5, seed=9)
        masks = [layer.call(x, training=True) for _ in range(3)]
        assert layer.get_seed_state() == {"base_seed": 9, "step": 3}
        resumed = Dropout(0.5, seed=123)
        resumed.set_seed_state({"base_seed": 9, "step": 1})
        np.testing.assert_array_equal(resumed.call(x, training=True), masks[1])
        assert not np.array_equal(masks[1], masks[2])
