"""The GRU classifier: embedding -> stacked (bi)directional GRU -> pooling over valid positions -> linear.

Each layer and direction is its own one-layer `nn.GRU`, so the reverse direction can read every sequence
reversed *within its own length*: padding never reaches a valid state, in either direction, and the padded
(fast) CPU kernel is used instead of packed sequences. The gate equations are exactly `nn.GRU`'s; see
`gru_sentiment.gates` for the per-token trace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import partial

import torch
from torch import nn

POOLINGS = ("mean_max", "mean", "max", "last")


@dataclass(frozen=True)
class ModelConfig:
    """Every constructor argument of `GRUClassifier`; saved as JSON beside the weights.

    `dropout` applies to the input of every GRU layer (one mask per sequence, shared by its time steps) and to
    the pooled features before the output layer.
    """

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
        for name in ("vocab_size", "num_labels", "embed_dim", "hidden_size", "num_layers", "pad_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, not {value!r}")
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional must be true or false, not {self.bidirectional!r}")
        if not isinstance(self.dropout, (int, float)) or isinstance(self.dropout, bool):
            raise ValueError(f"dropout must be a number, not {self.dropout!r}")
        if not 0 <= self.pad_id < max(self.vocab_size, 1):
            raise ValueError(f"pad_id must be a token id below vocab_size {self.vocab_size}, not {self.pad_id}")
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

    def layer_input_size(self, layer: int) -> int:
        """Width of what a GRU layer reads: the embedding, or every direction of the layer below."""
        return self.embed_dim if layer == 0 else self.hidden_size * len(self.directions)

    @property
    def features(self) -> int:
        """Width of the pooled vector the head reads."""
        return self.hidden_size * len(self.directions) * (2 if self.pooling == "mean_max" else 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model settings: {', '.join(unknown)}")
        return cls(**data)


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in `GRUClassifier(config).state_dict()`, without building it: a check
    of a weights file against its config needs no memory, and no torch machinery beyond plain arithmetic."""
    hidden = config.hidden_size
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (config.vocab_size, config.embed_dim)}
    for layer in range(config.num_layers):
        for direction in range(len(config.directions)):
            prefix = f"layers.{layer}.{direction}."
            shapes[prefix + "weight_ih_l0"] = (3 * hidden, config.layer_input_size(layer))
            shapes[prefix + "weight_hh_l0"] = (3 * hidden, hidden)
            shapes[prefix + "bias_ih_l0"] = (3 * hidden,)
            shapes[prefix + "bias_hh_l0"] = (3 * hidden,)
    shapes["head.weight"] = (config.num_labels, config.features)
    shapes["head.bias"] = (config.num_labels,)
    return shapes


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


def pool(
    states: torch.Tensor | list[torch.Tensor], lengths: torch.Tensor, pooling: str, directions: int
) -> torch.Tensor:
    """Pool GRU states over the valid positions of each sequence into (B, features).

    `states` is (B, T, directions * H), or a list of one (B, T, H) tensor per direction: then nothing of size
    B x T x 2H is built. Features are ordered [mean of each direction..., max of each direction...]; "last"
    takes the forward state at the last token and the backward state at the first.
    """
    parts = list(states.chunk(directions, dim=-1)) if isinstance(states, torch.Tensor) else list(states)
    lengths = lengths.to(parts[0].device)
    mask = valid_mask(lengths, parts[0].shape[1])
    pooled = []
    if pooling in ("mean", "mean_max"):  # a (B, 1, T) x (B, T, H) matmul: fast forward and backward
        weights = (mask / lengths.clamp(min=1).unsqueeze(1)).to(parts[0].dtype).unsqueeze(1)
        pooled += [torch.bmm(weights, part).squeeze(1) for part in parts]
    if pooling in ("max", "mean_max"):
        pooled += [part.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1) for part in parts]
    if pooling == "last":
        last = (lengths - 1).clamp(min=0)
        pooled.append(parts[0][torch.arange(parts[0].shape[0], device=parts[0].device), last])
        if directions == 2:  # the backward direction ends at the first token
            pooled.append(parts[1][:, 0])
    return torch.cat(pooled, dim=-1)


class GRUClassifier(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=config.pad_id)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                nn.GRU(config.layer_input_size(layer), config.hidden_size, batch_first=True) for _ in config.directions
            )
            for layer in range(config.num_layers)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.features, config.num_labels)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor, delta: torch.Tensor | None = None) -> torch.Tensor:
        """States of the last layer, (B, T, directions * hidden), in input token order."""
        outputs = self.encode_directions(ids, lengths, delta)
        if len(outputs) == 2:
            return torch.cat([outputs[0], reverse_within_length(outputs[1], lengths)], dim=-1)
        return outputs[0]

    def encode_directions(
        self, ids: torch.Tensor, lengths: torch.Tensor, delta: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """States of the last layer, one (B, T, hidden) tensor per direction, each in the order it was read: the
        backward one has every sequence reversed within its length (padding in place). Pooling over positions
        (mean, max) needs no reordering, so training skips one gather and the concatenation.

        `delta` (B, T, embed_dim), in input order, is added to the embeddings (adversarial training); its
        gradient is the loss's gradient with respect to the embeddings."""
        reverse = partial(reverse_within_length, lengths=lengths)
        if self.config.bidirectional:  # reversing the ids is cheaper than reversing their embeddings
            embedded = self.embedding(torch.cat([ids, reverse(ids)]))
            if delta is not None:
                embedded = embedded + torch.cat([delta, reverse(delta)])
            streams = list(embedded.chunk(2))
        else:
            streams = [self.embedding(ids) if delta is None else self.embedding(ids) + delta]
        for index, grus in enumerate(self.layers):
            mask = self._dropout_mask(streams[0])
            outputs = [gru(x if mask is None else x * mask)[0] for gru, x in zip(grus, streams)]
            if index + 1 < len(self.layers) and len(outputs) == 2:
                forward, backward = outputs
                streams = [torch.cat([forward, reverse(backward)], -1), torch.cat([reverse(forward), backward], -1)]
            else:
                streams = outputs
        return outputs

    def _dropout_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """Locked (variational) dropout: one mask per sequence, the same at every time step (Gal & Ghahramani
        2016). It is the same for a sequence read forward or reversed, and costs B x F random draws, not B x T x F.
        """
        p = self.config.dropout
        if not self.training or p == 0.0:
            return None
        return x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1.0 - p).div_(1.0 - p)

    def classify(self, states: torch.Tensor | list[torch.Tensor], lengths: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_labels) from last-layer states (as `encode` or, unless pooling is "last",
        `encode_directions` returns them)."""
        pooled = pool(states, lengths, self.config.pooling, len(self.config.directions))
        return self.head(self.dropout(pooled))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, delta: torch.Tensor | None = None) -> torch.Tensor:
        if self.config.pooling == "last":
            return self.classify(self.encode(ids, lengths, delta), lengths)
        return self.classify(self.encode_directions(ids, lengths, delta), lengths)

    def lr_depth(self, name: str) -> int:
        """How far below the output a parameter sits, for discriminative learning rates: 0 for the head, 1 for
        the top GRU layer, ..., num_layers + 1 for the embedding."""
        if name.startswith("head."):
            return 0
        if name.startswith("layers."):
            return self.config.num_layers - int(name.split(".")[1])
        return self.config.num_layers + 1

    def gru(self, layer: int, direction: str) -> nn.GRU:
        """The one-layer `nn.GRU` of a layer and direction ('forward' or 'backward')."""
        return self.layers[layer][self.config.directions.index(direction)]
