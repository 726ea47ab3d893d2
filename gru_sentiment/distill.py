"""Knowledge distillation: training targets that blend the gold label with a trained teacher's probabilities.

A student that must read films, products, apps and hotels with one small GRU can learn from a teacher that
read films alone (a specialist), as Clark et al. (ACL 2019, "BAM! Born-Again Multi-Task Networks") distil
single-task teachers into one multi-task student. Each data set of the training mix may have its own teacher:
`teachers` maps a data set's short name (as in the per-source validation report; "*" for every data set) to a
model directory. A text of a data set with a teacher trains toward

    (1 - weight) * onehot(gold label) + weight * p_teacher(text)

and a text without one toward its gold label, so `weight` 0 is plain cross-entropy. With a blend as target
the cross-entropy is (1 - weight) x CE(gold) + weight x KL(p_teacher || p_student) plus a constant: Hinton et
al.'s (2015) distillation loss at temperature 1.

The teacher reads each text with its own tokenizer and cut, once, before training; its probabilities ride in
the batch as a fourth tensor. Silent like the rest of the library.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gru_sentiment import batching, checkpoint, tokenizer
from gru_sentiment.distributed import weights_digest
from gru_sentiment.errors import ModelError, UsageError

EVERY = "*"


def parse_teachers(specs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`--teacher` values, `MODEL` (every data set) or `SOURCE=MODEL`, as (source, model) pairs."""
    pairs = []
    for spec in specs:
        source, eq, model = spec.partition("=")
        if not eq:
            source, model = EVERY, spec
        if not source or not model:
            raise UsageError(f"--teacher takes MODEL or SOURCE=MODEL, not {spec!r}")
        pairs.append((source, model))
    sources = [s for s, _ in pairs]
    if len(set(sources)) != len(sources) or (EVERY in sources and len(sources) > 1):
        raise UsageError("--teacher: give each data set one teacher (a MODEL for all of them stands alone)")
    return tuple(pairs)


def assign(teachers: Sequence[tuple[str, str]], group_names: Sequence[str]) -> dict[str, list[int]]:
    """Which data sets (indices into `group_names`) each teacher model reads."""
    names = list(group_names) or [EVERY]
    plan: dict[str, list[int]] = {}
    for source, model in teachers:
        if source == EVERY:
            plan.setdefault(model, []).extend(range(len(names)))
        elif not group_names:
            raise UsageError(f"--teacher {source}={model}: with one data set, give --teacher {model}")
        elif source in names:
            plan.setdefault(model, []).append(names.index(source))
        else:
            known = ", ".join(names)
            raise UsageError(f"--teacher {source}={model}: no data set is called {source!r} (they are: {known})")
    return plan


def blended_targets(
    texts: Sequence[str],
    labels: Sequence[int],
    groups: Sequence[int] | None,
    group_names: Sequence[str],
    label_names: Sequence[str],
    teachers: Sequence[tuple[str, str]],
    weight: float,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, dict[str, dict]]:
    """(N, K) training targets, and for each teacher the texts it read, the SHA-256 of its weights and how it was
    made (its command and best validation). Every teacher must know the same labels in the same order as the
    student."""
    if not 0.0 <= weight <= 1.0:
        raise UsageError(f"--teacher-weight must be between 0 and 1, not {weight}")
    k = len(label_names)
    targets = nn.functional.one_hot(torch.tensor(list(labels), dtype=torch.long), k).float()
    groups = list(groups) if groups is not None else [0] * len(texts)
    read: dict[str, dict] = {}
    for model_dir, members in assign(teachers, group_names).items():
        bundle = checkpoint.load(model_dir, device)
        if list(bundle.labels) != list(label_names):
            raise ModelError(
                f"teacher {model_dir} has labels {', '.join(bundle.labels)}, the student {', '.join(label_names)}"
            )
        taught = set(members)
        rows = [i for i, g in enumerate(groups) if g in taught]
        seqs = tokenizer.encode_ids(bundle.tokenizer, [texts[i] for i in rows], bundle.cut)
        bundle.model.eval()
        probs = batching.logits_for(bundle.model, seqs, batch_size, device).softmax(-1)
        if rows:
            index = torch.tensor(rows, dtype=torch.long)
            targets[index] = (1.0 - weight) * targets[index] + weight * probs
        made = {k: v for k in ("command", "best") if (v := getattr(bundle.training, k))}
        read[model_dir] = {"texts": len(rows), "weights_sha256": weights_digest(bundle.model.state_dict()), **made}
    return targets, read
