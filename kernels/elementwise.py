"""Elementwise Numba kernels: activations and their gradients, bias add, dropout, Adam and SGD.

Every kernel walks flat C-order buffers with a grid-stride loop: consecutive threads touch consecutive
floats (coalesced), and the launcher can cap the grid at a few waves of blocks while any size stays
covered.  Indices are 64-bit, so tensors past 2³¹ elements are fine.
"""
import math

import numpy as np
from numba import cuda, float32, float64

from ._numba import device, kernel

VECTOR = "float32[::1]"
#: A step counter (``gpucnn.contract.steps``): one int64 that the training step advances on the device.
COUNTER = "int64[::1]"


# ---- scalar operations, inlined into the map kernels below ------------------------------------------

@device
def relu(x, alpha):
    return x if x > 0 else float32(0)


@device
def leaky_relu(x, alpha):
    return x if x >= 0 else x * alpha


@device
def sigmoid(x, alpha):
    """Stable sigmoid: exp is only taken of -|x|, so it never overflows (same formula as the reference)."""
    e = math.exp(-abs(x))
    s = float32(1) / (float32(1) + e)
    return s * e if x < 0 else s


@device
def tanh(x, alpha):
    return math.tanh(x)


@device
def clip_symmetric(x, alpha):
    """x clipped to [-alpha, alpha] (Keras' clipvalue); NaN stays NaN, as in np.clip (comparisons with
    NaN are false, where min/max would pick a bound)."""
    if x > alpha:
        return alpha
    if x < -alpha:
        return -alpha
    return x


@device
def relu_grad(dy, y, alpha):
    return dy if y > 0 else float32(0)


@device
def leaky_relu_grad(dy, y, alpha):
    return dy if y > 0 else dy * alpha


@device
def sigmoid_grad(dy, y, alpha):
    return dy * (y * (float32(1) - y))


@device
def tanh_grad(dy, y, alpha):
    return dy * (float32(1) - y * y)


@device
def multiply(a, b, alpha):
    return a * b


# ---- map kernels: one template per arity, one kernel per operation -----------------------------------

def unary_map(op, name):
    """Kernel ``out[i] = op(x[i], alpha)`` over a flat buffer."""
    def map_kernel(x, out, alpha):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            out[i] = op(x[i], alpha)
    return kernel(f"void({VECTOR}, {VECTOR}, float32)", name=name)(map_kernel)


def binary_map(op, name):
    """Kernel ``out[i] = op(a[i], b[i], alpha)`` over flat buffers of one size."""
    def map_kernel(a, b, out, alpha):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            out[i] = op(a[i], b[i], alpha)
    return kernel(f"void({VECTOR}, {VECTOR}, {VECTOR}, float32)", name=name)(map_kernel)


relu_forward = unary_map(relu, "relu_forward")
leaky_relu_forward = unary_map(leaky_relu, "leaky_relu_forward")
sigmoid_forward = unary_map(sigmoid, "sigmoid_forward")
tanh_forward = unary_map(tanh, "tanh_forward")
clip_by_value = unary_map(clip_symmetric, "clip_by_value")
relu_backward = binary_map(relu_grad, "relu_backward")
leaky_relu_backward = binary_map(leaky_relu_grad, "leaky_relu_backward")
sigmoid_backward = binary_map(sigmoid_grad, "sigmoid_backward")
tanh_backward = binary_map(tanh_grad, "tanh_backward")
multiply_map = binary_map(multiply, "multiply")


# ---- per-channel maps over NHWC tensors (the channel is the fastest axis) ----------------------------

@device
def next_channel(channel, channel_step, channels):
    """The channel of the next grid-stride element: avoids a 64-bit modulo per element."""
    channel += channel_step
    return channel - channels if channel >= channels else channel


@device
def add_first(x, p, q):
    return x + p


@device
def scale_shift(x, p, q):
    return x * p + q


def channel_map(op, name):
    """Kernel ``out[i] = op(x[i], p[c], q[c])`` where ``c`` is the channel (last axis) of element ``i``."""
    def map_kernel(x, p, q, out):
        channels = p.size
        start, step = cuda.grid(1), cuda.gridsize(1)
        channel, channel_step = start % channels, step % channels
        for i in range(start, x.size, step):
            out[i] = op(x[i], p[channel], q[channel])
            channel = next_channel(channel, channel_step, channels)
    return kernel(f"void({VECTOR}, {VECTOR}, {VECTOR}, {VECTOR})", name=name)(map_kernel)


#: y = x + b[c] (``q`` is unused: the launcher passes ``b`` twice).
bias_add = channel_map(add_first, "bias_add")
#: Batch-norm normalization written as y = x·scale[c] + shift[c], as the reference and Keras do.
batchnorm_scale_shift = channel_map(scale_shift, "batchnorm_scale_shift")


