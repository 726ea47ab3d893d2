"""The GRU classifier: embedding -> stacked (bi)directional GRU -> pooling over valid positions -> linear.

Each layer and direction is its own one-layer `nn.GRU`, so the reverse direction can read every sequence
reversed *within its own length*: padding never reaches a valid state, in either direction, and the padded
(fast) CPU kernel is used instead of packed sequences. The gate equations are exactly `nn.GRU`'s; see
`gru_sentiment.gates` for the per-token trace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

POOLINGS = ("mean_max", "mean", "max", "last")


@dataclass(frozen=True)
class ModelConfig:
    """Every constructor argument of `GRUClassifier`; saved as JSON beside the weights."""

    vocab_size: int
    num_labels: int
    embed_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    pooling: str = "mean_max"
    pad_id: int = 0

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {self.pooling!r}")
        for name in ("vocab_size", "num_labels", "embed_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")

    @property
    def directions(self) -> tuple[str, ...]:
        return ("forward", "backward") if self.bidirectional else ("forward",)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model settings: {', '.join(unknown)}")
        return cls(**data)


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a right-padded batch (B, T, ...) within its own length; padding stays put.

    The permutation is its own inverse, so applying it twice gives `x` back.
    """
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    lengths = lengths.to(x.device).unsqueeze(1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    if x.dim() == 3:
        index = index.unsqueeze(-1).expand(-1, -1, x.shape[2])
    return torch.gather(x, 1, index)


def valid_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, T) boolean mask, True at positions t < length."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def pool(states: torch.Tensor, lengths: torch.Tensor, pooling: str, directions: int) -> torch.Tensor:
    """Pool GRU states (B, T, D*H) over the valid positions of each sequence into (B, features)."""
    mask = valid_mask(lengths.to(states.device), states.shape[1]).unsqueeze(-1)
    parts = []
    if pooling in ("mean", "mean_max"):
        parts.append((states * mask).sum(1) / lengths.to(states.device).clamp(min=1).unsqueeze(1).to(states.dtype))
    if pooling in ("max", "mean_max"):
        parts.append(states.masked_fill(~mask, float("-inf")).amax(1))
    if pooling == "last":
        hidden = states.shape[2] // directions
        last = (lengths.to(states.device) - 1).clamp(min=0)
        forward_last = states[torch.arange(states.shape[0], device=states.device), last, :hidden]
        parts.append(forward_last)
        if directions == 2:  # the backward direction ends at the first token
            parts.append(states[:, 0, hidden:])
    return torch.cat(parts, dim=-1)


class GRUClassifier(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=config.pad_id)
        n_dir = len(config.directions)
        self.layers = nn.ModuleList()
        for layer in range(config.num_layers):
            input_size = config.embed_dim if layer == 0 else config.hidden_size * n_dir
            self.layers.append(
                nn.ModuleList(nn.GRU(input_size, config.hidden_size, batch_first=True) for _ in range(n_dir))
            )
        self.dropout = nn.Dropout(config.dropout)
        features = config.hidden_size * n_dir * (2 if config.pooling == "mean_max" else 1)
        self.head = nn.Linear(features, config.num_labels)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """States of the last layer, (B, T, directions * hidden), in input token order."""
        x = self.dropout(self.embedding(ids))
        for index, directions in enumerate(self.layers):
            if index > 0:
                x = self.dropout(x)
            outputs = [directions[0](x)[0]]
            if len(directions) == 2:
                reversed_out = directions[1](reverse_within_length(x, lengths))[0]
                outputs.append(reverse_within_length(reversed_out, lengths))
            x = torch.cat(outputs, dim=-1) if len(outputs) == 2 else outputs[0]
        return x

    def classify(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_labels) from last-layer states."""
        pooled = pool(states, lengths, self.config.pooling, len(self.config.directions))
        return self.head(self.dropout(pooled))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encode(ids, lengths), lengths)

    def gru(self, layer: int, direction: str) -> nn.GRU:
        """The one-layer `nn.GRU` of a layer and direction ('forward' or 'backward')."""
        return self.layers[layer][self.config.directions.index(direction)]
