"""Start-up cost of the command line, against `python -c "import torch"` measured in the same run.

    python bench/startup.py [--repeats 5]

Prints the median wall time of: importing torch; `gru-sentiment --help`; `gru-sentiment predict "one sentence"`
with the shipped model (cold: a new process each time). Targets: --help under 0.3 s and without torch or
datasets; predict under 2x the torch import. Also lists the modules `--help` imports that are heavy.
"""

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "datasets", "tokenizers", "safetensors", "numpy", "pandas", "pyarrow")


def median_seconds(command: list[str], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def heavy_imports_of_help() -> list[str]:
    code = (
        "import sys; sys.argv = ['gru-sentiment', '--help']\n"
        "from gru_sentiment.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', *[m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.split("LOADED", 1)[1].split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "gru_sentiment"]
    torch_import = median_seconds([sys.executable, "-c", "import torch"], args.repeats)
    help_time = median_seconds([*cli, "--help"], args.repeats)
    predict_time = median_seconds([*cli, "predict", "A wonderful, moving film."], args.repeats)
    heavy = heavy_imports_of_help()
    print(f"median of {args.repeats} cold runs each")
    print(f"python -c 'import torch'            {torch_import:6.2f} s")
    print(
        f"gru-sentiment --help                {help_time:6.2f} s   (target < 0.3 s)   heavy imports: "
        f"{', '.join(heavy) or 'none'}"
    )
    print(
        f"gru-sentiment predict 'one sentence' {predict_time:5.2f} s   = {predict_time / torch_import:.2f}x the torch "
        f"import (target < 2x)"
    )


if __name__ == "__main__":
    main()