@kernel(f"void({VECTOR}, {VECTOR}, {VECTOR}, {VECTOR}, float32, {VECTOR}, {VECTOR}, {VECTOR})")
def batchnorm_channel_params(mean, var, gamma, beta, epsilon, inv_std, scale, shift):
    """Per channel: inv_std = 1/sqrt(var + eps), and the scale/shift that normalize in one multiply-add."""
    for c in range(cuda.grid(1), mean.size, cuda.gridsize(1)):
        inv = float32(1) / math.sqrt(var[c] + epsilon)
        inv_std[c] = inv
        scale[c] = inv * gamma[c]
        shift[c] = beta[c] - mean[c] * scale[c]


@kernel(f"void({', '.join([VECTOR] * 7)}, float32, {VECTOR})")
def batchnorm_backward_data(dy, x, mean, inv_std, gamma, dgamma, dbeta, count, dx):
    """dx = gamma·inv_std·(dy - x̂·dgamma/M - dbeta/M), x̂ = (x - mean)·inv_std, M rows per channel."""
    channels = mean.size
    start, step = cuda.grid(1), cuda.gridsize(1)
    channel, channel_step = start % channels, step % channels
    for i in range(start, x.size, step):
        x_hat = (x[i] - mean[channel]) * inv_std[channel]
        centered = dy[i] - x_hat * (dgamma[channel] / count) - dbeta[channel] / count
        dx[i] = centered * (gamma[channel] * inv_std[channel])
        channel = next_channel(channel, channel_step, channels)


# ---- dropout -----------------------------------------------------------------------------------------

# uint64 constants: Numba turns mixed signed/unsigned integer arithmetic into float64, so every operand
# of the hash is unsigned and products are reduced mod 2**32 by masking.
MASK32 = np.uint64(0xFFFFFFFF)
GOLDEN = np.uint64(0x9E3779B1)
MIX_1 = np.uint64(0x7FEB352D)
MIX_2 = np.uint64(0x846CA68B)
STEP_STRIDE = np.uint64(0x9E3779B9)


@device
def hash32(seed, index):
    """lowbias32 of the op contract (docs/architecture.md), bit-identical to the reference."""
    h = ((np.uint64(index) & MASK32) * GOLDEN & MASK32) ^ np.uint64(seed)
    h ^= h >> np.uint64(16)
    h = h * MIX_1 & MASK32
    h ^= h >> np.uint64(15)
    h = h * MIX_2 & MASK32
    h ^= h >> np.uint64(16)
    return h


@kernel(f"void({VECTOR}, {VECTOR}, uint32, {COUNTER}, uint32, float32)")
def dropout(x, out, seed, step, threshold, scale):
    """out = x·scale where (hash32(s, i) >> 8) >= threshold, else 0, with the mask seed
    s = (seed + step·0x9E3779B9) mod 2³² of the count in the ``step`` counter.

    ``threshold`` = ceil(float32(rate)·2²⁴), so the integer test equals the contract's float test
    (hash >> 8)·2⁻²⁴ >= rate exactly.  Forward and backward are the same launch with the same seed.
    """
    step_seed = (np.uint64(seed) + (np.uint64(step[0]) & MASK32) * STEP_STRIDE) & MASK32
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        keep = (hash32(step_seed, i) >> np.uint64(8)) >= np.uint64(threshold)
        out[i] = x[i] * scale if keep else float32(0)


# ---- optimizers (in place on the flat parameter buffer of the whole model) ---------------------------

@kernel(f"void({VECTOR}, {VECTOR}, {VECTOR}, {VECTOR}, {COUNTER}, float64, float64, float64, float32)")
def adam_update(param, grad, m, v, step, learning_rate, beta_1, beta_2, epsilon):
    """Keras 3 Adam at the update number t held by the ``step`` counter.

    alpha = lr·sqrt(1-β₂ᵗ)/(1-β₁ᵗ) is computed here, in float64 and in the reference's order, from the
    counter the optimizer advanced on the device: a replayed CUDA graph then uses each step's t.
    """
    t = float64(step[0])
    alpha = float32(learning_rate * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t))
    one_minus_beta_1 = float32(1.0 - beta_1)
    one_minus_beta_2 = float32(1.0 - beta_2)
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i]
        m_i = m[i] + (g - m[i]) * one_minus_beta_1
        v_i = v[i] + (g * g - v[i]) * one_minus_beta_2
        m[i] = m_i
        v[i] = v_i
        param[i] -= alpha * m_i / (math.sqrt(v_i) + epsilon)


@kernel(f"void({VECTOR}, {VECTOR}, {VECTOR}, float32, float32, boolean, boolean)")
def sgd_update(param, grad, velocity, learning_rate, momentum, nesterov, use_velocity):
    """Keras 3 SGD; without ``use_velocity`` the ``velocity`` buffer is never touched (plain SGD)."""
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        lr_grad = learning_rate * grad[i]
        if not use_velocity:
            param[i] -= lr_grad
            continue
        v_i = velocity[i] * momentum - lr_grad
        velocity[i] = v_i
        param[i] += momentum * v_i - lr_grad if nesterov else v_i


@kernel(f"void({VECTOR}, float32, float32)")
def decay_weights(param, weight_decay, learning_rate):
    """Keras 3 weight decay in place, before the update: param -= param·weight_decay·learning_rate."""
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        param[i] -= param[i] * weight_decay * learning_rate
