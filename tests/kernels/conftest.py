"""Fixtures of the kernel tests: the CUDA C launch recorder is one, for every test module here."""
from cuda_c_helpers import launches  # noqa: F401
