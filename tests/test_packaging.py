"""The wheel carries the shipped model and the type hints, and the installed package finds the model without --model."""

import subprocess
import sys
import zipfile
from pathlib import Path

from gru_sentiment.cli import DEFAULT_MODEL_NAME

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_shipped_model(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        timeout=600,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("gru_sentiment-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    inside = f"gru_sentiment/models/{DEFAULT_MODEL_NAME}"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert f"{inside}/{name}" in names, f"{name} missing from {wheel.name}"
    shipped = ROOT / "models" / DEFAULT_MODEL_NAME / "model.safetensors"
    assert zipfile.ZipFile(wheel).getinfo(f"{inside}/model.safetensors").file_size == shipped.stat().st_size
    assert not any(name.startswith(("tests/", "runs/", "data/")) for name in names)
    assert "gru_sentiment/py.typed" in names  # type checkers read the package's hints (PEP 561)
