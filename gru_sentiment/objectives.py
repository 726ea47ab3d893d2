"""Classifier losses for the training loop: cross-entropy, plus adversarial and virtual adversarial training and
entropy minimisation.

Adversarial training (AT) and virtual adversarial training (VAT) as Miyato, Dai & Goodfellow (ICLR 2017) apply
them to text: the perturbation is added to the word embeddings, never to the discrete tokens.
- AT: r = eps * g / ||g|| with g the gradient of the cross-entropy with respect to a text's embeddings (one
  norm over the whole text); the loss adds `at` x cross-entropy of the perturbed text.
- VAT, on unlabelled texts: one power iteration from a random direction d (scaled to `xi`) finds the
  direction that most changes the predicted distribution p; the loss adds `vat` x KL(p || p(x + r)), with p
  held fixed.
- Entropy minimisation, on the same unlabelled texts: the loss adds `entmin` x the mean entropy of the
  predicted distribution, pushing the decision boundary away from unlabelled text (Grandvalet & Bengio 2005;
  Sachan, Zaheer & Salakhutdinov, AAAI 2019, add it to AT and VAT for text).
Miyato et al. normalise the embeddings (unit variance per dimension) so that eps = 5 and xi = 0.1 mean the
same in every model; here `eps` and `xi` are in units of the embedding's standard deviation, which keeps the
model (and its gate trace) unchanged.
The clean and perturbed passes of one text draw the same dropout masks, so the penalties measure the
perturbation, not dropout noise. Each returns (loss, tokens read). A batch that carries a teacher's logits
(`Distillation`) trains toward them beside its gold labels, in the clean and the adversarial pass alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gru_sentiment.model import valid_mask
from gru_sentiment.sources import UnlabelledPool


@dataclass(frozen=True)
class Adversarial:
    at: float = 0.0  # weight of the adversarial cross-entropy (0: off)
    vat: float = 0.0  # weight of the virtual adversarial KL on unlabelled text (0: off)
    eps: float = 5.0  # size of the perturbation of a whole text, in embedding standard deviations
    xi: float = 0.1  # size of VAT's finite-difference step, same units
    entmin: float = 0.0  # weight of the entropy of the prediction on unlabelled text (0: off)

    @property
    def active(self) -> bool:
        return self.at > 0 or self.needs_unlabelled

    @property
    def needs_unlabelled(self) -> bool:
        return self.vat > 0 or self.entmin > 0


@dataclass(frozen=True)
class Distillation:
    """Hinton, Vinyals & Dean (2015): learn a teacher's distribution softened at `temperature` T, its loss scaled
    by T² so that its gradients keep their size whatever T. A text with both a gold label and teacher logits
    trains on (1 - `weight`) x cross-entropy + `weight` x T² x KL(teacher || student); a text with only one
    of them on that one alone (weight 1)."""

    temperature: float = 2.0
    weight: float = 0.5

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Mean over the batch; `labels` -1 marks a text without a gold label, a NaN row of `teacher` (B, K) one
        without teacher logits."""
        has_gold, has_teacher = labels >= 0, ~teacher.isnan().any(-1)
        gold = nn.functional.cross_entropy(logits, labels.clamp(min=0), reduction="none")
        t = self.temperature
        log_p = nn.functional.log_softmax(teacher.nan_to_num() / t, -1)
        kl = (log_p.exp() * (log_p - nn.functional.log_softmax(logits / t, -1))).sum(-1) * t * t
        both = has_gold & has_teacher
        gold_share = torch.where(both, 1.0 - self.weight, has_gold.float())
        teacher_share = torch.where(both, self.weight, has_teacher.float())
        return (gold_share * gold + teacher_share * kl).mean()


def supervised(logits: torch.Tensor, batch, distillation: Distillation | None = None) -> torch.Tensor:
    """Cross-entropy against the gold labels (ids, lengths, labels), or, for a batch that carries a teacher's
    logits (ids, lengths, labels, teacher), the `distillation` loss."""
    if len(batch) > 3:
        return (distillation or Distillation()).loss(logits, batch[2], batch[3])
    return nn.functional.cross_entropy(logits, batch[2])


