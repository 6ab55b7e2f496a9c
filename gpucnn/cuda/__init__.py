"""Launchers for the CUDA kernels in ``kernels/``: same op names and signatures as ``gpucnn.reference``.

Used by the ``cuda`` backend (CuPy arrays on a GPU) and the ``emulated`` backend (NumPy arrays, kernels
run on the CPU).  See docs/architecture.md for the op contract.
"""
from gpucnn.cuda.activations import (
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
from gpucnn.cuda.avgpool import (
                                     average_pool_backward,
                                     average_pool_forward,
                                     global_average_pool_backward,
                                     global_average_pool_forward,
)
from gpucnn.cuda.batchnorm import batchnorm_backward, batchnorm_forward_inference, batchnorm_forward_training
from gpucnn.cuda.conv import conv2d_backward_data, conv2d_backward_filter, conv2d_forward
from gpucnn.cuda.dense import dense_backward_data, dense_backward_weights, dense_forward
from gpucnn.cuda.dropout import dropout_backward, dropout_forward
from gpucnn.cuda.losses import (
                                     binary_crossentropy,
                                     categorical_crossentropy,
                                     mean_squared_error,
                                     sigmoid_binary_crossentropy,
                                     softmax_categorical_crossentropy,
                                     sparse_categorical_crossentropy,
                                     sparse_softmax_categorical_crossentropy,
)
from gpucnn.cuda.merge import add_forward, add_inplace, concatenate_backward, concatenate_forward
from gpucnn.cuda.optimizers import (
                                     adam_update,
                                     clip_by_global_norm,
                                     clip_by_norm,
                                     clip_by_value,
                                     decay_weights,
                                     sgd_update,
)
from gpucnn.cuda.padding import zero_padding2d_backward, zero_padding2d_forward
from gpucnn.cuda.pool import max_pool_backward, max_pool_forward
