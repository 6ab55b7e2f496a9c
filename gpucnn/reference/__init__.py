"""NumPy reference implementation of every op: the ``cpu`` backend and the test oracle.

Same function names and signatures as ``gpucnn.cuda``; see docs/architecture.md for the op contract.
"""
from .activations import (
                          bias_add,
                          bias_backward,
                          leaky_relu_backward,
                          leaky_relu_forward,
                          relu_backward,
                          relu_forward,
                          sigmoid_backward,
                          sigmoid_forward,
                          softmax_backward,
                          softmax_forward,
                          tanh_backward,
                          tanh_forward,
)
from .avgpool import (
                          average_pool_backward,
                          average_pool_forward,
                          global_average_pool_backward,
                          global_average_pool_forward,
)
from .batchnorm import batchnorm_backward, batchnorm_forward_inference, batchnorm_forward_training
from .conv import conv2d_backward_data, conv2d_backward_filter, conv2d_forward
from .dense import dense_backward_data, dense_backward_weights, dense_forward
from .dropout import dropout_backward, dropout_forward
from .losses import (
                          binary_crossentropy,
                          categorical_crossentropy,
                          mean_squared_error,
                          sigmoid_binary_crossentropy,
                          softmax_categorical_crossentropy,
                          sparse_categorical_crossentropy,
                          sparse_softmax_categorical_crossentropy,
)
from .merge import add_forward, add_inplace, concatenate_backward, concatenate_forward
from .optimizers import adam_update, clip_by_global_norm, clip_by_norm, clip_by_value, decay_weights, sgd_update
from .padding import zero_padding2d_backward, zero_padding2d_forward
from .pool import max_pool_backward, max_pool_forward

__all__ = [
    "conv2d_forward", "conv2d_backward_data", "conv2d_backward_filter",
    "dense_forward", "dense_backward_data", "dense_backward_weights",
    "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
    "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward", "softmax_forward",
    "softmax_backward",
    "bias_add", "bias_backward",
    "max_pool_forward", "max_pool_backward",
    "average_pool_forward", "average_pool_backward",
    "global_average_pool_forward", "global_average_pool_backward",
    "zero_padding2d_forward", "zero_padding2d_backward",
    "add_forward", "add_inplace", "concatenate_forward", "concatenate_backward",
    "dropout_forward", "dropout_backward",
    "batchnorm_forward_training", "batchnorm_forward_inference", "batchnorm_backward",
    "binary_crossentropy", "sigmoid_binary_crossentropy", "categorical_crossentropy",
    "softmax_categorical_crossentropy", "sparse_categorical_crossentropy",
    "sparse_softmax_categorical_crossentropy", "mean_squared_error",
    "adam_update", "sgd_update", "clip_by_norm", "clip_by_global_norm", "clip_by_value", "decay_weights",
]
