"""Training throughput of the full step against bare nn.GRU kernels, on identical IMDB-like padded batches.

    python bench/train_speed.py [--batches 12] [--data ../shared/data] [--device cuda]

Batches: IMDB train reviews tokenized by the shipped tokenizer (cut at 512 tokens), grouped by the training
loop's own length bucketing (batch 64); without the data, lengths drawn to match IMDB's. Every system runs
on the same batches; tokens/s counts real (unpadded) tokens. Systems:
- full step: gru-sentiment's training step, the one `loop.Trainer.step` that `train` runs (embedding, both GRU
  directions, pooling, loss, backward, clip, AdamW, schedule);
- bare bidirectional nn.GRU forward+backward on the padded batch (what `nn.GRU(bidirectional=True)` costs;
  note that its backward direction reads padding first, so it is not exact for padded batches);
- bare pair of one-direction nn.GRUs forward+backward: the kernels the model runs, its practical limit;
- packed sequences through a bidirectional nn.GRU forward+backward: the exact alternative.
Also prints the share of padding with length bucketing and with random batches.

    python bench/train_speed.py --nproc 2 [--steps 60]

instead runs the real `gru-sentiment train` on IMDB train for --steps steps (batch 64 per process), once in
one process using every core and once under `torchrun --nproc-per-node N` (cores split between processes),
and prints tokens/s of each, read from the model's training record (one validation pass included).
"""

import argparse
import random
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from gru_sentiment import batching, tokenizer
from gru_sentiment.loop import Trainer
from gru_sentiment.model import GRUClassifier, ModelConfig
from gru_sentiment.sources import UnlabelledPool
from gru_sentiment.train import TrainConfig, loss_function

EMBED, HIDDEN, VOCAB = 128, 128, 20000


def imdb_lengths(data_dir: Path, limit: int = 6400) -> list[int]:
    path = data_dir / "imdb" / "train.parquet"
    model_dir = Path(__file__).resolve().parents[1] / "models" / "gru-reviews"
    if path.exists() and (model_dir / "tokenizer.json").exists():
        import pyarrow.parquet as pq

        texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()[:limit]
        tok = tokenizer.load(str(model_dir / "tokenizer.json"))
        return [len(ids) for ids in tokenizer.encode_ids(tok, texts, tokenizer.Cut(512))], "IMDB train (tokenized)"
    rng = random.Random(0)  # log-normal with IMDB's median (~230 tokens) and spread, cut at 512
    return [min(512, max(8, int(rng.lognormvariate(5.45, 0.65)))) for _ in range(limit)], "synthetic IMDB-like"


def time_steps(step, batches, device: torch.device) -> float:
    step(batches[0])  # warm-up
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    sync()
    return time.perf_counter() - start


