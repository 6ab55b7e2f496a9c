"""The count a step counter holds, read on the host (the reference's side of
``gpucnn.contract.steps``)."""
from gpucnn.contract.steps import check_count, check_counter


def step_value(step, minimum):
    """The count held by the counter ``step``, checked to be >= ``minimum``."""
    check_counter(step)
    return check_count(int(step[0]), minimum)
