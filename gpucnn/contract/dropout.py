"""Inverted dropout: the checks of ``dropout_forward`` and ``dropout_backward``."""
import numbers

from .steps import check_counter

#: Seeds are uint32: the mask hash works mod 2**32.
MAX_SEED = 2**32


def check_arguments(rate, seed):
    """Raise ValueError unless ``rate`` is in [0, 1) and ``seed`` an int in [0, 2**32)."""
    if not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise ValueError(f"Argument `rate` must be a float in [0, 1), got {rate!r}.")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed < MAX_SEED:
        raise ValueError(f"Argument `seed` must be an int in [0, 2**32), got {seed!r}.")


def check_dropout(rate, seed, step):
    check_arguments(rate, seed)
    check_counter(step)
