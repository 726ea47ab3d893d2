"""Render the HTML page of `predict --gates --attributions --html` in a real browser and save a screenshot.

    python docs/screenshot.py [--model DIR] [--out docs/gates-page.png] [--long-review | --no-long-review]

The page holds the two book-review sentences and, with the shared data present, the first IMDB test review of
at least 300 words. Headless Chromium (Debian: `apt-get install chromium`) loads it from disk, runs its one
script (which draws the unit maps) and writes a PNG. Then it checks that the browser drew every unit map: the
page's script counts the canvases it drew into the body's `data-drawn` attribute, read back from Chromium's
`--dump-dom`. Prints the page's size, the maps drawn and the pixels in the gate palette's purple and yellow ends.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BOOK = [
    "This is a fantasy book which illustrates the adventures of a young wizard.",
    "I didn't quite enjoy the book because I think it captures too many details.",
]


def long_review(data: Path) -> str | None:
    path = data / "imdb" / "test.parquet"
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    return next(t for t in texts if len(t.split()) >= 300)


def find_chromium(given: str | None) -> str:
    for name in [given] if given else ["chromium", "chromium-browser", "google-chrome"]:
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no Chromium found: apt-get install chromium (or give --chromium PATH)")


def browse(page: Path, chromium: str, width: int, height: int, *action: str) -> str:
    """Run headless Chromium on the page with `action` (--screenshot=FILE or --dump-dom); its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
            + [f"--user-data-dir={profile}", f"--window-size={width},{height}", "--virtual-time-budget=10000"]
            + [*action, page.resolve().as_uri()],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    return done.stdout


def maps_drawn(page: Path, chromium: str) -> tuple[int, int]:
    """(canvases the page's script drew, canvases in the page), as Chromium's DOM says after the script ran."""
    import re

    dom = browse(page, chromium, 1400, 1000, "--dump-dom")
    drawn = re.search(r'<body[^>]*data-drawn="(\d+)"', dom)
    return (int(drawn.group(1)) if drawn else 0), dom.count("<canvas")


def palette_pixels(png: Path) -> tuple[int, int]:
    """Pixels near the gate palette's purple (0) and yellow (1) ends: only drawn unit maps have many of both."""
    from PIL import Image

    pixels = Image.open(png).convert("RGB").getdata()

    def near(colour, p):
        return sum(abs(a - b) for a, b in zip(colour, p)) < 60

    purple = sum(near((68, 1, 84), p) for p in pixels)
    yellow = sum(near((253, 231, 37), p) for p in pixels)
    return purple, yellow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=Path("docs/gates-page.png"))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--long-review", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--chromium")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2200)
    opts = parser.parse_args()
    chromium = find_chromium(opts.chromium)
    texts = list(BOOK)
    review = long_review(opts.data) if opts.long_review else None
    if review:
        texts.append(review)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        model = ["-m", opts.model] if opts.model else []
        subprocess.run(
            [sys.executable, "-m", "gru_sentiment", "predict", *model, "--gates", "--attributions", "--words"]
            + ["--html", str(page), "-f", "jsonl", "--", *texts],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        size = page.stat().st_size
        browse(page, chromium, opts.width, opts.height, f"--screenshot={opts.out.resolve()}")
        drawn, canvases = maps_drawn(page, chromium)
    purple, yellow = palette_pixels(opts.out)
    print(
        f"{len(texts)} texts, page {size / 1e3:.0f} kB, {drawn} of {canvases} unit maps drawn by Chromium; "
        f"wrote {opts.out}: {purple:,} purple and {yellow:,} yellow pixels"
    )
    if canvases == 0 or drawn != canvases:
        raise SystemExit(f"Chromium drew {drawn} of the page's {canvases} unit maps: did the page's script run?")


if __name__ == "__main__":
    main()
