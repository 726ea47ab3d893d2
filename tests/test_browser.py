"""The HTML page in a real browser: headless Chromium runs the page's script and the unit maps get drawn.
Skipped where no Chromium is installed (Debian: apt-get install chromium). The script is loaded here, at module
level, so that a moved, renamed or broken one fails collection where the test itself is skipped."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "screenshot.py"
_spec = importlib.util.spec_from_file_location("screenshot", SCRIPT)
screenshot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(screenshot)


@pytest.mark.skipif(not shutil.which("chromium"), reason="no chromium installed")
def test_page_draws_its_unit_maps_in_chromium(tiny_model, tmp_path):
    pytest.importorskip("PIL")
    out = tmp_path / "page.png"
    done = subprocess.run(
        [sys.executable, screenshot.__file__, "--model", str(tiny_model), "--out", str(out)]
        + ["--no-long-review", "--height", "1600"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert out.read_bytes().startswith(b"\x89PNG") and "8 of 8 unit maps drawn" in done.stdout
