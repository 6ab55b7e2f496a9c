"""gpucnn.config: the float32 matmul precision setting (PyTorch's names), its environment variable and
its errors."""
import pytest

from gpucnn import config


@pytest.fixture(autouse=True)
def fresh_setting(monkeypatch):
    monkeypatch.setattr(config, "_precision", None)
    monkeypatch.delenv(config.PRECISION_ENV, raising=False)


def test_default_is_strict_fp32_like_pytorch():
    assert config.get_float32_matmul_precision() == "highest"


@pytest.mark.parametrize("precision", ["highest", "high", "medium"])
def test_set_then_get(precision):
    config.set_float32_matmul_precision(precision)
    assert config.get_float32_matmul_precision() == precision
    assert config.resolve_precision(None) == precision


def test_environment_variable_until_set(monkeypatch):
    monkeypatch.setenv(config.PRECISION_ENV, "medium")
    assert config.get_float32_matmul_precision() == "medium"
    config.set_float32_matmul_precision("high")
    assert config.get_float32_matmul_precision() == "high"


def test_explicit_argument_wins_over_the_setting():
    config.set_float32_matmul_precision("medium")
    assert config.resolve_precision("highest") == "highest"


@pytest.mark.parametrize("bad", ["HIGH", "tf32", "", None, 32])
def test_bad_value_names_argument_value_and_fix(bad):
    with pytest.raises(ValueError, match=r"Argument `precision` must be one of 'highest', 'high', 'medium'.*"
                                         + "got " + repr(bad).replace("(", r"\(") + r".*Fix"):
        config.set_float32_matmul_precision(bad)
    assert config.get_float32_matmul_precision() == "highest"  # unchanged
    with pytest.raises(ValueError, match="Argument `precision`"):
        config.resolve_precision(bad if bad is not None else "none")


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(config.PRECISION_ENV, "fast")
    with pytest.raises(ValueError, match=f"environment variable {config.PRECISION_ENV}.*'fast'"):
        config.get_float32_matmul_precision()


def test_with_block_sets_the_precision_and_restores_the_previous_one(monkeypatch):
    monkeypatch.setenv(config.PRECISION_ENV, "medium")
    with config.float32_matmul_precision("high"):
        assert config.get_float32_matmul_precision() == "high"
        with config.float32_matmul_precision(None):  # None: as it is
            assert config.get_float32_matmul_precision() == "high"
    assert config.get_float32_matmul_precision() == "medium"  # the environment again, not a stored value
    assert config._precision is None
    with pytest.raises(ValueError, match="Argument `precision`.*'fp8'"), config.float32_matmul_precision("fp8"):
        pass
    with pytest.raises(KeyError), config.float32_matmul_precision("highest"):
        raise KeyError  # an error inside still restores
    assert config.get_float32_matmul_precision() == "medium"
