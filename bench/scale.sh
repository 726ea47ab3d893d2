#!/usr/bin/env bash
# Scoring at scale in one prepared run: where a GPU is, the CUDA tests, where prediction's time goes on 100,000
# IMDB reviews (bench/predict_stages.py: tokenizer alone, bare forward pass, the whole path) and the predict
# command against an earlier version of the code on the same file; where ray is installed, 1 vs 2 local Ray
# workers (bench/ray_speed.py).
#
#   bench/scale.sh [DATA] [BEFORE]
#
# DATA: the folder that holds imdb/ (test.parquet; train.parquet and unsupervised.parquet too where they fit);
# default ../shared/data. BEFORE: a source tree of the earlier code (`git worktree add /tmp/before COMMIT`, or
# `git archive COMMIT gru_sentiment | tar -x -C DIR`), timed against this one; skipped when not given.
# PYTHON: the interpreter (default .venv/bin/python, else python3). On a machine without the project installed,
# the checkout is put first on PYTHONPATH. On a GPU machine that cannot see ../shared, copy imdb/test.parquet and
# imdb/train.parquet into a folder git ignores, take it along, and give it as DATA (texts repeat to 100,000).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
before=${2:-}
py=${PYTHON:-$([ -x .venv/bin/python ] && echo "$PWD/.venv/bin/python" || command -v python3)}
model="$PWD/models/gru-reviews"  # both versions of the code read this model
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if "$py" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    echo "cores: $(nproc)"
    "$py" -m pytest -q tests/test_cuda.py
    "$py" bench/predict_stages.py --device cuda --limit 100000 --data "$data"
    file=$(mktemp --suffix .txt)
    "$py" -c "import sys; sys.path.insert(0, 'bench'); import predict_stages as s, pathlib
open(sys.argv[1], 'w').write('\n'.join(' '.join(t.split()) for t in s.imdb_texts(pathlib.Path(sys.argv[2]) / 'imdb', 100000)) + '\n')" \
        "$file" "$data"
    for code in "$PWD" ${before:+"$before"}; do
        start=$(date +%s.%N)
        (cd "$code" && PYTHONPATH="$code" "$py" -m gru_sentiment predict --file "$file" --device cuda -f jsonl \
            --model "$model" >/dev/null)
        end=$(date +%s.%N)
        "$py" -c "import sys; s = float(sys.argv[2]) - float(sys.argv[1]); print(f'predict --device cuda, 100,000 reviews, code in {sys.argv[3]}: {s:.1f} s, {100000 / s:,.0f} reviews/s (start-up included)')" \
            "$start" "$end" "$code"
    done
    rm -f "$file"
else
    echo "no GPU here: the GPU figures are skipped"
fi

if "$py" -c 'import ray' 2>/dev/null; then
    "$py" bench/ray_speed.py --data "$data"
else
    echo "ray is not installed here: the Ray figures are skipped (pip install '.[ray]')"
fi
