"""Predictions for texts, in length-sorted batches, optionally with the per-token gate trace of each text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch

from gru_sentiment import batching, gates, reading, tokenizer
from gru_sentiment.api import PREDICT_BATCH_SIZE
from gru_sentiment.attribution import integrated_gradients
from gru_sentiment.checkpoint import Bundle
from gru_sentiment.errors import UserError


@dataclass
class Prediction:
    text: str
    label: str
    probabilities: dict[str, float]
    truncated: bool = False
    gates: gates.TextGates | None = None
    notes: list[str] = field(default_factory=list)  # what `reading.notes` says: mostly unknown, not English


def predict(
    bundle: Bundle,
    texts: list[str],
    batch_size: int | None = None,
    with_gates: bool = False,
    device: str | torch.device = "cpu",
    with_attributions: bool = False,
) -> list[Prediction]:
    """Label, class probabilities and reading notes (`reading.notes`) of each text, in input order; with
    `with_gates`, the per-token gate trace in each prediction's `gates`; with `with_attributions`, also the
    integrated-gradient attributions of its tokens to the predicted label (and only tokens, offsets and
    attributions when the gates were not asked for). Labels alone go through `pipeline.label_stream`."""
    if not texts:
        return []
    if not (with_gates or with_attributions):
        from gru_sentiment import pipeline

        return list(pipeline.label_stream(bundle, texts, device, batch_size, chunk_size=len(texts), workers=0))
    batch_size = batch_size or PREDICT_BATCH_SIZE
    whole = bundle.tokenizer.encode_batch(texts, add_special_tokens=False)
    encoded = tokenizer.cut_encodings(bundle.tokenizer, whole, bundle.cut)
    notes = reading.notes(bundle.tokenizer, whole)
    del whole
    model = bundle.model
    if with_gates:
        probs = [None] * len(texts)
        traces: list[gates.TextGates | None] = [None] * len(texts)
        for batch, ids, lengths in batching.length_sorted(
            [e.ids for e in encoded], batch_size, device, model.config.pad_id
        ):
            result = gates.trace(model, ids, lengths)
            batch_probs = torch.softmax(result.logits.float(), -1).cpu()
            for row, i in enumerate(batch):
                n = int(lengths[row])
                layers = [
                    gates.LayerTrace(
                        t.layer, t.direction, t.values.map(lambda v, row=row, n=n: v[row, :n].float().cpu())
                    )
                    for t in result.layers
                ]
                traces[i] = gates.TextGates(encoded[i].tokens, encoded[i].offsets, layers)
                probs[i] = batch_probs[row]
        probs = torch.stack(probs)
    else:  # attributions alone
        logits = batching.logits_for(
            model, [e.ids for e in encoded], batch_size, torch.device(device), model.config.pad_id
        )
        probs, traces = torch.softmax(logits, -1), [None] * len(texts)
    out = []
    for text, enc, p, trace, noted in zip(texts, encoded, probs.tolist(), traces, notes):
        best = max(range(len(p)), key=p.__getitem__)
        if with_attributions:
            found = integrated_gradients(model, enc.ids, best)
            trace = trace or gates.TextGates(enc.tokens, enc.offsets, [])
            trace.attribution = found
        out.append(Prediction(text, bundle.labels[best], dict(zip(bundle.labels, p)), enc.truncated, trace, noted))
    return out


def predict_stream(
    bundle: Bundle,
    texts: Iterable[str],
    chunk_size: int | None = None,
    batch_size: int | None = None,
    with_gates: bool = False,
    device: str | torch.device = "cpu",
    with_attributions: bool = False,
    workers: int | None = None,
) -> Iterator[Prediction]:
    """Predictions for a stream of texts, chunk by chunk, in input order: memory stays flat for any input size.
    Labels alone come from `pipeline.label_stream` (its chunk and batch sizes by default, and `workers`); with
    gates, chunks of `chunk_size` (default 2,048) and batches of `batch_size` (default `PREDICT_BATCH_SIZE`);
    with attributions (a few seconds a long text), chunks of 16 texts, so that output keeps coming."""
    if not (with_gates or with_attributions):
        from gru_sentiment import pipeline

        yield from pipeline.label_stream(bundle, texts, device, batch_size, chunk_size, workers)
        return
    chunk_size = chunk_size or 2048
    if with_attributions:
        chunk_size = min(chunk_size, 16)
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == chunk_size:
            yield from predict(bundle, chunk, batch_size, with_gates, device, with_attributions)
            chunk = []
    if chunk:
        yield from predict(bundle, chunk, batch_size, with_gates, device, with_attributions)


def check_text(text: str) -> str:
    """Reject texts the model cannot say anything about."""
    if not text.strip():
        raise UserError("empty text: give at least one word")
    return text
