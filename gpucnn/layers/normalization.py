"""BatchNormalization over the channel (last) axis, Keras defaults."""
from gpucnn import backend
from gpucnn.layers.base import Layer

# What a frozen layer keeps for backward: its gradient needs only the moving statistics.
_INFERENCE_MODE = "inference mode"


class BatchNormalization(Layer):
    """Normalizes each channel with the batch statistics while training and with moving averages
    (``moving = momentum * moving + (1 - momentum) * batch``) at inference.  As in Keras, a layer with
    ``trainable=False`` always runs in inference mode (moving statistics, not updated)."""

    default_name = "batch_normalization"

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        if axis != -1:
            raise ValueError(f"Argument `axis` must be -1 (channels last, NHWC), got {axis!r}.")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise ValueError(f"Argument `momentum` must be a float in [0, 1), got {momentum!r}.")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"Argument `epsilon` must be a float > 0, got {epsilon!r}.")
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.initializers = {"gamma": gamma_initializer, "beta": beta_initializer,
                             "moving_mean": moving_mean_initializer,
                             "moving_variance": moving_variance_initializer}

    def build(self, input_shape):
        channels = (input_shape[-1],)
        # Keras keeps gamma/beta out of the weights when scale/center is off; the op still needs them,
        # so they become constant arrays instead.
        self.gamma = self.add_weight("gamma", channels, self.initializers["gamma"]) if self.scale else None
        self.beta = self.add_weight("beta", channels, self.initializers["beta"]) if self.center else None
        self.moving_mean = self.add_weight("moving_mean", channels, self.initializers["moving_mean"],
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", channels,
                                               self.initializers["moving_variance"], trainable=False)
        xp = backend.current().xp
        self._ones = xp.ones(channels, xp.float32)
        self._zeros = xp.zeros(channels, xp.float32)
        super().build(input_shape)

    def _gamma_beta(self):
        return (self.gamma.value if self.scale else self._ones,
                self.beta.value if self.center else self._zeros)

    def call(self, x, training=False):
        gamma, beta = self._gamma_beta()
        if not (training and self.trainable):
            # A frozen BatchNormalization runs in inference mode even while the model trains (Keras):
            # moving statistics, no updates.  Training still needs its input gradient.
            self._cache = _INFERENCE_MODE if training else None
            return self.ops.batchnorm_forward_inference(x, gamma, beta, self.moving_mean.value,
                                                        self.moving_variance.value, self.epsilon)
        y, mean, var, inv_std = self.ops.batchnorm_forward_training(x, gamma, beta, self.epsilon)
        for moving, batch in ((self.moving_mean.value, mean), (self.moving_variance.value, var)):
            moving *= self.momentum
            moving += (1.0 - self.momentum) * batch
        self._cache = (x, mean, inv_std)
        return y

    def backward(self, dy, need_input_grad=True):
        cache = self.cached()
        gamma, _ = self._gamma_beta()
        if cache is _INFERENCE_MODE:
            # Inference mode is y = x * gamma / sqrt(moving_var + eps) + const, per channel.
            xp = backend.current().xp
            scale = (gamma / xp.sqrt(self.moving_variance.value + self.epsilon)).astype(xp.float32)
            return dy * scale if need_input_grad else None
        x, mean, inv_std = cache
        dx, dgamma, dbeta = self.ops.batchnorm_backward(dy, x, gamma, mean, inv_std)
        if self.scale:
            self.gamma.set_grad(dgamma)
        if self.center:
            self.beta.set_grad(dbeta)
        return dx if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                **{f"{k}_initializer": v for k, v in self.initializers.items()}}
