"""gpucnn: hand-written CUDA kernels for convolutional networks with a Keras-style API (Sequential and
the Functional API, ``gpucnn.Model(inputs, outputs)``).

>>> import gpucnn
>>> from gpucnn.layers import Conv2D, MaxPooling2D, Flatten, Dense
>>> model = gpucnn.Sequential([Conv2D(32, 3, activation='relu', input_shape=(100, 100, 1)),
...                            MaxPooling2D(3), Flatten(), Dense(1, activation='sigmoid')])
"""
from gpucnn import callbacks, config, datasets, initializers, layers, losses, models, optimizers, utils
from gpucnn.backend import get_backend, set_backend, using_backend
from gpucnn.functional import Functional
from gpucnn.layers import Input
from gpucnn.models import Model, Sequential, load_model

__version__ = "0.1.0"

__all__ = ["Model", "Sequential", "Functional", "Input", "load_model", "layers", "models", "optimizers", "losses",
           "callbacks", "datasets", "initializers", "utils", "config", "get_backend", "set_backend", "using_backend",
           "__version__"]
