"""The top-level kernels/ folder is installed as gpucnn.kernels, with its .cu sources as package data,
both by a regular and by an editable install."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHECK = ("import importlib.resources, gpucnn, gpucnn.kernels; "
         "files = importlib.resources.files('gpucnn.kernels'); "
         "sources = sorted(p.name for p in files.iterdir() if p.name.endswith(('.cu', '.cuh'))); "
         "print(gpucnn.__file__); print(' '.join(sources)); "
         "print(len((files / sources[0]).read_text()))")
EXPECTED_SOURCES = sorted(p.name for p in (ROOT / "kernels").iterdir() if p.suffix in (".cu", ".cuh"))


def check_installed(env_path=None, cwd="/"):
    env = dict(os.environ)
    if env_path:
        env["PYTHONPATH"] = env_path
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=cwd,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    module_file, sources, length = result.stdout.split("\n")[:3]
    assert sources.split() == EXPECTED_SOURCES and int(length) > 0
    return module_file


def test_kernels_folder_has_cuda_sources():
    assert any(name.endswith(".cu") for name in EXPECTED_SOURCES)


@pytest.mark.slow
def test_regular_install_ships_cu_files(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, timeout=300,
                   capture_output=True)
    assert check_installed(str(target)).startswith(str(target))


def test_development_checkout_finds_cu_files():
    """Editable install (what the README's commands do) or this checkout on the path."""
    module_file = check_installed(str(ROOT))
    assert module_file.startswith(str(ROOT))
