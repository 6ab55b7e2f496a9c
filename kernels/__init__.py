"""Device code of gpucnn: CUDA C sources (``*.cu``, ``*.cuh``) and Numba CUDA kernels.

Installed as ``gpucnn.kernels``.  Nothing here runs on the host except Numba's kernel decorators;
launch configuration and argument checks live in ``gpucnn.cuda``.
"""
