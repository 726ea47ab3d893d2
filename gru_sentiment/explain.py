"""Views of gate traces: pick layers, merge subword pieces into words, pick units, export, summarise.

Pure functions over `gates.TextGates`; the terminal and HTML views in `render_gates` draw what these return.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import torch

from gru_sentiment import attribution, batching, gates, tokenizer
from gru_sentiment.checkpoint import Bundle
from gru_sentiment.errors import UsageError
from gru_sentiment.model import valid_mask

GATE_NAMES = ("reset", "update", "candidate", "hidden")
LOW, HIGH = 0.1, 0.9


def select(text_gates: gates.TextGates, layer: int | None = None, direction: str | None = None) -> gates.TextGates:
    """Keep only the chosen layer and/or direction."""
    layers = text_gates.layers
    available = sorted({t.layer for t in layers})
    if layer is not None and layer not in available:
        raise UsageError(f"--layer {layer}: the model has layers {', '.join(map(str, available))}")
    directions = sorted({t.direction for t in layers})
    if direction is not None and direction not in directions:
        raise UsageError(f"--direction {direction}: the model has {', '.join(directions)}")
    kept = [
        t for t in layers if (layer is None or t.layer == layer) and (direction is None or t.direction == direction)
    ]
    return gates.TextGates(text_gates.tokens, text_gates.offsets, kept, text_gates.attribution)


def merge_words(text: str, text_gates: gates.TextGates) -> gates.TextGates:
    """Merge subword pieces into words: a word's value is the mean over its pieces, for every array.

    Pieces starting with `##` continue the word before them; the word is shown as its span of the original text.
    """
    ids = tokenizer.word_ids(text_gates.tokens, text_gates.offsets)
    groups: list[list[int]] = []
    for index, word in enumerate(ids):
        if word == len(groups):
            groups.append([])
        groups[word].append(index)
    offsets = [(text_gates.offsets[g[0]][0], text_gates.offsets[g[-1]][1]) for g in groups]
    words = [text[a:b] if b > a else text_gates.tokens[g[0]] for (a, b), g in zip(offsets, groups)]

    def mean(values: torch.Tensor) -> torch.Tensor:
        return torch.stack([values[g].mean(0) for g in groups])

    layers = [gates.LayerTrace(t.layer, t.direction, t.values.map(mean)) for t in text_gates.layers]
    found = text_gates.attribution
    if found is not None:
        found = replace(found, scores=attribution.merge(found.scores, ids))
    return gates.TextGates(words, offsets, layers, found)


def unit_order(values: gates.GateValues, names: tuple[str, ...] = ("update", "reset")) -> list[int]:
    """Units ordered so that units that behave alike over the text sit together (spectral seriation, Atkins et
    al. 1998): each unit is described by its named gates over the tokens; two units are the more similar the closer
    those descriptions, exp(-d^2 / median d^2) over Euclidean distances d; units are sorted by the Fiedler vector
    of that similarity graph (the eigenvector of the second smallest eigenvalue of its Laplacian), the 1-D layout
    that keeps similar units closest. Ties and a constant text keep unit order; the sign is fixed so that the
    same text always gives the same order."""
    series = torch.cat([getattr(values, name).double() for name in names], dim=0).t()  # (H, G*T)
    hidden = series.shape[0]
    distance = torch.cdist(series, series).pow(2)
    scale = distance[distance > 0].median() if torch.any(distance > 0) else None
    if hidden < 3 or scale is None:
        return list(range(hidden))
    similarity = torch.exp(-distance / scale)
    laplacian = torch.diag(similarity.sum(1)) - similarity
    fiedler = torch.linalg.eigh(laplacian).eigenvectors[:, 1]
    if fiedler[fiedler.abs().argmax()] < 0:
        fiedler = -fiedler
    return sorted(range(hidden), key=lambda u: (round(float(fiedler[u]), 9), u))


def top_units(values: gates.GateValues, k: int) -> list[int]:
    """The k hidden units whose reset and update gates vary most across the text (sum of standard deviations)."""
    if values.update.shape[0] < 2:
        spread = values.update.new_zeros(values.update.shape[1])
    else:
        spread = values.update.std(0) + values.reset.std(0)
    k = min(k, spread.numel())
    return sorted(torch.topk(spread, k).indices.tolist())


def check_units(units: Iterable[int], hidden_size: int) -> list[int]:
    units = list(units)
    bad = [u for u in units if not 0 <= u < hidden_size]
    if bad:
        raise UsageError(f"--unit {bad[0]}: units are numbered 0..{hidden_size - 1}")
    return units


def to_json(text_gates: gates.TextGates, full: bool = False, labels: list[str] | None = None) -> dict:
    """The documented `gates` object: tokens, offsets and per layer/direction mean (and, if full, per-unit) values;
    with attributions, `attributions` (one per token), `attribution_label`, `attribution_gap` (relative
    completeness gap) and `attribution_steps`. Attributions without gate layers leave `layers` out."""
    out: dict = {"tokens": list(text_gates.tokens), "offsets": [list(o) for o in text_gates.offsets]}
    found = text_gates.attribution
    if text_gates.layers or found is None:
        out["layers"] = []
    for t in text_gates.layers:
        entry = {
            "layer": t.layer,
            "direction": t.direction,
            "reset_mean": _round(t.values.reset.mean(-1)),
            "update_mean": _round(t.values.update.mean(-1)),
        }
        if full:
            entry.update({name: _round(getattr(t.values, name)) for name in GATE_NAMES})
        out["layers"].append(entry)
    if found is not None:
        out["attributions"] = _round(torch.tensor(found.scores))
        out["attribution_label"] = labels[found.label] if labels else found.label
        out["attribution_gap"] = round(found.gap, 6)
        out["attribution_steps"] = found.steps
    return out


def _round(values: torch.Tensor, digits: int = 6):
    return torch.round(values.double(), decimals=digits).tolist()


TOKEN_FIELDS = ("text_index", "token_index", "token", "start", "end")
CSV_FIELDS = (*TOKEN_FIELDS, "layer", "direction", "reset_mean", "update_mean")


def csv_fields(gates: bool, attributions: bool) -> tuple[str, ...]:
    """Columns of `predict --format csv` with gates and/or attributions."""
    return (CSV_FIELDS if gates else TOKEN_FIELDS) + (("attribution",) if attributions else ())


def csv_rows(text_index: int, text_gates: gates.TextGates) -> Iterator[dict]:
    """One row per token per layer/direction (one per token when there are attributions only)."""
    scores = text_gates.attribution.scores if text_gates.attribution is not None else None

    def token_row(i: int) -> dict:
        start, end = text_gates.offsets[i]
        row = {"text_index": text_index, "token_index": i, "token": text_gates.tokens[i], "start": start, "end": end}
        if scores is not None:
            row["attribution"] = round(scores[i], 6)
        return row

    if not text_gates.layers:
        yield from (token_row(i) for i in range(len(text_gates.tokens)))
    for t in text_gates.layers:
        reset, update = t.values.reset.mean(-1).tolist(), t.values.update.mean(-1).tolist()
        for i in range(len(text_gates.tokens)):
            row = token_row(i)
            row.update(
                layer=t.layer, direction=t.direction, reset_mean=round(reset[i], 6), update_mean=round(update[i], 6)
            )
            yield row


@dataclass
class _Counts:
    low: torch.Tensor
    high: torch.Tensor
    total: torch.Tensor
    steps: int = 0


def saturation(bundle: Bundle, texts: list[str], batch_size: int = 64, device: str | torch.device = "cpu") -> dict:
    """Gate saturation over many texts, as in Karpathy et al. (2015), per layer/direction and gate.

    For every unit: the fraction of (valid) time steps where the gate is left-saturated (< 0.1) or
    right-saturated (> 0.9), and its mean. Summaries average over units.
    """
    model = bundle.model
    encoded = tokenizer.encode_ids(bundle.tokenizer, texts, bundle.cut)
    counts: dict[tuple[int, str, str], _Counts] = {}
    for _, ids, lengths in batching.length_sorted(encoded, batch_size, device, model.config.pad_id):
        result = gates.trace(model, ids, lengths)
        mask = valid_mask(lengths, ids.shape[1])
        for t in result.layers:
            for name in ("reset", "update"):
                values = getattr(t.values, name)[mask]  # (valid steps, H)
                key = (t.layer, t.direction, name)
                if key not in counts:
                    counts[key] = _Counts(*(values.new_zeros(values.shape[1]) for _ in range(3)))
                c = counts[key]
                c.low += (values < LOW).sum(0)
                c.high += (values > HIGH).sum(0)
                c.total += values.sum(0)
                c.steps += values.shape[0]
    rows = []
    for (layer, direction, name), c in counts.items():
        low, high, mean = (c.low / c.steps).cpu(), (c.high / c.steps).cpu(), (c.total / c.steps).cpu()
        rows.append(
            {
                "layer": layer,
                "direction": direction,
                "gate": name,
                "steps": c.steps,
                "mean": float(mean.mean()),
                "left_saturated": float(low.mean()),
                "right_saturated": float(high.mean()),
                "units_mostly_left": int((low > 0.5).sum()),
                "units_mostly_right": int((high > 0.5).sum()),
                "per_unit": {
                    "left_saturated": _round(low, 4),
                    "right_saturated": _round(high, 4),
                    "mean": _round(mean, 4),
                },
            }
        )
    return {"texts": len(texts), "low": LOW, "high": HIGH, "hidden_size": model.config.hidden_size, "gates": rows}


FIND_GATES = ("update", "reset", "hidden")


def find_units(
    bundle: Bundle, texts: list[str], pattern: str, batch_size: int = 64, device: str | torch.device = "cpu"
) -> dict:
    """Units whose gates (and state) behave differently on words matching `pattern`, as LSTMVis finds them.

    A word (pieces joined as `--words` joins them) matches when `re.search(pattern, word, IGNORECASE)` finds
    something; all its tokens count as matching. For every layer, direction, gate (update z, reset r, state h)
    and unit: the mean over matching tokens and over the others, and the effect size, their difference over
    the pooled standard deviation (Cohen's d). Rows are sorted by the size of the effect.
    """
    import re

    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise UsageError(f"--find {pattern!r} is not a regular expression: {exc}") from exc
    model = bundle.model
    encoded = tokenizer.encode_batch(bundle.tokenizer, texts, bundle.cut)
    marks = []
    for text, enc in zip(texts, encoded):
        ids = tokenizer.word_ids(enc.tokens, enc.offsets)
        spans: dict[int, list[int]] = {}
        for index, word in enumerate(ids):
            spans.setdefault(word, []).append(index)
        mark = [False] * len(ids)
        for members in spans.values():
            if regex.search(text[enc.offsets[members[0]][0] : enc.offsets[members[-1]][1]]):
                for index in members:
                    mark[index] = True
        marks.append(mark)
    sums: dict[tuple[int, str, str], torch.Tensor] = {}  # (2 groups, 3 moments, H): count, sum, sum of squares
    for batch, ids, lengths in batching.length_sorted(
        [e.ids for e in encoded], batch_size, device, model.config.pad_id
    ):
        valid = valid_mask(lengths, ids.shape[1])
        match = torch.zeros_like(valid)
        for row, i in enumerate(batch):
            match[row, : len(marks[i])] = torch.tensor(marks[i], dtype=torch.bool)
        groups = (valid & match, valid & ~match)
        for t in gates.trace(model, ids, lengths).layers:
            for name in FIND_GATES:
                values = getattr(t.values, name).double()
                key = (t.layer, t.direction, name)
                acc = sums.setdefault(key, values.new_zeros(2, 3, values.shape[-1]))
                for g, where in enumerate(groups):
                    chosen = values[where]
                    acc[g, 0] += chosen.shape[0]
                    acc[g, 1] += chosen.sum(0)
                    acc[g, 2] += (chosen**2).sum(0)
    rows = []
    for (layer, direction, name), acc in sums.items():
        n, total, squares = acc[:, 0], acc[:, 1], acc[:, 2]
        mean = total / n.clamp(min=1)
        var = (squares - n * mean**2) / (n - 1).clamp(min=1)
        pooled = (((n - 1) * var).sum(0) / (n.sum(0) - 2).clamp(min=1)).clamp(min=1e-12).sqrt()
        effect = (mean[0] - mean[1]) / pooled
        for unit in range(effect.numel()):
            rows.append(
                {
                    "layer": layer,
                    "direction": direction,
                    "unit": unit,
                    "gate": name,
                    "effect": round(float(effect[unit]), 4),
                    "mean_match": round(float(mean[0, unit]), 4),
                    "mean_other": round(float(mean[1, unit]), 4),
                    "n_match": int(n[0, unit]),
                    "n_other": int(n[1, unit]),
                }
            )
    n_match = rows[0]["n_match"] if rows else 0
    if n_match == 0:
        raise UsageError(f"--find {pattern!r} matched no word in {len(texts):,} texts")
    rows.sort(key=lambda r: -abs(r["effect"]))
    return {"pattern": pattern, "texts": len(texts), "n_match": n_match, "n_other": rows[0]["n_other"], "units": rows}
