"""Optimizers with Keras 3 formulas.  Each updates the model's whole flat parameter buffer in one op
call (one kernel launch on the GPU backends, after a one-element add that advances the step count)."""
import numbers

from gpucnn import backend
from gpucnn.counters import StepCounter


def _check_float(value, name, low, high=None, low_inclusive=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = (value >= low if low_inclusive else value > low) and (high is None or value < high)
    if not ok:
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and < {high}" if high is not None else "")
        raise ValueError(f"Argument `{name}` must be a float {bound}, got {value!r}.")
    return float(value)


class Optimizer:
    """Base class: ``build(params)`` creates the state, ``apply(params, grads)`` does one step.

    The number of updates applied is counted on the device (:class:`gpucnn.counters.StepCounter`), so
    a training step replayed from a CUDA graph advances it; ``iterations`` reads it (Keras' attribute).
    """

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate
        self.counter = StepCounter()
        self.state = {}

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

    def build(self, params):
        xp = backend.current().xp
        self.state = {name: xp.zeros_like(params) for name in self.state_names()}
        self.counter.array()

    def state_names(self):
        return ()

    def apply(self, params, grads):
        self._update(params, grads, self.counter.advance())

    def _update(self, params, grads, step):
        """One update; ``step`` is the counter, already advanced to this update's number."""
        raise NotImplementedError

    def get_config(self):
        return {"learning_rate": self.learning_rate}


class Adam(Optimizer):
    """Adam (Keras defaults: learning_rate 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False):
        super().__init__(learning_rate)
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


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum (Keras default lr 0.01)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        self.momentum = _check_float(momentum, "momentum", 0.0, 1.0, low_inclusive=True)
        self.nesterov = bool(nesterov)

    def state_names(self):
        return ("velocity",) if self.momentum > 0 else ()

    def _update(self, params, grads, step):
        backend.current().ops.sgd_update(params, grads, self.state.get("velocity"), self.learning_rate,
                                         self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


_BY_NAME = {"adam": Adam, "sgd": SGD}


def get(identifier):
    """An optimizer from a name ('adam', 'sgd') or an Optimizer instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown `optimizer` {identifier!r}: expected one of {sorted(_BY_NAME)} or an "
                     f"instance of gpucnn.optimizers.Adam / SGD.")


def serialize(optimizer):
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(entry):
    classes = {cls.__name__: cls for cls in _BY_NAME.values()}
    if entry.get("class_name") not in classes:
        raise ValueError(f"Unknown optimizer class {entry.get('class_name')!r} in a saved model.")
    return classes[entry["class_name"]](**entry.get("config", {}))
