"""gpucnn: hand-written CUDA kernels for convolutional networks with a Keras-style Sequential API."""
from gpucnn.backend import get_backend, set_backend, using_backend

__version__ = "0.1.0"

__all__ = ["get_backend", "set_backend", "using_backend", "__version__"]
