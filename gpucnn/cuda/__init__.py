"""Launchers for the CUDA kernels in ``kernels/``: same op names and signatures as ``gpucnn.reference``.

Used by the ``cuda`` backend (CuPy arrays on a GPU) and the ``emulated`` backend (NumPy arrays, kernels
run on the CPU).  See docs/architecture.md for the op contract.
"""
