"""The op contract package: its activation codes match the CUDA enum, and it depends on no backend."""
import ast
import pathlib
import re

from gpucnn.contract.activations import ACTIVATION_CODES, FUSED_ACTIVATIONS
from gpucnn.cuda import runtime

CONTRACT_DIR = pathlib.Path(__file__).resolve().parents[1] / "gpucnn" / "contract"


def _cuda_enum(text, name):
    """{enumerator: value} of ``enum <name> { A = 0, B = 1 };`` in CUDA C source ``text``."""
    body = re.search(rf"\benum\s+{name}\s*{{([^}}]*)}}", text).group(1)
    pairs = (item.split("=") for item in body.split(",") if item.strip())
    return {key.strip(): int(value) for key, value in pairs}


def test_activation_codes_match_the_enum_in_common_cuh():
    enum = _cuda_enum(runtime.kernel_source("common.cuh"), "Activation")
    assert enum == {f"ACT_{name.upper()}": code for name, code in ACTIVATION_CODES.items()}
    assert tuple(ACTIVATION_CODES) == FUSED_ACTIVATIONS


def test_enum_parser_sees_a_drift():
    assert _cuda_enum("enum Activation { ACT_LINEAR = 0, ACT_RELU = 2 };", "Activation") == {
        "ACT_LINEAR": 0, "ACT_RELU": 2}


def test_contract_imports_no_backend_and_no_layer():
    for path in sorted(CONTRACT_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] if node.level == 0 else []
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] in ("numbers", "math", "typing", "numpy"), (path.name, module)
