"""Run every example command of README.md against a model and print what each printed.

The README's example outputs come from this script, so they can be regenerated whenever the shipped model
changes:

    python docs/examples.py > runs/readme-outputs.txt                  # the shipped model
    python docs/examples.py --model runs/x --pictures docs

Each section starts with `### name` and `$ command`. The commands run as real processes of the installed
`gru-sentiment`. `--pictures DIR` also draws the README's pictures there: the coloured terminal views of the
book review (gates; attributions) and of the top-unit map, for which the command is run with colour forced,
its ANSI output replayed into a recording `rich` console, exported to SVG and converted with CairoSVG (not a
dependency of the package: `pip install cairosvg`); and the unit-map image that `predict --plot` draws. The
HTML page's screenshot comes from `docs/screenshot.py`.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BOOK = [
    "This is a fantasy book which illustrates the adventures of a young wizard.",
    "I didn't quite enjoy the book because I think it captures too many details.",
]
TOUR = ["The staff couldn't have been nicer.", "Customer service hung up on me twice."]
SENTENCES = "A wonderful, moving film.\nThe plot was predictable but the acting saved it.\n"
EVERYDAY = [  # everyday reviews a film-only model got wrong
    "Works exactly as described, fast shipping.",
    "The hotel room was clean and the staff were friendly.",
    "Five stars. Would buy again.",
    "The app keeps crashing and logging me out.",
    "Customer service hung up on me twice.",
]


def examples(data: Path) -> list[tuple[str, list[str], str | None]]:
    """(name, arguments after `gru-sentiment`, stdin) for each README example."""
    return [
        ("predict-tour", ["predict", *TOUR], None),
        ("evaluate-sst2", ["evaluate", "-d", str(data / "sst2"), "--split", "validation"], None),
        ("evaluate", ["evaluate", "-d", str(data / "imdb"), "--split", "test"], None),
        ("evaluate-json", ["evaluate", "-d", str(data / "sst2"), "--split", "validation", "--format", "json"], None),
        ("predict", ["predict", "This is a fantasy book.", "Great."], None),
        ("predict-everyday", ["predict", *EVERYDAY], None),
        ("evaluate-hotels", ["evaluate", "-d", str(data / "hotels"), "--split", "test"], None),
        ("predict-jsonl", ["predict", "--file", "-", "--format", "jsonl"], SENTENCES),
        ("book-review", ["predict", *BOOK], None),
        ("gates-words", ["predict", "--gates", "--words", *BOOK], None),
        ("gates-top-units", ["predict", "--gates", "--top-units", "2", "Not bad at all."], None),
        ("attributions", ["predict", "--attributions", "--words", BOOK[1]], None),
        ("attributions-json", ["predict", "--attributions", "--format", "json", "Great fun."], None),
        ("gates-json", ["predict", "--gates", "--format", "json", "Great fun."], None),
        ("gates-csv", ["predict", "--gates", "--format", "csv", "Great fun."], None),
        ("gates-summary", ["gates", "--summary", "-d", str(data / "imdb"), "--split", "test", "--limit", "1000"], None),
    ]


def run(args: list[str], stdin: str | None, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gru_sentiment", *args], input=stdin, capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"gru-sentiment {shlex.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stderr + done.stdout


def render_png(args: list[str], env: dict[str, str], path: Path, width: int, shown: str) -> None:
    """The coloured terminal output of `gru-sentiment ARGS` as a PNG, headed by `$ gru-sentiment SHOWN`."""
    import cairosvg
    from rich.console import Console
    from rich.text import Text

    colour_env = {**env, "FORCE_COLOR": "1", "COLORTERM": "truecolor", "TERM": "xterm-256color", "COLUMNS": str(width)}
    colour_env.pop("NO_COLOR", None)
    coloured = run(args, None, colour_env)
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(f"$ gru-sentiment {shown}", style="bold", markup=False, highlight=False)
    console.print(Text.from_ansi(coloured))
    cairosvg.svg2png(bytestring=console.export_svg(title=f"gru-sentiment {shown}").encode(), write_to=str(path))


def pictures(folder: Path, env: dict[str, str], width: int) -> None:
    book = f'"{BOOK[0][:38]}..." "{BOOK[1][:30]}..."'
    render_png(
        ["predict", "--gates", "--words", *BOOK],
        env,
        folder / "gates-book-review.png",
        width,
        f"predict --gates --words {book}",
    )
    render_png(
        ["predict", "--attributions", "--words", *BOOK],
        env,
        folder / "attributions-book-review.png",
        width,
        f"predict --attributions --words {book}",
    )
    not_bad = "Not bad at all, I would happily stay here again."
    render_png(
        ["predict", "--gates", "--top-units", "8", "--words", not_bad],
        env,
        folder / "top-units-not-bad.png",
        width,
        f'predict --gates --top-units 8 --words "{not_bad}"',
    )
    run(
        ["predict", "--gates", "--attributions", "--words", "--plot", str(folder / "unit-map-book-review.png"), *BOOK],
        None,
        env,
    )
    for name in ("gates-book-review", "attributions-book-review", "top-units-not-bad", "unit-map-book-review"):
        print(f"### wrote {folder / name}.png")


NEGATION = r"\b(not|never|no|nothing|nobody|neither|nor)\b|n't\b"


def negation_units(data: Path, env: dict[str, str]) -> None:
    """Find the units that react to negation words, then show one sentence through the first of them."""
    import json

    find = ["gates", "--find", NEGATION, "-d", str(data / "imdb"), "--split", "test", "--limit", "1000"]
    print(f"### negation-units\n$ gru-sentiment {shlex.join(find)}", flush=True)
    print(run(find, None, env), flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "gru_sentiment", *find, "--format", "json", "--top", "1"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    first = json.loads(done.stdout)[0]
    show = [
        "predict",
        "--gates",
        "--words",
        "--layer",
        str(first["layer"]),
        "--direction",
        first["direction"],
        "--unit",
        str(first["unit"]),
        "The room was not clean and the staff never answered the phone.",
    ]
    print(f"### negation-unit-sentence\n$ gru-sentiment {shlex.join(show)}", flush=True)
    print(run(show, None, env), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model directory (default: the shipped model)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding imdb/ and sst2/")
    parser.add_argument("--pictures", type=Path, help="also draw the README's pictures in this folder")
    parser.add_argument("--only", action="append", help="run only this example (repeatable)")
    parser.add_argument("--width", type=int, default=110, help="terminal width for the outputs")
    opts = parser.parse_args()
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": str(opts.width), "TERM": "dumb"}
    env.pop("FORCE_COLOR", None)
    if opts.model:
        env["GRU_SENTIMENT_MODEL"] = str(opts.model)
    for name, args, stdin in examples(opts.data):
        if opts.only and name not in opts.only:
            continue
        print(f"### {name}\n$ gru-sentiment {shlex.join(args)}", flush=True)
        print(run(args, stdin, env), flush=True)
    if not opts.only or "negation-units" in opts.only:
        negation_units(opts.data, env)
    if opts.pictures:
        pictures(opts.pictures, env, opts.width)


if __name__ == "__main__":
    main()
