"""A model-agnostic training loop: AdamW, warm-up then linear decay, clipping, early stopping on validation.

`fit` is silent. It reports through callbacks: `on_step(StepInfo)` after every optimiser step and
`on_eval(EvalInfo)` after every validation, where the caller saves a checkpoint when `info.improved`.
At the end the model holds the best weights seen on validation.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from gru_sentiment import batching
from gru_sentiment.metrics import report


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.05
    clip: float = 1.0
    patience: int = 2
    max_steps: int | None = None
    evals_per_epoch: int = 1
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepInfo:
    epoch: int
    step: int
    total_steps: int
    loss: float
    tokens_per_s: float
    lr: float


@dataclass
class EvalInfo:
    epoch: int
    step: int
    accuracy: float
    macro_f1: float
    loss: float
    improved: bool
    best_accuracy: float


@dataclass
class History:
    evals: list[EvalInfo] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    tokens: int = 0
    stopped_early: bool = False

    @property
    def best(self) -> EvalInfo | None:
        return max(self.evals, key=lambda e: e.accuracy, default=None)


def seed_everything(seed: int) -> random.Random:
    torch.manual_seed(seed)
    return random.Random(seed)


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over the first `warmup` share of steps, then linear decay to zero."""
    warm = max(1, math.ceil(total * warmup))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1, total - warm))


def evaluate(model: nn.Module, seqs: Sequence[Sequence[int]], labels: Sequence[int], label_names: list[str],
             batch_size: int, device: torch.device) -> tuple[dict, float]:
    """Metrics report and mean cross-entropy of `model` on encoded sequences."""
    was_training = model.training
    model.eval()
    logits = batching.logits_for(model, seqs, batch_size, device)
    model.train(was_training)
    target = torch.tensor(list(labels), dtype=torch.long)
    loss = nn.functional.cross_entropy(logits, target).item()
    return report(list(labels), logits.argmax(-1).tolist(), label_names), loss


def fit(model: nn.Module, train: tuple[Sequence[Sequence[int]], Sequence[int]],
        val: tuple[Sequence[Sequence[int]], Sequence[int]], label_names: list[str], config: TrainConfig,
        device: torch.device, on_step: Callable[[StepInfo], None] | None = None,
        on_eval: Callable[[EvalInfo], None] | None = None) -> History:
    rng = seed_everything(config.seed)
    seqs, labels = train
    lengths = [len(s) for s in seqs]
    batches_per_epoch = math.ceil(len(seqs) / config.batch_size)
    total = batches_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    eval_points = {round(batches_per_epoch * k / config.evals_per_epoch) for k in range(1, config.evals_per_epoch + 1)}

    model.to(device).train()
    decay = [p for n, p in model.named_parameters() if p.dim() > 1 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() > 1 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, config.warmup))

    history, best_state, bad_evals = History(), None, 0
    start = time.perf_counter()
    step = 0
    for epoch in range(1, config.epochs + 1):
        batches = batching.bucketed(lengths, config.batch_size, rng)
        for index, (ids, lens, target) in enumerate(batching.iterate(seqs, labels, batches), start=1):
            t0 = time.perf_counter()
            loss = nn.functional.cross_entropy(model(ids.to(device), lens.to(device)), target.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            schedule.step()
            step += 1
            tokens = int(lens.sum())
            history.tokens += tokens
            if on_step:
                on_step(StepInfo(epoch, step, total, loss.item(), tokens / (time.perf_counter() - t0),
                                 schedule.get_last_lr()[0]))
            last_step = step >= total
            if index in eval_points or last_step:
                info = _validate(model, val, label_names, config, device, history, epoch, step)
                if info.improved:
                    best_state, bad_evals = copy.deepcopy(model.state_dict()), 0
                else:
                    bad_evals += 1
                if on_eval:
                    on_eval(info)
                if bad_evals >= config.patience:
                    history.stopped_early = True
                    last_step = True
            if last_step:
                break
        else:
            continue
        break
    history.steps, history.seconds = step, time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _validate(model, val, label_names, config, device, history, epoch, step) -> EvalInfo:
    metrics, loss = evaluate(model, val[0], val[1], label_names, config.batch_size * 2, device)
    best = history.best
    improved = best is None or metrics["accuracy"] > best.accuracy
    info = EvalInfo(epoch, step, metrics["accuracy"], metrics["macro_f1"], loss, improved,
                    max(metrics["accuracy"], best.accuracy if best else 0.0))
    history.evals.append(info)
    return info
