"""Keras-style layers: ``build`` / ``call`` / ``backward`` / ``get_config``."""
from gpucnn.layers.base import Layer, Weight
from gpucnn.layers.convolutional import Conv2D, MaxPooling2D
from gpucnn.layers.core import Activation, Dense, Dropout, Flatten, Input, InputLayer, LeakyReLU, ReLU
from gpucnn.layers.merging import Add, Concatenate
from gpucnn.layers.normalization import BatchNormalization
from gpucnn.layers.pooling import AveragePooling2D, GlobalAveragePooling2D
from gpucnn.layers.reshaping import ZeroPadding2D

MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
Convolution2D = Conv2D

_CLASSES = {cls.__name__: cls for cls in (Conv2D, MaxPooling2D, Dense, Flatten, Activation, ReLU,
                                          LeakyReLU, Dropout, BatchNormalization, AveragePooling2D,
                                          GlobalAveragePooling2D, ZeroPadding2D, Add, Concatenate)}


def deserialize(entry):
    """A layer from ``{"class_name": ..., "config": {...}}`` as written by ``serialize``."""
    class_name = entry.get("class_name")
    if class_name not in _CLASSES:
        raise ValueError(f"Unknown layer class {class_name!r} in a model config; known: {sorted(_CLASSES)}.")
    return _CLASSES[class_name].from_config(entry.get("config", {}))


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


__all__ = ["Layer", "Weight", "Input", "InputLayer", "Conv2D", "Convolution2D", "MaxPooling2D",
           "MaxPool2D", "Dense", "Flatten", "Activation", "ReLU", "LeakyReLU", "Dropout",
           "BatchNormalization", "AveragePooling2D", "AvgPool2D", "GlobalAveragePooling2D",
           "GlobalAvgPool2D", "ZeroPadding2D", "Add", "Concatenate", "serialize", "deserialize"]
