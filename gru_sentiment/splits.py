"""Carving a validation split out of a training split without letting the same text sit on both sides.

A random carve assumes the texts are independent. SST-2's train split is not: its 67,349 texts are the
phrases of 6,920 parsed sentences, down to single words, so a random 10% held out is 88% phrases that occur
inside a training text, and validation rewards memorising phrases (a model at 0.905 on such a split read
SST-2's real validation sentences at 0.830). Review sets also carry exact duplicates.

`overlap_groups` puts texts that share text in one group: texts equal up to white space, and a
short text (a phrase) together with the longest text of the same data set that contains it as a run of whole
words. `carve_validation` then holds out whole groups, so no held-out text is a copy of a training text, and a
held-out phrase is a piece of a training text only where it occurs in several texts and followed the longest
(on SST-2, 7% of the held-out texts, mostly single words and short common phrases, against 88% for a random
carve). The same groups tell a data set's sentences from their phrases for `--sentence-weight`
(`whole_text_repeats`): SST-2's sentences are a tenth of its texts, and the rest are their pieces.

Worst case, a short text of common words that no leader holds scans every leader holding its rarest
word: fine on review sets (4 s for IMDB, SST-2, apps and hotels together), slow on huge sets of tiny texts.
"""

from __future__ import annotations

import random

from gru_sentiment.data import TextData
from gru_sentiment.errors import DataError, UsageError

PHRASE_CHARS = 400  # only texts this short are searched for inside others: phrases, short reviews


def overlap_groups(texts: list[str], sources: list[int] | None = None) -> list[int]:
    """A group id per text (the index of its group's first, longest text). Texts of different `sources` (data
    sets) are never grouped together."""
    group = list(range(len(texts)))
    by_source: dict[int, list[int]] = {}
    for i in range(len(texts)):
        by_source.setdefault(sources[i] if sources is not None else 0, []).append(i)
    for members in by_source.values():
        _group_one_source(texts, members, group)
    return group


def _group_one_source(texts: list[str], members: list[int], group: list[int]) -> None:
    """Longest first, each text joins the group of an equal text or of the first (longest) group leader that
    contains it as a run of whole words (texts compared with their white space collapsed). Candidates come from
    an index of the leaders' words: those that hold the text's rarest word, longest first."""
    spaced = {i: f" {' '.join(texts[i].split())} " for i in members}  # words, space-separated and -padded
    leaders_with: dict[str, list[int]] = {}
    seen: dict[str, int] = {}
    for i in sorted(members, key=lambda k: (-len(spaced[k]), k)):
        text = spaced[i]
        if text in seen:
            group[i] = seen[text]
            continue
        words = text.split()
        if words and len(text) <= PHRASE_CHARS + 2:
            candidates = min((leaders_with.get(w, ()) for w in words), key=len)
            hit = next((j for j in candidates if text in spaced[j]), None)
            if hit is not None:
                group[i] = seen[text] = hit
                continue
        seen[text] = i
        for word in set(words):
            leaders_with.setdefault(word, []).append(i)


def carve_validation(data: TextData, fraction: float, seed: int, grouped: bool = True) -> tuple[TextData, TextData]:
    """Hold out about `fraction` of `data` for validation (at least one text), whole `overlap_groups` at a time
    in a seeded random order; `grouped=False` shuffles single texts (the carve of models trained before
    groups existed, which `train --resume` must repeat)."""
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"data.val_fraction must be between 0 and 1 (or 0: no validation), not {fraction}")
    n_val = max(1, round(len(data) * fraction))
    if grouped:
        group = overlap_groups(data.texts, data.groups)
        members: dict[int, list[int]] = {}
        for i, g in enumerate(group):
            members.setdefault(g, []).append(i)
        units = list(members.values())
    else:
        units = [[i] for i in range(len(data))]
    random.Random(seed).shuffle(units)
    taken, count = 0, 0
    while taken < len(units) and count < n_val:
        count += len(units[taken])
        taken += 1
    val_idx = [i for unit in units[:taken] for i in unit]
    train_idx = [i for unit in units[taken:] for i in unit]  # shuffled order (single texts: as before groups)
    if not train_idx:
        raise DataError(f"{data.source}: {len(data)} examples are too few to carve a validation split")
    how = ", grouped" if grouped else ""
    held_out = f"{data.source} (held out: {fraction:g}{how}, seed {seed})"
    return data.subset(train_idx, f"{data.source} (rest)"), data.subset(val_idx, held_out)


def stratified_sample(data: TextData, n: int, seed: int) -> TextData:
    """`n` texts of `data` drawn at random with `seed` (the same seed, the same texts), each label of each data set
    keeping its share: one text each first (while `n` allows), the rest in proportion, by largest remainder. The
    texts keep their order in `data`. A data set sorted by label (IMDB) gives every label, not the first one."""
    if n >= len(data):
        return data
    strata: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(zip(data.groups or [0] * len(data), data.labels)):
        strata.setdefault(key, []).append(i)
    keys = sorted(strata)
    counts = dict.fromkeys(keys, 1 if n >= len(keys) else 0)
    spare = {k: len(strata[k]) - counts[k] for k in keys}
    share = {k: (n - sum(counts.values())) * spare[k] / sum(spare.values()) for k in keys}
    for k in keys:
        counts[k] += int(share[k])
    for k in sorted(keys, key=lambda k: int(share[k]) - share[k])[: n - sum(counts.values())]:
        counts[k] += 1
    rng = random.Random(seed)
    chosen = sorted(i for k in keys for i in rng.sample(strata[k], counts[k]))
    return data.subset(chosen, f"{data.source} (sample of {n:,}, seed {seed})")


def whole_text_repeats(texts: list[str], sources: list[int] | None, weights: dict[int, int]) -> list[int]:
    """How many times over each text enters its data set's draws (`--sentence-weight`): `weights[source]` for a
    text of a weighted source that leads its `overlap_groups` group (no longer text of its data set holds it: on
    SST-2, a sentence rather than one of its phrases), 1 for every other text."""
    sources = sources if sources is not None else [0] * len(texts)
    weighted = [i for i, s in enumerate(sources) if s in weights]
    group = overlap_groups([texts[i] for i in weighted], [sources[i] for i in weighted])
    repeats = [1] * len(texts)
    for k, i in enumerate(weighted):
        if group[k] == k:
            repeats[i] = weights[sources[i]]
    return repeats


def sentence_weights(specs: tuple[str, ...], names: list[str]) -> dict[int, int]:
    """`--sentence-weight` values, `SOURCE=W` (or `W` for every data set), as {data set index: W}."""
    weights: dict[int, int] = {}
    for spec in specs:
        source, eq, value = spec.rpartition("=")
        try:
            weight = int(value)
        except ValueError:
            raise UsageError(f"data.sentence_weight takes SOURCE=W with W a whole number, not {spec!r}") from None
        if weight < 1:
            raise UsageError(f"data.sentence_weight {spec}: W must be at least 1")
        if not eq:
            weights.update(dict.fromkeys(range(len(names)), weight))
        elif source in names:
            weights[names.index(source)] = weight
        else:
            known = ", ".join(names)
            raise UsageError(f"data.sentence_weight {spec}: no data set is called {source!r} (they are: {known})")
    return weights
