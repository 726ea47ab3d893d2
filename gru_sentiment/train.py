"""A model-agnostic training loop: AdamW, warm-up then linear decay, clipping, early stopping on validation.

`fit` is silent. It reports through callbacks: `on_step(StepInfo)` after every optimiser step and
`on_eval(EvalInfo)` after every validation, where the caller saves a checkpoint when `info.improved`.
At the end the model holds the best weights seen on validation.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from gru_sentiment import batching
from gru_sentiment import distributed
from gru_sentiment.distributed import Dist
from gru_sentiment.metrics import report_from_confusion
from gru_sentiment.streaming import BatchStream


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


def adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW that decays matrices only: not biases, not the embedding (rare words would shrink to nothing)."""
    decay = [p for n, p in model.named_parameters() if p.dim() > 1 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() > 1 and "embedding" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def evaluate(model: nn.Module, seqs: Sequence[Sequence[int]], labels: Sequence[int], label_names: list[str],
             batch_size: int, device: torch.device, dist: Dist | None = None) -> tuple[dict, float]:
    """Metrics report and mean cross-entropy of `model` on encoded sequences.

    Under torchrun each rank scores every world_size-th sequence and the counts are summed, so every rank gets
    the same report.
    """
    if dist is not None:
        seqs, labels = seqs[dist.rank::dist.world_size], labels[dist.rank::dist.world_size]
    was_training = model.training
    model.eval()
    logits = batching.logits_for(model, seqs, batch_size, device)
    model.train(was_training)
    target = torch.tensor(list(labels), dtype=torch.long)
    k = len(label_names)
    counts = torch.zeros(k * k + 2, dtype=torch.float64)
    if len(target):
        counts[:k * k] = torch.bincount(target * k + logits.argmax(-1), minlength=k * k).double()
        counts[-2] = nn.functional.cross_entropy(logits, target, reduction="sum").double()
    counts[-1] = len(target)
    if dist is not None:
        distributed.all_sum(counts)
    matrix = counts[:k * k].long().view(k, k).tolist()
    return report_from_confusion(matrix, label_names), float(counts[-2] / counts[-1].clamp(min=1))


@dataclass
class Snapshot:
    """All `fit` needs to continue exactly where it was: taken after every validation.

    `tensors` holds the current weights (`model.*`), the optimiser state (`optimizer.{param}.{name}`) and the
    torch random state; `meta` (JSON) the position, the Python random states, the schedule and the history.
    """

    tensors: dict[str, torch.Tensor]
    meta: dict


def _snapshot(model, optimizer, schedule, history, position: dict, bad_evals: int) -> Snapshot:
    tensors = {f"model.{k}": v.detach().cpu().clone() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for name, value in state.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu().clone()
    tensors["torch_rng"] = torch.get_rng_state()
    meta = {**position, "bad_evals": bad_evals, "param_groups": opt["param_groups"],
            "schedule": {k: v for k, v in schedule.state_dict().items() if k != "lr_lambdas"},
            "history": {"evals": [asdict(e) for e in history.evals], "steps": history.steps,
                        "tokens": history.tokens, "seconds": history.seconds}}
    return Snapshot(tensors, meta)


def _restore(snapshot: Snapshot, model, optimizer, schedule, history: History, device) -> None:
    t, meta = snapshot.tensors, snapshot.meta
    model.load_state_dict({k[len("model."):]: v for k, v in t.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in t.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value.to(device) if name != "step" else value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    schedule.load_state_dict({**meta["schedule"], "lr_lambdas": [None] * len(optimizer.param_groups)})
    torch.set_rng_state(t["torch_rng"])
    history.evals = [EvalInfo(**e) for e in meta["history"]["evals"]]
    history.steps, history.tokens = meta["history"]["steps"], meta["history"]["tokens"]
    history.seconds = meta["history"]["seconds"]


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng(rng: random.Random, state: list) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


def fit(model: nn.Module, train: tuple[Sequence[Sequence[int]], Sequence[int]] | BatchStream,
        val: tuple[Sequence[Sequence[int]], Sequence[int]], label_names: list[str], config: TrainConfig,
        device: torch.device, on_step: Callable[[StepInfo], None] | None = None,
        on_eval: Callable[[EvalInfo], None] | None = None,
        on_save: Callable[[dict, Snapshot | None, History], None] | None = None,
        resume: Snapshot | None = None, best_weights: dict | None = None, dist: Dist | None = None) -> History:
    """Train `model`; with `resume` (and the best weights so far), continue a run exactly where it stopped.

    `on_save(best_weights, snapshot, history)` is called after every validation: write the weights and the
    snapshot, and the run can resume.
    Under torchrun (`dist`), the model is wrapped in DistributedDataParallel and each rank trains on every
    world_size-th batch of the same shuffled, length-bucketed epoch (global batch = world_size x batch_size);
    validation counts are summed over ranks, so early stopping decides alike everywhere. No snapshot is
    taken then: a distributed run cannot be resumed.

    `train` may be a `BatchStream` (data read as a stream, already sharded per rank): an epoch's length is
    then unknown, so `config.max_steps` sets the length of the run and the `evals_per_epoch` validations are
    spread evenly over it; streamed runs are not resumable either.
    """
    rng = seed_everything(config.seed)
    stream = train if isinstance(train, BatchStream) else None
    world, rank = (dist.world_size, dist.rank) if dist else (1, 0)
    if stream is not None:
        if config.max_steps is None:
            raise ValueError("training on a stream needs max_steps")
        total = config.max_steps
        eval_every = max(1, total // config.evals_per_epoch)
    else:
        seqs, labels = train
        lengths = [len(s) for s in seqs]
        batches_per_epoch = math.ceil(len(seqs) / config.batch_size) // world
        if batches_per_epoch == 0:
            raise ValueError(f"{len(seqs)} training texts make fewer batches than the {world} processes")
        total = batches_per_epoch * config.epochs
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        eval_points = {round(batches_per_epoch * k / config.evals_per_epoch)
                       for k in range(1, config.evals_per_epoch + 1)}

    model.to(device).train()
    optimizer = adamw(model, config.lr, config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, config.warmup))
    net = model
    if dist is not None:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    history, best_state, bad_evals = History(), best_weights, 0
    first_epoch, skip, step, finished = 1, 0, 0, False
    if resume is not None:
        _restore(resume, model, optimizer, schedule, history, device)
        meta = resume.meta
        bad_evals, step, finished = meta["bad_evals"], meta["step"], meta["finished"]
        if meta["index"] >= meta["batches"]:  # the epoch was complete: start the next one
            first_epoch = meta["epoch"] + 1
            _set_rng(rng, meta["rng_now"])
        else:  # rebuild the epoch's batches and skip those already done
            first_epoch, skip = meta["epoch"], meta["index"]
            _set_rng(rng, meta["rng_epoch_start"])
    start = time.perf_counter() - history.seconds
    for epoch in itertools.count(first_epoch) if stream else range(first_epoch, config.epochs + 1):
        if finished:
            break
        epoch_rng = _rng_state(rng)
        if stream is not None:
            batches, batch_iter = None, stream.batches(epoch, rng)
        else:
            batches = batching.bucketed(lengths, config.batch_size, rng)[rank:batches_per_epoch * world:world]
            batch_iter = batching.iterate(seqs, labels, batches[skip:])
        index = skip
        for index, (ids, lens, target) in enumerate(batch_iter, start=skip + 1):
            t0 = time.perf_counter()
            loss = nn.functional.cross_entropy(net(ids.to(device), lens.to(device)), target.to(device))
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
            finished = step >= total
            if (step % eval_every == 0 if stream else index in eval_points) or finished:
                info = _validate(model, val, label_names, config, device, history, epoch, step, dist)
                if info.improved:
                    best_state, bad_evals = copy.deepcopy(model.state_dict()), 0
                else:
                    bad_evals += 1
                if bad_evals >= config.patience:
                    history.stopped_early = finished = True
                history.steps, history.seconds = step, time.perf_counter() - start
                if on_save:
                    snapshot = None
                    if dist is None and stream is None:
                        position = {"epoch": epoch, "index": index, "batches": len(batches), "step": step,
                                    "finished": finished, "rng_epoch_start": epoch_rng, "rng_now": _rng_state(rng)}
                        snapshot = _snapshot(model, optimizer, schedule, history, position, bad_evals)
                    on_save(best_state, snapshot, history)
                if on_eval:
                    on_eval(info)
            if finished:
                break
        if stream is not None and index == 0:
            raise ValueError("the training stream gave no batch")
        skip = 0
    history.steps, history.seconds = step, time.perf_counter() - start
    if dist is not None:
        history.tokens = int(distributed.all_sum(torch.tensor([history.tokens], dtype=torch.float64)).item())
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _validate(model, val, label_names, config, device, history, epoch, step, dist) -> EvalInfo:
    metrics, loss = evaluate(model, val[0], val[1], label_names, config.batch_size * 2, device, dist)
    best = history.best
    improved = best is None or metrics["accuracy"] > best.accuracy
    info = EvalInfo(epoch, step, metrics["accuracy"], metrics["macro_f1"], loss, improved,
                    max(metrics["accuracy"], best.accuracy if best else 0.0))
    history.evals.append(info)
    return info
