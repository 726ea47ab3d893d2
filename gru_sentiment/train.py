"""Classifier training: its settings, its validation score and its objective, run by the one loop (`loop.fit`).

Validation reports accuracy, macro F1 and loss, and, when the texts come from several data sets, the accuracy
on each. The score that early stopping and keep-best watch is the accuracy, or, over several data sets, the
mean of their accuracies, so that a large set (SST-2's 67k phrases) does not outvote the small ones; a data set
that the mix gives no texts is reported but not watched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import torch
from torch import nn

from gru_sentiment import batching, distributed, objectives
from gru_sentiment.distributed import Dist
from gru_sentiment.errors import ModelError
from gru_sentiment.loop import LoopConfig, Score
from gru_sentiment.metrics import report_from_confusion


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = LoopConfig.epochs
    batch_size: int = 64
    lr: float = LoopConfig.lr
    weight_decay: float = LoopConfig.weight_decay
    warmup: float = LoopConfig.warmup
    clip: float = LoopConfig.clip
    patience: int = LoopConfig.patience
    max_steps: int | None = None
    evals_per_epoch: int = LoopConfig.evals_per_epoch
    seed: int = LoopConfig.seed
    adv: float = 0.0  # adversarial training weight (Miyato et al. 2017); 0: off
    vat: float = 0.0  # virtual adversarial training weight, on unlabelled texts; 0: off
    adv_eps: float = 5.0  # perturbation size, in embedding standard deviations
    vat_batch_size: int | None = None  # unlabelled texts per step (default: batch_size)
    entmin: float = 0.0  # entropy minimisation weight, on the same unlabelled texts; 0: off
    layer_lr_decay: float = LoopConfig.layer_lr_decay  # discriminative learning rates: lr / decay**depth below the head
    # distillation (objectives.Distillation): softening of teacher and student logits, and the teacher's share
    # for a text that has a gold label too
    distill_temperature: float = objectives.Distillation.temperature
    distill_weight: float = objectives.Distillation.weight
    # validate and keep a moving average of the weights, this decay per step (loop.Trainer); 0: off
    ema: float = LoopConfig.ema

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """The config a model directory recorded. Runs saved before teacher logits came with the data recorded
        GRU teacher models (`teachers`): one that had none reads as plain training."""
        data = dict(data)
        if data.pop("teachers", None):
            raise ModelError("this run distilled from a GRU teacher model, which this version cannot resume")
        data.pop("teacher_weight", None)
        return cls(**data)

    def loop(self) -> LoopConfig:
        return LoopConfig.of(self)

    @property
    def adversarial(self) -> objectives.Adversarial:
        return objectives.Adversarial(at=self.adv, vat=self.vat, eps=self.adv_eps, entmin=self.entmin)

    @property
    def distillation(self) -> objectives.Distillation:
        return objectives.Distillation(self.distill_temperature, self.distill_weight)


def loss_function(model: nn.Module, config: TrainConfig, unlabelled=None) -> Callable:
    """The classifier objective `config` asks for: cross-entropy (with distillation where a batch carries teacher
    logits), or with adversarial terms."""
    if not config.adversarial.active:
        return partial(objectives.cross_entropy, distillation=config.distillation)
    return objectives.AdversarialLoss(config.adversarial, model.embedding, unlabelled, config.distillation)


def evaluate(
    model: nn.Module,
    seqs: Sequence[Sequence[int]],
    labels: Sequence[int],
    label_names: list[str],
    batch_size: int,
    device: torch.device,
    dist: Dist | None = None,
    groups: Sequence[int] | None = None,
    n_groups: int = 0,
) -> tuple[dict, float, list[dict]]:
    """Metrics report, mean cross-entropy and one report per group (`groups[i]` in [0, n_groups)) of `model` on
    encoded sequences.

    Under torchrun each rank scores every world_size-th sequence and the counts are summed, so every rank gets
    the same reports.
    """
    groups = list(groups) if groups is not None else [0] * len(seqs)
    if dist is not None:
        seqs, labels = seqs[dist.rank :: dist.world_size], labels[dist.rank :: dist.world_size]
        groups = groups[dist.rank :: dist.world_size]
    was_training = model.training
    model.eval()
    logits = batching.logits_for(model, seqs, batch_size, device)
    model.train(was_training)
    target = torch.tensor(list(labels), dtype=torch.long)
    k = len(label_names)
    counts = torch.zeros(k * k * (1 + n_groups) + 2, dtype=torch.float64)
    if len(target):
        cell = target * k + logits.argmax(-1)
        counts[: k * k] = torch.bincount(cell, minlength=k * k).double()
        if n_groups:
            per_group = torch.tensor(groups, dtype=torch.long) * k * k + cell
            counts[k * k : k * k * (1 + n_groups)] = torch.bincount(per_group, minlength=k * k * n_groups).double()
        counts[-2] = nn.functional.cross_entropy(logits, target, reduction="sum").double()
    counts[-1] = len(target)
    if dist is not None:
        distributed.all_sum(counts)
    matrices = counts[: k * k * (1 + n_groups)].long().view(1 + n_groups, k, k).tolist()
    reports = [report_from_confusion(m, label_names) for m in matrices]
    return reports[0], float(counts[-2] / counts[-1].clamp(min=1)), reports[1:]


def validator(
    seqs: Sequence[Sequence[int]],
    labels: Sequence[int],
    label_names: list[str],
    batch_size: int,
    device: torch.device,
    dist: Dist | None = None,
    groups: Sequence[int] | None = None,
    group_names: Sequence[str] = (),
    watch: Sequence[str] | None = None,
) -> Callable[[nn.Module], Score]:
    """The validation score of a classifier: accuracy, or the mean accuracy over `group_names` when several, or
    over the `watch` among them (the data sets a run trains on: one mixed in with weight 0 is reported, not
    chosen on)."""
    several = groups is not None and len(group_names) > 1

    def validate(model: nn.Module) -> Score:
        metrics, loss, by_group = evaluate(
            model,
            seqs,
            labels,
            label_names,
            batch_size,
            device,
            dist,
            groups if several else None,
            len(group_names) if several else 0,
        )
        result = {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "loss": loss}
        value = metrics["accuracy"]
        if several:
            result["by_source"] = {name: r["accuracy"] for name, r in zip(group_names, by_group) if r["n"]}
            watched = {k: v for k, v in result["by_source"].items() if watch is None or k in watch}
            value = sum(watched.values()) / max(1, len(watched))
            if len(watched) < len(result["by_source"]):
                result["mean_of"] = list(watched)
            result["mean_source_accuracy"] = value
        return Score(value, True, result)

    return validate
