"""Per-token GRU gates, recomputed exactly from `nn.GRU`'s own weights (chunk order r, z, n):

    r_t  = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)     reset gate
    z_t  = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)     update gate
    h'_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn)) candidate
    h_t  = z_t * h_{t-1} + (1 - z_t) * h'_t                   z near 1 keeps the past

The input projections of all steps are one matmul; each step is one small (B, H) x (H, 3H) matmul.
For the backward direction the values at token t are the ones computed when the reverse pass reads token t;
every array is in input token order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gru_sentiment.attribution import Attribution
from gru_sentiment.model import GRUClassifier, reverse_within_length


@dataclass
class GateValues:
    """Reset r, update z, candidate h' and state h of one GRU layer and direction, each (B, T, H)."""

    reset: torch.Tensor
    update: torch.Tensor
    candidate: torch.Tensor
    hidden: torch.Tensor

    def map(self, fn) -> GateValues:
        return GateValues(fn(self.reset), fn(self.update), fn(self.candidate), fn(self.hidden))


@dataclass
class LayerTrace:
    layer: int
    direction: str
    values: GateValues


@dataclass
class GateTrace:
    """The traces of every layer and direction of a model for a batch, and the logits computed from them."""

    layers: list[LayerTrace]
    logits: torch.Tensor
    lengths: torch.Tensor


@dataclass
class TextGates:
    """The gates of one text: tokens, their character spans, and per layer/direction arrays (T, H)."""

    tokens: list[str]
    offsets: list[tuple[int, int]]
    layers: list[LayerTrace]
    attribution: Attribution | None = None  # integrated gradients per token (`predict --attributions`)


def weights(gru: nn.GRU, layer: int = 0, reverse: bool = False) -> tuple[torch.Tensor, ...]:
    """(weight_ih, weight_hh, bias_ih, bias_hh) of one layer and direction of an `nn.GRU` (zeros if no bias)."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih, w_hh = getattr(gru, "weight_ih" + suffix), getattr(gru, "weight_hh" + suffix)
    if gru.bias:
        return w_ih, w_hh, getattr(gru, "bias_ih" + suffix), getattr(gru, "bias_hh" + suffix)
    zeros = torch.zeros(w_ih.shape[0], dtype=w_ih.dtype, device=w_ih.device)
    return w_ih, w_hh, zeros, zeros


@torch.no_grad()
def recurrence(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    h0: torch.Tensor | None = None,
) -> GateValues:
    """Run the GRU equations over x (B, T, I) from left to right and keep every gate."""
    batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    gi = torch.addmm(b_ih, x.reshape(batch * steps, -1), w_ih.t()).view(batch, steps, 3 * hidden)
    w_hh_t = w_hh.t()
    h = x.new_zeros(batch, hidden) if h0 is None else h0
    out = {name: x.new_empty(batch, steps, hidden) for name in ("r", "z", "n", "h")}
    for t in range(steps):
        gh = torch.addmm(b_hh, h, w_hh_t)
        rz = torch.sigmoid(gi[:, t, : 2 * hidden] + gh[:, : 2 * hidden])
        r, z = rz[:, :hidden], rz[:, hidden:]
        n = torch.tanh(gi[:, t, 2 * hidden :] + r * gh[:, 2 * hidden :])
        h = n + z * (h - n)
        out["r"][:, t], out["z"][:, t], out["n"][:, t], out["h"][:, t] = r, z, n, h
    return GateValues(out["r"], out["z"], out["n"], out["h"])


@torch.no_grad()
def trace_gru(gru: nn.GRU, x: torch.Tensor) -> list[LayerTrace]:
    """Trace a plain (unpadded, batch_first) multi-layer, possibly bidirectional `nn.GRU`, as it computes."""
    if not gru.batch_first:
        raise ValueError("trace_gru expects a batch_first nn.GRU")
    traces, layer_input = [], x
    for layer in range(gru.num_layers):
        fwd = recurrence(layer_input, *weights(gru, layer))
        traces.append(LayerTrace(layer, "forward", fwd))
        outputs = [fwd.hidden]
        if gru.bidirectional:
            bwd = recurrence(layer_input.flip(1), *weights(gru, layer, reverse=True)).map(lambda v: v.flip(1))
            traces.append(LayerTrace(layer, "backward", bwd))
            outputs.append(bwd.hidden)
        layer_input = torch.cat(outputs, dim=-1)
    return traces


@torch.no_grad()
def trace(model: GRUClassifier, ids: torch.Tensor, lengths: torch.Tensor) -> GateTrace:
    """Trace every layer and direction of a classifier on a right-padded batch; also return its logits.

    Values at padded positions (t >= length) are meaningless; everything at valid positions is exact.
    """
    if model.training:
        raise ValueError("trace the model in eval mode (dropout would change the values)")
    x = model.embedding(ids)
    traces = []
    for layer, grus in enumerate(model.layers):
        outputs = []
        for direction, gru in zip(model.config.directions, grus):
            if direction == "forward":
                values = recurrence(x, *weights(gru))
            else:
                values = recurrence(reverse_within_length(x, lengths), *weights(gru))
                values = values.map(lambda v: reverse_within_length(v, lengths))
            traces.append(LayerTrace(layer, direction, values))
            outputs.append(values.hidden)
        x = torch.cat(outputs, dim=-1)
    return GateTrace(traces, model.classify(x, lengths), lengths)
