"""The op contract: what every implementation of an op accepts, checked in one place.

One module per op family, mirroring ``gpucnn.reference`` and ``gpucnn.cuda``, holds each op's argument
checks and their error texts (``check_<op>``), plus the shape and padding arithmetic (``shapes``) and
the activation codes shared with ``kernels/common.cuh`` (``activations``).  The NumPy reference, the
launchers and the layers all call these; this package imports none of them, and its checks only read
shapes, dtypes and host scalars, so they run on NumPy and CuPy arrays alike.  What only a device needs
(C-contiguity, the backend's array type: ``gpucnn.cuda.runtime.check_array``) stays in the launchers.
See docs/architecture.md for the contract itself.
"""
