"""Optimizers with Keras 3 formulas.  Each updates the model's whole flat parameter buffer in one op
call (one kernel launch on the GPU backends, after a one-element add that advances the step count).

Every optimizer also takes Keras 3's ``weight_decay``, ``clipnorm``, ``clipvalue`` and
``global_clipnorm``, applied in Keras' order: the gradients are clipped, the weights decayed
(param -= param·weight_decay·learning_rate, every trainable weight), then updated.  All of it runs on the
device, so a step captured as a CUDA graph includes it.
"""
import math
import numbers

import numpy as np

from gpucnn import backend
from gpucnn.counters import StepCounter

CLIP_ARGUMENTS = ("clipnorm", "clipvalue", "global_clipnorm")


def _check_float(value, name, low, high=None, low_inclusive=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = (value >= low if low_inclusive else value > low) and (high is None or value < high) \
            and math.isfinite(value)
    if not ok:
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and < {high}" if high is not None else "")
        raise ValueError(f"Argument `{name}` must be a float {bound} (finite), got {value!r}.")
    return float(value)


def _optional_float(value, name):
    """None, or a finite float >= 0 (0 turns the option off, as in Keras)."""
    return None if value is None else _check_float(value, name, 0.0, low_inclusive=True)


class Optimizer:
    """Base class: ``build(params, variable_sizes)`` creates the state, ``apply(params, grads)`` does one
    step.

    The number of updates applied is counted on the device (:class:`gpucnn.counters.StepCounter`), so
    a training step replayed from a CUDA graph advances it; ``iterations`` reads it (Keras' attribute).
    ``weight_decay``, ``clipnorm`` (each weight's gradient), ``clipvalue`` and ``global_clipnorm`` (all
    gradients together) are Keras 3's; at most one of the three clips may be set.
    """

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        self.learning_rate = learning_rate
        self.weight_decay = _optional_float(weight_decay, "weight_decay")
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        given = {name: value for name, value in clips.items() if value is not None}
        if len(given) > 1:
            raise ValueError(f"Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set, got "
                             f"{', '.join(f'{name}={value!r}' for name, value in given.items())}.")
        for name, value in clips.items():
            setattr(self, name, _optional_float(value, name))
        self.counter = StepCounter()
        self.state = {}
        self._offsets = None

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        # May change between steps (callbacks, user code): checked here, and a CUDA-graph step runner
        # captures anew when it sees a new value.
        self._learning_rate = _check_float(value, "learning_rate", 0.0)

    @property
    def iterations(self):
        """Number of updates applied so far (reading it waits for the device)."""
        return self.counter.value

    @iterations.setter
    def iterations(self, value):
        self.counter.value = value

    def build(self, params, variable_sizes=None):
        """Create the state for the flat buffer ``params``; ``variable_sizes`` are the sizes of the
        weights packed in it, in order (``clipnorm`` clips each weight's gradient on its own)."""
        xp = backend.current().xp
        self.state = {name: xp.zeros_like(params) for name in self.state_names()}
        self.counter.array()
        self._offsets = None
        if self.clipnorm and variable_sizes is None:
            raise ValueError("Argument `clipnorm` clips each weight's gradient separately: build() needs "
                             "`variable_sizes`, the size of every weight in the flat buffer, in order.")
        sizes = [int(params.size)] if variable_sizes is None else [int(size) for size in variable_sizes]
        if sum(sizes) != params.size or any(size < 0 for size in sizes):
            raise ValueError(f"Argument `variable_sizes` must be non-negative sizes that add up to the "
                             f"{params.size} parameters, got {sizes}.")
        if self.clipnorm or self.global_clipnorm:
            self._offsets = xp.asarray(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))

    def state_names(self):
        return ()

    def apply(self, params, grads):
        ops = backend.current().ops
        if self.clipnorm:
            grads = ops.clip_by_norm(grads, self._offsets, self.clipnorm)
        elif self.global_clipnorm:
            grads = ops.clip_by_global_norm(grads, self._offsets, self.global_clipnorm)
        elif self.clipvalue:
            grads = ops.clip_by_value(grads, self.clipvalue)
        if self.weight_decay:  # 0 decays nothing: no launch (and an inf weight does not become inf·0 = NaN)
            ops.decay_weights(params, self.weight_decay, self.learning_rate)
        self._update(params, grads, self.counter.advance())

    def _update(self, params, grads, step):
        """One update; ``step`` is the counter, already advanced to this update's number."""
        raise NotImplementedError

    def get_config(self):
        return {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
                **{name: getattr(self, name) for name in CLIP_ARGUMENTS}}


class Adam(Optimizer):
    """Adam (Keras defaults: learning_rate 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7); ``options``:
    weight_decay, clipnorm, clipvalue, global_clipnorm (see :class:`Optimizer`)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **options):
        super().__init__(learning_rate, **options)
        self.beta_1 = _check_float(beta_1, "beta_1", 0.0, 1.0, low_inclusive=True)
        self.beta_2 = _check_float(beta_2, "beta_2", 0.0, 1.0, low_inclusive=True)
        self.epsilon = _check_float(epsilon, "epsilon", 0.0)
        if amsgrad:
            raise ValueError("Argument `amsgrad=True` is not implemented; use amsgrad=False.")

    def state_names(self):
        return ("m", "v")

    def _update(self, params, grads, step):
        backend.current().ops.adam_update(params, grads, self.state["m"], self.state["v"], step,
                                          self.learning_rate, self.beta_1, self.beta_2, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class AdamW(Adam):
    """Adam with weight decay, Keras 3's AdamW (default weight_decay 0.004): the decay
    param -= param·weight_decay·learning_rate comes before each Adam update."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **options):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float for AdamW, got None. Fix: pass "
                             "weight_decay=0.004 (the default), or use Adam without decay.")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **options)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum (Keras default lr 0.01); ``options``:
    weight_decay, clipnorm, clipvalue, global_clipnorm (see :class:`Optimizer`)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **options):
        super().__init__(learning_rate, **options)
        self.momentum = _check_float(momentum, "momentum", 0.0, 1.0, low_inclusive=True)
        self.nesterov = bool(nesterov)

    def state_names(self):
        return ("velocity",) if self.momentum > 0 else ()

    def _update(self, params, grads, step):
        backend.current().ops.sgd_update(params, grads, self.state.get("velocity"), self.learning_rate,
                                         self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


_BY_NAME = {"adam": Adam, "adamw": AdamW, "sgd": SGD}


def get(identifier):
    """An optimizer from a name ('adam', 'adamw', 'sgd') or an Optimizer instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown `optimizer` {identifier!r}: expected one of {sorted(_BY_NAME)} or an "
                     f"instance of gpucnn.optimizers.Adam / AdamW / SGD.")


def serialize(optimizer):
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(entry):
    classes = {cls.__name__: cls for cls in _BY_NAME.values()}
    if entry.get("class_name") not in classes:
        raise ValueError(f"Unknown optimizer class {entry.get('class_name')!r} in a saved model.")
    return classes[entry["class_name"]](**entry.get("config", {}))