def scaling(nproc: int, steps: int, data_dir: Path) -> None:
    import json
    import os
    import subprocess
    import sys
    import tempfile

    cores = os.cpu_count() or 1
    args = [
        "train",
        "-d",
        str(data_dir / "imdb"),
        "--max-steps",
        str(steps),
        "--val-fraction",
        "0.02",
        "--set",
        "tokenizer.max_length=512",
        "--set",
        f"tokenizer.from={Path(__file__).resolve().parents[1] / 'models' / 'gru-reviews'}",
    ]
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, nproc):
            out = Path(tmp) / f"n{n}"
            threads = ["--threads", str(max(1, cores // n))]
            launcher = (
                [sys.executable]
                if n == 1
                else [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n)]
            )
            subprocess.run(
                [*launcher, "-m", "gru_sentiment", *args, *threads, "-o", str(out)],
                check=True,
                capture_output=True,
                env={**os.environ, "OMP_NUM_THREADS": str(max(1, cores // n))},
            )
            rates[n] = json.loads((out / "config.json").read_text())["training"]["tokens_per_s"]
    print(f"gru-sentiment train on IMDB train, {steps} steps of batch 64 per process, {cores} cores")
    for n, rate in rates.items():
        print(f"{n} process{'es' if n > 1 else ''}: {rate:>9,} tokens/s   ({rate / rates[1]:.2f}x one process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", type=int, default=None, help="compare 1 and N torchrun processes instead")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (on CUDA, nn.GRU runs cuDNN's kernel)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.nproc:
        scaling(args.nproc, args.steps, args.data)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lengths, source = imdb_lengths(args.data)
    seqs = [[2 + (i % (VOCAB - 2))] * n for i, n in enumerate(lengths)]
    bucketed = batching.bucketed(lengths, args.batch_size, random.Random(0))
    shuffled = list(range(len(lengths)))
    random.Random(0).shuffle(shuffled)
    random_batches = [shuffled[i : i + args.batch_size] for i in range(0, len(shuffled), args.batch_size)]
    chosen = random.Random(1).sample(bucketed, args.batches)
    batches = [
        tuple(t.to(device) for t in (*batching.pad([seqs[i] for i in b]), torch.randint(0, 2, (len(b),))))
        for b in chosen
    ]
    tokens = sum(int(lens.sum()) for _, lens, _ in batches)

    model = GRUClassifier(ModelConfig(vocab_size=VOCAB, num_labels=2, embed_dim=EMBED, hidden_size=HIDDEN))
    model.to(device).train()
    # the very step `gru-sentiment train` runs: the loop's Trainer (AdamW, schedule, clip) on the train objective
    full_step = Trainer(model, loss_function(model, TrainConfig()), TrainConfig().loop(), total_steps=10**6).step

    bi = nn.GRU(EMBED, HIDDEN, batch_first=True, bidirectional=True).to(device)
    pair = nn.ModuleList(nn.GRU(EMBED, HIDDEN, batch_first=True) for _ in range(2)).to(device)
    inputs = [
        torch.randn(ids.shape[0], ids.shape[1], EMBED, device=device, requires_grad=True) for ids, _, _ in batches
    ]
    index = {id(b): i for i, b in enumerate(batches)}

    def bare_bi(batch):
        bi(inputs[index[id(batch)]])[0].sum().backward()

    def bare_pair(batch):
        x = inputs[index[id(batch)]]
        (pair[0](x)[0].sum() + pair[1](x)[0].sum()).backward()

    def packed(batch):
        x = inputs[index[id(batch)]]
        out = bi(pack_padded_sequence(x, batch[1].cpu(), batch_first=True, enforce_sorted=False))[0]
        out.data.sum().backward()

    # the same step with the adversarial objectives (--adv 1, and --adv 1 --vat 1 on unlabelled batches drawn
    # from the same reviews); tokens/s counts the labelled tokens only, so the ratio is the cost per example
    adversarial = {}
    for name, config in (
        ("full step + AT (--adv 1)", TrainConfig(adv=1.0)),
        ("full step + AT + VAT (--adv 1 --vat 1)", TrainConfig(adv=1.0, vat=1.0)),
    ):
        pool = UnlabelledPool([seqs[i] for b in chosen for i in b], args.batch_size) if config.vat else None
        trainer = Trainer(model, loss_function(model, config, pool), config.loop(), total_steps=10**6)
        adversarial[name] = trainer.step

    results = {}
    for name, step in (
        ("full step (gru-sentiment)", full_step),
        *adversarial.items(),
        ("bare nn.GRU bidirectional", bare_bi),
        ("bare pair of 1-direction nn.GRUs", bare_pair),
        ("packed bidirectional nn.GRU", packed),
    ):
        results[name] = tokens / time_steps(step, batches, device)
    full = results["full step (gru-sentiment)"]
    print(
        f"{args.batches} batches of {args.batch_size} from {source}; {tokens:,} real tokens; "
        f"embed {EMBED}, hidden {HIDDEN}, bidirectional; "
        f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}"
    )
    print(
        f"padding with length bucketing: {batching.padding_fraction(seqs, bucketed):.1%}; "
        f"with random batches: {batching.padding_fraction(seqs, random_batches):.1%}"
    )
    for name, rate in results.items():
        print(f"{name:<38} {rate:>9,.0f} tokens/s   full step / this = {full / rate:5.2f}x")
    print("targets: full / bare nn.GRU >= 0.8; full / packed >= 3")


if __name__ == "__main__":
    main()
