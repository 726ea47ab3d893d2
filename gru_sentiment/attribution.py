"""Word attributions: integrated gradients over the embeddings (Sundararajan et al. 2017).

For a text with embeddings x (T, E), the baseline x' (the padding embedding at every position, which is all
zeros), and F the log-odds of a label (its logit minus the log-sum-exp of the other logits; for two labels,
logit_label - logit_other), token t gets

    a_t = sum_e (x - x')_te * integral_0^1 dF(x' + alpha (x - x')) / dx_te  d alpha

Completeness: sum_t a_t = F(x) - F(x'). The integral is taken with the trapezoid rule on n + 1 evenly spaced
points, and n is doubled, reusing every gradient already computed, until the completeness gap
|sum_t a_t - (F(x) - F(x'))| is below `tolerance` times |F(x) - F(x')|, or n reaches `max_steps`. The gap is
reported with the attributions, never hidden by rescaling them.

Written by hand rather than with captum's `IntegratedGradients` for that reuse (captum recomputes every point for
each n it is asked for) and to keep run-time dependencies small; `tests/test_attribution.py` checks it against
captum's trapezoid rule where captum is installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gru_sentiment.model import GRUClassifier


@dataclass
class Attribution:
    """Integrated-gradient attributions of one text for one label."""

    scores: list[float]  # one per token the model read
    label: int  # index of the label attributed (the predicted one unless asked otherwise)
    value: float  # F(x): log-odds of the label for the text
    baseline_value: float  # F(x'): the same for the all-padding baseline
    gap: float  # |sum(scores) - (value - baseline_value)| / |value - baseline_value|
    steps: int  # trapezoid intervals used


def log_odds(logits: torch.Tensor, label: int) -> torch.Tensor:
    """F for each row of (n, C) logits: the label's logit minus the log-sum-exp of the others."""
    others = torch.cat([logits[:, :label], logits[:, label + 1 :]], dim=1)
    return logits[:, label] - torch.logsumexp(others, dim=1)


def integrated_gradients(
    model: GRUClassifier,
    ids: list[int],
    label: int | None = None,
    tolerance: float = 0.01,
    min_steps: int = 16,
    max_steps: int = 1024,
    chunk: int = 32,
) -> Attribution:
    """Attributions of the tokens `ids` (one text, as the model reads it) to `label` (default: the predicted one)."""
    if not ids:
        raise ValueError("no tokens to attribute")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x_ids = torch.tensor([ids], device=device)
    lengths = torch.tensor([len(ids)])
    try:
        with torch.no_grad():
            x = model.embedding(x_ids)
            baseline = model.embedding(torch.full_like(x_ids, model.config.pad_id))
            if label is None:
                label = int(model(x_ids, lengths).argmax(-1))
        diff = x - baseline

        def path(alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Per alpha: sum_e grad * diff for every token (n, T), and F (n,)."""
            grads, values = [], []
            for part in alphas.split(chunk):
                n = len(part)
                with torch.enable_grad():
                    delta = ((part.view(-1, 1, 1).to(x) - 1) * diff).requires_grad_()  # x + delta = path point
                    f = log_odds(model(x_ids.expand(n, -1), lengths.expand(n), delta=delta), label)
                    (grad,) = torch.autograd.grad(f.sum(), delta)
                grads.append((grad * diff).sum(-1).detach())
                values.append(f.detach())
            return torch.cat(grads).double().cpu(), torch.cat(values).double().cpu()

        steps = max(1, min_steps)
        grads, values = path(torch.linspace(0, 1, steps + 1))
        f_base, f_text = float(values[0]), float(values[-1])
        while True:
            weights = torch.full((steps + 1, 1), 1.0 / steps, dtype=torch.float64)
            weights[0] = weights[-1] = 0.5 / steps
            scores = (weights * grads).sum(0)
            change = f_text - f_base
            gap = abs(float(scores.sum()) - change) / max(abs(change), 1e-12)
            if gap < tolerance or steps * 2 > max_steps:
                break
            middles, _ = path((torch.arange(steps, dtype=torch.float64) + 0.5) / steps)
            merged = torch.empty(2 * steps + 1, grads.shape[1], dtype=torch.float64)
            merged[0::2], merged[1::2] = grads, middles
            grads, steps = merged, steps * 2
    finally:
        model.train(was_training)
    return Attribution(scores.tolist(), label, f_text, f_base, gap, steps)


def merge(scores: list[float], word_ids: list[int]) -> list[float]:
    """Attributions of words from those of their pieces: the sum (attributions add up, so completeness holds)."""
    merged: list[float] = []
    for score, word in zip(scores, word_ids):
        if word == len(merged):
            merged.append(0.0)
        merged[word] += score
    return merged
