"""The HTML page in a real browser: headless Chromium runs the page's script and the unit maps get drawn.
Skipped where no Chromium is installed (Debian: apt-get install chromium)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not shutil.which("chromium"), reason="no chromium installed")
def test_page_draws_its_unit_maps_in_chromium(tiny_model, tmp_path):
    pytest.importorskip("PIL")
    out = tmp_path / "page.png"
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "screenshot.py"), "--model", str(tiny_model), "--out", str(out)]
        + ["--no-long-review", "--height", "1600"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert out.read_bytes().startswith(b"\x89PNG") and "8 of 8 unit maps drawn" in done.stdout
