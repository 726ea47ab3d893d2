"""Language-model pre-training of a classifier's embedding and GRU layers on unlabelled text.

As Dai & Le (2015) pre-trained an LSTM on IMDB's unlabelled reviews, and as ELMo (Peters et al. 2018) did for
two directions: the forward GRU's state after token t predicts token t+1, and the backward GRU, which reads each
text reversed, predicts token t-1 from its state after reading tokens t..end. Both directions share one
adaptive softmax (Grave et al. 2017) over the vocabulary ranked by frequency: a full softmax over the 256 most
frequent tokens (two thirds of IMDB's tokens) and three cluster tokens, and smaller, cheaper ones for the rarer
clusters. On a CPU the softmax is the cost to watch: the log-softmax alone over 1,000 classes took longer than
both GRUs. With cutoffs (256, 2048, 8192) a step on IMDB batches costs about 1.6x a classifier step.
Only the embedding and the GRUs are kept (`checkpoint.Encoder`); the softmax is thrown away, and
`train --init-from` puts a fresh classifier head on top.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from gru_sentiment import batching
from gru_sentiment.loop import Eval, History, LoopConfig, Score, StepInfo, fit
from gru_sentiment.model import GRUClassifier, reverse_within_length, valid_mask
from gru_sentiment.sources import InMemoryBatches


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int = 1
    batch_size: int = 64
    lr: float = LoopConfig.lr
    weight_decay: float = LoopConfig.weight_decay
    warmup: float = 0.02
    clip: float = LoopConfig.clip
    max_steps: int | None = None
    evals: int = 4
    seed: int = LoopConfig.seed
    cutoffs: tuple[int, ...] = (256, 2048, 8192)

    def to_dict(self) -> dict:
        return asdict(self)

    def loop(self) -> LoopConfig:
        """No early stopping: a language model trains for its whole budget, validated `evals` times."""
        return LoopConfig.of(self, patience=None)


def frequency_rank(seqs: Sequence[Sequence[int]], vocab_size: int, chunk: int = 10000) -> torch.Tensor:
    """rank[id]: the token's position when the vocabulary is sorted by frequency in `seqs` (ties by id)."""
    counts = torch.zeros(vocab_size, dtype=torch.long)
    for start in range(0, len(seqs), chunk):
        ids = [torch.as_tensor(s, dtype=torch.long) for s in seqs[start : start + chunk] if len(s)]
        if ids:
            counts += torch.bincount(torch.cat(ids), minlength=vocab_size)
    order = torch.sort(-counts, stable=True).indices
    rank = torch.empty_like(order)
    rank[order] = torch.arange(vocab_size)
    return rank


class LanguageModel(nn.Module):
    """A classifier's encoder with a next-token (and, backward, previous-token) adaptive softmax on top."""

    def __init__(self, encoder: GRUClassifier, rank: torch.Tensor, cutoffs: Sequence[int] = (256, 2048, 8192)):
        super().__init__()
        vocab = encoder.config.vocab_size
        self.encoder = encoder
        self.register_buffer("rank", rank.clone(), persistent=False)
        cutoffs = [c for c in cutoffs if 0 < c < vocab - 1] or [max(1, vocab // 2)]  # tiny vocabularies too
        hidden, div = encoder.config.hidden_size, 4.0
        while div > 1.0 and hidden // div ** len(cutoffs) < 1:  # every tail projection keeps a dimension
            div /= 2
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab, cutoffs, div_value=div)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Summed negative log-likelihood of every predicted token, both directions, and how many there were."""
        outputs = self.encoder.encode_directions(ids, lengths)
        streams = [ids, reverse_within_length(ids, lengths)][: len(outputs)]  # as each direction read them
        follows = valid_mask(lengths, ids.shape[1])[:, 1:]  # positions that have a next token
        total, count = ids.new_zeros((), dtype=torch.float), 0
        for states, tokens in zip(outputs, streams):
            target = self.rank[tokens[:, 1:][follows]]
            if target.numel():
                hidden = self.encoder.dropout(states[:, :-1][follows])
                total = total - self.softmax(hidden, target).output.sum()
                count += target.numel()
        return total, count


@torch.no_grad()
def evaluate_lm(lm: LanguageModel, seqs: Sequence[Sequence[int]], batch_size: int, device: torch.device) -> float:
    """Mean negative log-likelihood per predicted token (nats) of held-out sequences."""
    was_training = lm.training
    lm.eval()
    total, count = 0.0, 0
    for _, ids, lengths in batching.length_sorted(seqs, batch_size, device):
        loss, n = lm(ids, lengths)
        total, count = total + float(loss), count + n
    lm.train(was_training)
    return total / max(count, 1)


def lm_loss(net: nn.Module, batch) -> tuple[torch.Tensor, int]:
    """Mean negative log-likelihood per predicted token of a batch (ids, lengths), and how many there were."""
    total, count = net(*batch)
    return total / count, count


def fit_lm(
    lm: LanguageModel,
    seqs: Sequence[Sequence[int]],
    val: Sequence[Sequence[int]],
    config: PretrainConfig,
    device: torch.device,
    on_step: Callable[[StepInfo], None] | None = None,
    on_eval: Callable[[Eval], None] | None = None,
    on_save: Callable[[History], None] | None = None,
) -> History:
    """Train the language model with the one training loop; validate `config.evals` times, evenly spread, and
    call `on_save` when validation loss improved (the caller writes the encoder then). At the end the encoder
    holds the best weights seen on validation. Validations report `loss` (nats per token) and `perplexity`."""
    seqs = [s for s in seqs if len(s) > 1]  # a one-token text has no next token
    if not seqs:
        raise ValueError("no training texts to pre-train on")

    def validate(model: nn.Module) -> Score:
        loss = evaluate_lm(lm, val, config.batch_size * 2, device)
        return Score(loss, higher_is_better=False, metrics={"loss": loss, "perplexity": math.exp(min(loss, 50.0))})

    def checkpoint(best_weights, snapshot, history: History) -> None:
        if on_save and history.evals[-1].improved:
            on_save(history)

    source = InMemoryBatches(seqs, None, config.batch_size, lm.encoder.config.pad_id)
    return fit(lm, source, lm_loss, validate, config.loop(), device, on_step, on_eval, checkpoint, resumable=False)
