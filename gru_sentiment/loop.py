"""The one training loop: classifier training, language-model pre-training and the speed benchmark all run it.

`fit(model, source, loss_fn, validate, config)` knows nothing of classifiers or language models:
- `source.batches(epoch, rng)` yields the batches of one epoch; `source.steps_per_epoch(world)` is their number,
  or None for a stream (then `config.max_steps` sets the length of the run);
- `loss_fn(net, batch) -> (loss, tokens)`: the objective (cross-entropy, adversarial terms, a language model's
  likelihood) and how many tokens the step read;
- `validate(model) -> Score`: a value and its direction (accuracy goes up, perplexity down), plus metrics; or
  None, for a final run on every text once settings are chosen: the weights kept at each checkpoint, and so
  at the end, are the latest.

One optimiser (AdamW), one schedule (warm-up, linear decay), one clip, one weight average, one early stop, one
keep-best, one resume snapshot, one DDP wrapper. `fit` is silent: it reports through `on_step(StepInfo)`,
`on_eval(Eval)` and `on_checkpoint(best_weights, snapshot, history)` (after every validation: write what should
survive).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import torch
from torch import nn

from gru_sentiment import distributed
from gru_sentiment.distributed import Dist


class BatchSource(Protocol):
    def batches(
        self, epoch: int, rng: random.Random, rank: int = 0, world_size: int = 1, skip: int = 0
    ) -> Iterator[Any]:
        """This rank's batches of one epoch, in the order `rng` gives, less the first `skip` (a resumed run has
        done them); each a tuple of tensors. A known-length source plans the whole epoch from `rng` and gives
        rank r every world_size-th batch from r; a stream is sharded already and ignores rank and skip."""

    def steps_per_epoch(self, world_size: int = 1) -> int | None:
        """Batches one rank takes per epoch; None when unknown (a stream)."""


@dataclass(frozen=True)
class LoopConfig:
    """How long and how fast to train, and when to look at validation.

    Validation happens `evals_per_epoch` times per epoch (at even positions of a known-length epoch, or every
    max_steps // evals_per_epoch steps on a stream), or, with `evals`, that many times evenly over the run.
    `patience`: stop after that many validations without improvement (None: never stop early).
    """

    epochs: int = 4
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.05
    clip: float = 1.0
    max_steps: int | None = None
    patience: int | None = 2
    evals_per_epoch: int = 1
    evals: int | None = None
    seed: int = 0
    layer_lr_decay: float = 1.0  # each layer below the output learns this many times slower (1: all alike)
    ema: float = 0.0  # validate and keep an exponential moving average of the weights, this decay per step; 0: off

    @classmethod
    def of(cls, settings, **overrides) -> LoopConfig:
        """The loop settings a job's config carries (the fields of this class it has), with `overrides`."""
        names = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in asdict(settings).items() if k in names}, **overrides})


@dataclass(frozen=True)
class Score:
    value: float
    higher_is_better: bool = True
    metrics: dict = field(default_factory=dict)

    def beats(self, other: float) -> bool:
        return self.value > other if self.higher_is_better else self.value < other


@dataclass
class StepInfo:
    epoch: int
    step: int
    total_steps: int
    loss: float
    tokens_per_s: float
    lr: float


@dataclass
class Eval:
    epoch: int
    step: int
    value: float
    higher_is_better: bool
    improved: bool
    metrics: dict = field(default_factory=dict)

    def __getattr__(self, name: str):  # info.accuracy, info.loss, ...: the validation's metrics by name
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]
        raise AttributeError(name)


@dataclass
class History:
    evals: list[Eval] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    tokens: int = 0
    stopped_early: bool = False

    @property
    def best(self) -> Eval | None:
        if not self.evals:
            return None
        sign = 1.0 if self.evals[0].higher_is_better else -1.0
        return max(self.evals, key=lambda e: sign * e.value)


@dataclass
class Snapshot:
    """All `fit` needs to continue exactly where it was: taken after every validation.

    `tensors` holds the current weights (`model.*`), the optimiser state (`optimizer.{param}.{name}`) and the
    torch random state; `meta` (JSON) the position, the Python random states, the schedule and the history.
    """

    tensors: dict[str, torch.Tensor]
    meta: dict