def cross_entropy(net: nn.Module, batch, distillation: Distillation | None = None) -> tuple[torch.Tensor, int]:
    ids, lengths = batch[0], batch[1]
    return supervised(net(ids, lengths), batch, distillation), int(lengths.sum())


def _rng_state(device: torch.device):
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_rng_state(device: torch.device, state) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


def _unit(g: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """g scaled to unit L2 norm per text, over its valid positions (padding stays zero)."""
    g = g * valid_mask(lengths, g.shape[1]).unsqueeze(-1)
    return g / g.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the predicted distributions over the batch."""
    log_p = nn.functional.log_softmax(logits, -1)
    return -(log_p.exp() * log_p).sum(-1).mean()


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Mean KL(p || q) over the batch, p given (no gradient)."""
    log_p = nn.functional.log_softmax(p_logits, -1)
    return (log_p.exp() * (log_p - nn.functional.log_softmax(q_logits, -1))).sum(-1).mean()


class AdversarialLoss:
    """Cross-entropy + AT, VAT and entropy terms as `settings` asks; `unlabelled` is needed for VAT and entropy."""

    def __init__(
        self,
        settings: Adversarial,
        embedding: nn.Embedding,
        unlabelled: UnlabelledPool | None = None,
        distillation: Distillation | None = None,
    ):
        if settings.needs_unlabelled and unlabelled is None:
            raise ValueError("virtual adversarial training and entropy minimisation need unlabelled texts")
        self.settings, self.embedding, self.unlabelled = settings, embedding, unlabelled
        self.distillation = distillation

    def _scale(self) -> float:
        return float(self.embedding.weight.detach().std())

    def __call__(self, net: nn.Module, batch) -> tuple[torch.Tensor, int]:
        ids, lengths = batch[0], batch[1]
        s, device = self.settings, ids.device
        tokens = int(lengths.sum())
        if s.at <= 0:
            loss = cross_entropy(net, batch, self.distillation)[0]
        else:
            state = _rng_state(device)
            delta = torch.zeros(*ids.shape, self.embedding.embedding_dim, device=device, requires_grad=True)
            loss = supervised(net(ids, lengths, delta), batch, self.distillation)
            (grad,) = torch.autograd.grad(loss, delta, retain_graph=True)
            r_adv = s.eps * self._scale() * _unit(grad, lengths)
            _set_rng_state(device, state)
            loss = loss + s.at * supervised(net(ids, lengths, r_adv.detach()), batch, self.distillation)
        if s.needs_unlabelled:
            u_ids, u_lengths = (t.to(device) for t in self.unlabelled.sample())
            loss = loss + self.unlabelled_loss(net, u_ids, u_lengths)
            tokens += int(u_lengths.sum())
        return loss, tokens

    def unlabelled_loss(self, net: nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`vat` x VAT's KL + `entmin` x entropy, from one clean pass over a batch of unlabelled texts."""
        s, device = self.settings, ids.device
        state = _rng_state(device)
        with torch.set_grad_enabled(s.entmin > 0 and torch.is_grad_enabled()):
            p_logits = net(ids, lengths)
        loss = s.entmin * _entropy(p_logits) if s.entmin > 0 else p_logits.new_zeros(())
        if s.vat > 0:
            loss = loss + s.vat * self.vat_loss(net, ids, lengths, (p_logits.detach(), state))
        return loss

    def vat_loss(self, net: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, clean=None) -> torch.Tensor:
        """KL(p || p(x + r_vadv)). `clean`, if given, is (logits, random state before they were computed) of a
        clean pass already made: the perturbed passes draw that pass's dropout masks, and the random direction
        comes from the state after it, as when this method makes the clean pass itself."""
        s, device, scale = self.settings, ids.device, self._scale()
        if clean is None:
            state = _rng_state(device)
            with torch.no_grad():
                p_logits = net(ids, lengths)
        else:
            p_logits, state = clean
        d = torch.randn(*ids.shape, self.embedding.embedding_dim, device=device)
        d = (s.xi * scale * _unit(d, lengths)).requires_grad_()
        _set_rng_state(device, state)
        (grad,) = torch.autograd.grad(_kl(p_logits, net(ids, lengths, d)), d)
        r_vadv = s.eps * scale * _unit(grad, lengths)
        _set_rng_state(device, state)
        return _kl(p_logits, net(ids, lengths, r_vadv.detach()))
