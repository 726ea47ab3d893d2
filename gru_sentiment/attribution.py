"""Word attributions: integrated gradients over the embeddings (Sundararajan et al. 2017).

For a text with embeddings x (T, E), the baseline x' (the padding embedding at every position, which is all
zeros), and F the log-odds of a label (its logit minus the log-sum-exp of the other logits; for two labels,
logit_label - logit_other), token t gets

    a_t = sum_e (x - x')_te * integral_0^1 dF(x' + alpha (x - x')) / dx_te  d alpha

Completeness: sum_t a_t = F(x) - F(x'). The integral is taken with the trapezoid rule on an adaptive grid of
alphas: `min_steps` even intervals first; then, since every point also gives F there, each interval's own
completeness error |F(b) - F(a) - trapezoid estimate over [a, b]| says where the grid is too coarse, and the worst
intervals are halved (a batch at a time) until the gap |sum_t a_t - (F(x) - F(x'))| is below `tolerance` times
|F(x) - F(x')| (or below `tolerance` x 0.1 in absolute terms where |F(x) - F(x')| < 0.1), or `max_points`
points have been spent. The check is on the sum: errors of single tokens that cancel each other are not seen.
A recurrent network can switch state over a tiny range of alpha (a logit jumping by several units within 0.005
of alpha is common in small GRUs); an even grid needs thousands of points there, halving the intervals that hold
the error needs a few dozen. The gap is reported with
the attributions, never hidden by rescaling them.

Written by hand rather than with captum's `IntegratedGradients`, for two reasons: captum integrates on a fixed
grid of n points, computed afresh for each n, with no way to refine where the error is; and captum 0.9's
`riemann_trapezoid` weighs its n points 1/n (ends 1/2n), so its weights sum to (n - 1)/n and its attributions
miss completeness by 1/n however smooth the model (a 6% gap built in at 17 points). `tests/test_attribution.py`
checks this code against captum, corrected for those weights, where captum is installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gru_sentiment.model import GRUClassifier

FLOOR = 0.1  # log-odds: changes smaller than this are refined to an absolute, not a relative, tolerance


@dataclass
class Attribution:
    """Integrated-gradient attributions of one text for one label."""

    scores: list[float]  # one per token the model read
    label: int  # index of the label attributed (the predicted one unless asked otherwise)
    value: float  # F(x): log-odds of the label for the text
    baseline_value: float  # F(x'): the same for the all-padding baseline
    gap: float  # |sum(scores) - (value - baseline_value)| / |value - baseline_value|
    steps: int  # trapezoid intervals used (points on the path - 1)
    converged: bool = True  # False when `max_points` ran out before the tolerance was met


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
    max_points: int = 512,
    chunk: int = 32,
) -> Attribution:
    """Attributions of the tokens `ids` (one text, as the model reads it) to `label` (default: the predicted one)."""
    if not ids:
        raise ValueError("no tokens to attribute")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    for gru in (m for m in model.modules() if isinstance(m, torch.nn.RNNBase)):
        gru.train()  # cuDNN computes an RNN's backward pass only in training mode; one-layer GRUs have no dropout
    x_ids = torch.tensor([ids], device=device)
    lengths = torch.tensor([len(ids)], device=device)
    try:
        with torch.no_grad():
            x = model.embedding(x_ids)
            baseline = model.embedding(torch.full_like(x_ids, model.config.pad_id))
            if label is None:
                label = int(model(x_ids, lengths).argmax(-1))
        diff = x - baseline

        def path(alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Per alpha: sum_e dF/dx * (x - x') for every token (n, T), and F (n,)."""
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

        alphas = torch.linspace(0, 1, max(1, min_steps) + 1, dtype=torch.float64)
        grads, values = path(alphas)
        while True:
            widths = alphas[1:] - alphas[:-1]
            pieces = 0.5 * (grads[1:] + grads[:-1]) * widths[:, None]  # (intervals, T)
            errors = (values[1:] - values[:-1] - pieces.sum(1)).abs()
            change = float(values[-1] - values[0])
            miss = abs(float(pieces.sum()) - change)
            gap = miss / max(abs(change), 1e-12)
            # refine towards a gap under `tolerance`, but where text and baseline have almost the same log-odds
            # stop at `tolerance` x 0.1 in absolute terms: a relative 1% of almost nothing is not worth 512 points
            allowed = tolerance * max(abs(change), FLOOR)
            room = max_points - len(alphas)
            if miss < allowed or room <= 0:
                break
            # halve the intervals holding more than their share of the allowed error (there is one while the miss
            # is too large: it is at most the sum of the errors), the worst first
            worst = errors.argsort(descending=True)[: min(chunk, room)]
            worst = worst[errors[worst] > 0.5 * allowed / len(errors)]
            middles = (alphas[worst] + alphas[worst + 1]) / 2
            new_grads, new_values = path(middles)
            order = torch.cat([alphas, middles]).argsort()
            alphas = torch.cat([alphas, middles])[order]
            grads, values = torch.cat([grads, new_grads])[order], torch.cat([values, new_values])[order]
    finally:
        model.train(was_training)
    scores = pieces.sum(0)
    return Attribution(
        scores.tolist(), label, float(values[-1]), float(values[0]), gap, len(alphas) - 1, miss < allowed
    )


def merge(scores: list[float], word_ids: list[int]) -> list[float]:
    """Attributions of words from those of their pieces: the sum (attributions add up, so completeness holds)."""
    merged: list[float] = []
    for score, word in zip(scores, word_ids):
        if word == len(merged):
            merged.append(0.0)
        merged[word] += score
    return merged
