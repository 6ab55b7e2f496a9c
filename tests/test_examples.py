"""The examples run end to end on the cpu backend (short runs; the README's first command runs the full
textures example)."""
import os
import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args):
    result = subprocess.run([sys.executable, str(EXAMPLES / name), "--backend", "cpu", *args],
                            capture_output=True, text=True, timeout=600, cwd=EXAMPLES.parent,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def test_faces_example_learns():
    out = run_example("faces_cnn.py", "--epochs", "15")
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert accuracy >= 0.9, out[-1500:]


def test_textures_example_runs_and_writes_its_outputs():
    out = run_example("textures_cnn.py", "--epochs", "1", "--width-divisor", "64")
    assert "Total params:" in out and "final validation accuracy:" in out
    for name in ("textures_cnn.gpucnn", "history.png", "filters.png", "feature_maps.png"):
        assert (EXAMPLES / "output" / name).stat().st_size > 0


def test_resnet_example_runs_a_functional_model_and_writes_it():
    out = run_example("resnet_cnn.py", "--epochs", "1", "--train-per-class", "32")
    assert "Connected to" in out and "data: 96 training and 192 validation crops" in out
    assert "final validation accuracy:" in out
    loaded = subprocess.run([sys.executable, "-c", "import gpucnn; m = gpucnn.load_model('examples/output/"
                             "resnet_cnn.gpucnn'); print(type(m).__name__, len(m.layers))"],
                            capture_output=True, text=True, timeout=300, cwd=EXAMPLES.parent,
                            env={**os.environ, "GPUCNN_BACKEND": "cpu"})
    assert loaded.stdout.split() == ["Functional", "30"], loaded.stderr[-2000:]