def seed_everything(seed: int) -> random.Random:
    torch.manual_seed(seed)
    return random.Random(seed)


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over the first `warmup` share of steps, then linear decay to zero."""
    warm = max(1, math.ceil(total * warmup))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1, total - warm))


def adamw(model: nn.Module, lr: float, weight_decay: float, layer_lr_decay: float = 1.0) -> torch.optim.AdamW:
    """AdamW that decays matrices only: not biases, not the embedding (rare words would shrink to nothing).

    Discriminative learning rates (Howard & Ruder 2018): with `layer_lr_decay` d != 1 and a model that tells how
    far below its output each parameter sits (`lr_depth(name)`, 0 for the output layer), a parameter at depth
    k learns at lr / d**k. Groups are ordered by depth, matrices first, as the two groups of d = 1 always were.
    """
    depth = getattr(model, "lr_depth", None) if layer_lr_decay != 1.0 else None
    groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        decays = param.dim() > 1 and "embedding" not in name
        groups.setdefault((depth(name) if depth else 0, decays), []).append(param)
    return torch.optim.AdamW(
        [
            {"params": params, "weight_decay": weight_decay if decays else 0.0, "lr": lr / layer_lr_decay**k}
            for (k, decays), params in sorted(groups.items(), key=lambda item: (item[0][0], not item[0][1]))
        ],
        lr=lr,
    )


class Trainer:
    """Optimiser, schedule and clip around a loss function: one `step(batch)` is one update.

    With `config.ema` = d > 0 it also keeps an exponential moving average of the parameters (Polyak averaging,
    as in Izmailov et al.'s and Tarvainen & Valpola's uses): after every update, average = d x average + (1 - d)
    x weights, starting from the weights it was given. `averaged()` swaps the average in while a block runs.
    `fit` runs it; `bench/train_speed.py` times the very same step.
    """

    def __init__(
        self, model: nn.Module, loss_fn: Callable, config: LoopConfig, total_steps: int, net: nn.Module | None = None
    ):
        self.model, self.loss_fn, self.config, self.net = model, loss_fn, config, net or model
        self.optimizer = adamw(model, config.lr, config.weight_decay, config.layer_lr_decay)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, total_steps, config.warmup)
        )
        self.average: dict[str, torch.Tensor] = (
            {name: p.detach().clone() for name, p in model.named_parameters()} if config.ema else {}
        )

    def step(self, batch) -> tuple[float, int]:
        loss, tokens = self.loss_fn(self.net, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
        self.optimizer.step()
        self.schedule.step()
        if self.average:
            with torch.no_grad():
                params = dict(self.model.named_parameters())
                for name, value in self.average.items():
                    value.lerp_(params[name].detach(), 1.0 - self.config.ema)
        return loss.item(), tokens

    @contextlib.contextmanager
    def averaged(self):
        """The model holds the averaged weights inside the block (its own weights without `ema`), and its
        trained weights again after it."""
        if not self.average:
            yield
            return
        params = dict(self.model.named_parameters())
        trained = {name: p.detach().clone() for name, p in params.items()}
        with torch.no_grad():
            for name, value in self.average.items():
                params[name].copy_(value)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in trained.items():
                    params[name].copy_(value)


def fit(
    model: nn.Module,
    source: BatchSource,
    loss_fn: Callable,
    validate: Callable[[nn.Module], Score] | None,
    config: LoopConfig,
    device: torch.device,
    on_step: Callable[[StepInfo], None] | None = None,
    on_eval: Callable[[Eval], None] | None = None,
    on_checkpoint: Callable | None = None,
    resume: Snapshot | None = None,
    best_weights: dict | None = None,
    dist: Dist | None = None,
    resumable: bool = True,
) -> History:
    """Train `model` on `source` with `loss_fn`; at the end the model holds the best weights seen on validation
    (without `validate`: the last weights; checkpoints come at the same points).

    With `resume` (and the best weights so far), continue a run exactly where it stopped. Under torchrun
    (`dist`) the model is wrapped in DistributedDataParallel and each rank takes every world_size-th batch of
    the same epoch (global batch = world_size x batch); `validate` sums its counts over ranks, so early stopping
    decides alike everywhere. Snapshots are taken only for single-process runs over a known-length source.
    """
    rng = seed_everything(config.seed)
    world, rank = (dist.world_size, dist.rank) if dist else (1, 0)
    per_epoch = source.steps_per_epoch(world)
    if per_epoch is None:
        if config.max_steps is None:
            raise ValueError("training on a stream needs max_steps")
        total = config.max_steps
    else:
        if per_epoch == 0:
            raise ValueError(f"the training data make fewer batches than the {world} processes")
        total = (
            per_epoch * config.epochs if config.max_steps is None else min(per_epoch * config.epochs, config.max_steps)
        )
    if total == 0:
        raise ValueError("no training batches")
    if config.evals:
        run_points, epoch_points = {max(1, round(total * k / config.evals)) for k in range(1, config.evals + 1)}, set()
    elif per_epoch is None:
        every = max(1, total // config.evals_per_epoch)
        run_points, epoch_points = set(range(every, total + 1, every)), set()
    else:
        run_points = set()
        epoch_points = {round(per_epoch * k / config.evals_per_epoch) for k in range(1, config.evals_per_epoch + 1)}
    snapshots = resumable and dist is None and per_epoch is not None

    model.to(device).train()
    net = model
    if dist is not None:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    trainer = Trainer(model, loss_fn, config, total, net)

    history, best_state, bad_evals = History(), best_weights, 0
    first_epoch, skip, step, finished = 1, 0, 0, False
    if resume is not None:
        _restore(resume, model, trainer, history, device)
        meta = resume.meta
        bad_evals, step, finished = meta["bad_evals"], meta["step"], meta["finished"]
        if meta["index"] >= meta["batches"]:  # the epoch was complete: start the next one
            first_epoch = meta["epoch"] + 1
            _set_rng(rng, meta["rng_now"])
        else:  # rebuild the epoch's batches and skip those already done
            first_epoch, skip = meta["epoch"], meta["index"]
            _set_rng(rng, meta["rng_epoch_start"])
    start = time.perf_counter() - history.seconds
    epochs = itertools.count(first_epoch) if per_epoch is None else range(first_epoch, config.epochs + 1)
    for epoch in epochs:
        if finished:
            break
        epoch_rng = _rng_state(rng)
        index = skip
        for index, batch in enumerate(source.batches(epoch, rng, rank, world, skip), start=skip + 1):
            t0 = time.perf_counter()
            loss, tokens = trainer.step(tuple(t.to(device) for t in batch))
            step += 1
            history.tokens += tokens
            if on_step:
                on_step(
                    StepInfo(
                        epoch, step, total, loss, tokens / (time.perf_counter() - t0), trainer.schedule.get_last_lr()[0]
                    )
                )
            finished = step >= total
            if step in run_points or index in epoch_points or finished:
                info = None
                with trainer.averaged():  # with `ema`, the average is what is validated and kept
                    if validate is None:  # nothing to choose on: keep the latest weights
                        best_state = copy.deepcopy(model.state_dict())
                    else:
                        score = validate(model)
                        best = history.best
                        improved = best is None or score.beats(best.value)
                        info = Eval(epoch, step, score.value, score.higher_is_better, improved, dict(score.metrics))
                        history.evals.append(info)
                        if improved:
                            best_state, bad_evals = copy.deepcopy(model.state_dict()), 0
                        else:
                            bad_evals += 1
                if config.patience is not None and bad_evals >= config.patience:
                    history.stopped_early = finished = True
                history.steps, history.seconds = step, time.perf_counter() - start
                if on_checkpoint:
                    snapshot = None
                    if snapshots:
                        position = {
                            "epoch": epoch,
                            "index": index,
                            "batches": per_epoch,
                            "step": step,
                            "finished": finished,
                            "rng_epoch_start": epoch_rng,
                            "rng_now": _rng_state(rng),
                        }
                        snapshot = _snapshot(model, trainer, history, position, bad_evals)
                    on_checkpoint(best_state, snapshot, history)
                if on_eval and info is not None:
                    on_eval(info)
            if finished:
                break
        if per_epoch is None and index == 0:
            raise ValueError("the training stream gave no batch")
        skip = 0
    history.steps, history.seconds = step, time.perf_counter() - start
    if dist is not None:
        history.tokens = int(distributed.all_sum(torch.tensor([history.tokens], dtype=torch.float64)).item())
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _snapshot(model, trainer: Trainer, history: History, position: dict, bad_evals: int) -> Snapshot:
    tensors = {f"model.{k}": v.detach().cpu().clone() for k, v in model.state_dict().items()}
    opt = trainer.optimizer.state_dict()
    for index, state in opt["state"].items():
        for name, value in state.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu().clone()
    tensors.update({f"average.{k}": v.detach().cpu().clone() for k, v in trainer.average.items()})
    tensors["torch_rng"] = torch.get_rng_state()
    meta = {
        **position,
        "bad_evals": bad_evals,
        "param_groups": opt["param_groups"],
        "schedule": {k: v for k, v in trainer.schedule.state_dict().items() if k != "lr_lambdas"},
        "history": {
            "evals": [asdict(e) for e in history.evals],
            "steps": history.steps,
            "tokens": history.tokens,
            "seconds": history.seconds,
        },
    }
    return Snapshot(tensors, meta)


def _restore(snapshot: Snapshot, model, trainer: Trainer, history: History, device) -> None:
    t, meta = snapshot.tensors, snapshot.meta
    model.load_state_dict({k[len("model.") :]: v for k, v in t.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in t.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value.to(device) if name != "step" else value
    trainer.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    trainer.schedule.load_state_dict({**meta["schedule"], "lr_lambdas": [None] * len(trainer.optimizer.param_groups)})
    for name, value in trainer.average.items():
        value.copy_(t[f"average.{name}"])
    torch.set_rng_state(t["torch_rng"])
    history.evals = [Eval(**e) for e in meta["history"]["evals"]]
    history.steps, history.tokens = meta["history"]["steps"], meta["history"]["tokens"]
    history.seconds = meta["history"]["seconds"]


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng(rng: random.Random, state: list) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))
