"""The carved validation split holds out whole groups of overlapping texts: no copy or piece of a training text."""

import dataclasses
import random

import pytest

from gru_sentiment import jobs, splits
from gru_sentiment.data import TextData
from gru_sentiment.errors import DataError, UsageError
from tests.corpus import reviews, write_splits

SENTENCES = [
    "a gripping , beautifully acted story about grief and loss",  # no two of the same length
    "the plot is thin and the jokes fall flat",
    "an uneven but often funny look at family life",
    "nothing in this film works , not even the music",
    "a warm and wise comedy that never talks down to its audience",
    "dull , overlong and strangely joyless",
]


def phrases(sentence: str) -> list[str]:
    """The sentence and every run of its words, as SST-2's train split holds each sentence's parse-tree phrases."""
    words = sentence.split()
    return [" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)]


def inside(text: str, other: str) -> bool:
    return f" {text} " in f" {other} "


def sst2_like() -> TextData:
    texts = [p for s in SENTENCES for p in phrases(s)]
    random.Random(0).shuffle(texts)
    return TextData(texts, [i % 2 for i in range(len(texts))], ["neg", "pos"], "phrases")


def test_every_phrase_joins_the_longest_text_that_holds_it():
    data = sst2_like()
    group = splits.overlap_groups(data.texts)
    assert {data.texts[g] for g in group} == set(SENTENCES)  # one group per sentence
    for text, g in zip(data.texts, group):
        longest = max((s for s in SENTENCES if inside(text, s)), key=len)  # "a" is in three of them
        assert data.texts[g] == longest


def test_words_are_matched_whole_and_white_space_does_not_matter():
    texts = ["goodness gracious me", "good", "  goodness gracious me ", "gracious", "goodness   gracious     "]
    group = splits.overlap_groups(texts)
    assert group[2] == group[0] and group[3] == group[0]  # a copy up to spaces; a whole word inside
    assert group[4] == group[0]  # padded longer than its sentence, yet a piece of it
    assert group[1] == 1  # "good" is only part of the word "goodness"


def test_a_carve_of_several_data_sets_keeps_groups_within_each():
    first, second = sst2_like(), sst2_like()
    data = TextData(first.texts + second.texts, first.labels + second.labels, ["neg", "pos"], "both")
    data.groups, data.group_names = [0] * len(first) + [1] * len(second), ["a", "b"]
    train, val = splits.carve_validation(data, 0.3, 2)
    held = {(g, t) for g, t in zip(val.groups, val.texts)}
    for g, t in zip(train.groups, train.texts):  # a held-out sentence's phrases are held out in its data set
        sentence = max((s for s in SENTENCES if inside(t, s)), key=len)
        assert (g, sentence) not in held


def test_texts_of_different_data_sets_are_never_grouped():
    texts = ["great app , works well", "works well", "works well"]
    assert splits.overlap_groups(texts, sources=[0, 1, 0]) == [0, 1, 0]


def test_no_held_out_text_is_a_piece_or_copy_of_a_training_text():
    data = sst2_like()
    shared = {p for p in data.texts if sum(inside(p, s) for s in SENTENCES) > 1}  # ",", "a", "the", "and"...
    for seed in range(5):
        train, val = splits.carve_validation(data, 0.3, seed)
        assert len(train) + len(val) == len(data) and len(val) >= round(0.3 * len(data))
        assert sorted(train.texts + val.texts) == sorted(data.texts)
        for text in set(val.texts) - shared:  # a phrase of several sentences follows only the longest
            assert not any(inside(text, t) for t in train.texts), text
        # a random carve of the same texts leaks: most held-out phrases sit inside a training sentence
        rtrain, rval = splits.carve_validation(data, 0.3, seed, grouped=False)
        leaked = sum(any(inside(v, t) for t in rtrain.texts) for v in rval.texts)
        assert leaked > len(rval) // 2


def test_the_random_carve_is_the_one_models_trained_before_groups_were_given():
    """`train --resume` of an older run must carve the very same split (and training order) again."""
    texts, labels = reviews(40, seed=3)
    data = TextData(texts, labels, ["neg", "pos"], "reviews")
    order = list(range(len(data)))
    random.Random(7).shuffle(order)  # the carve as it was: shuffle, the first 10% held out, the rest in order
    train, val = splits.carve_validation(data, 0.1, 7, grouped=False)
    assert val.texts == [texts[i] for i in order[:4]]
    assert train.texts == [texts[i] for i in order[4:]]


def test_saved_specs_without_grouping_resume_the_random_carve(tmp_path):
    texts, labels = reviews(60, seed=5)
    texts[:10] = texts[10:20]  # ten copies: a grouped carve keeps each pair together, a random one need not
    folder = write_splits(tmp_path / "data", "csv", texts, labels)
    saved = {"datasets": [str(folder)], "label_names": ["neg", "pos"], "val_fraction": 0.2}  # before val_groups
    assert jobs.DataSpec.from_dict({**saved, "val_groups": True}).val_groups is True
    old = jobs.DataSpec.from_dict(saved)
    assert old.val_groups is False
    order = list(range(60))
    random.Random(1).shuffle(order)
    train, val = jobs.load_training_data(old, seed=1)
    assert val.texts == [texts[i] for i in order[:12]] and train.texts == [texts[i] for i in order[12:]]
    assert set(train.texts) & set(val.texts)  # copies on both sides
    train, val = jobs.load_training_data(jobs.DataSpec((str(folder),), val_fraction=0.2), seed=1)
    assert not set(train.texts) & set(val.texts)


def test_bad_fractions_and_tiny_data_get_clear_errors():
    data = TextData(["same text", "same text ", "same text"], [0, 1, 0], ["neg", "pos"], "tiny")
    with pytest.raises(UsageError, match="between 0 and 1"):
        splits.carve_validation(data, 1.5, 0)
    with pytest.raises(DataError, match="too few"):  # one group: nothing left to train on
        splits.carve_validation(data, 0.3, 0)


def test_val_seed_keeps_the_carve_while_the_run_seed_changes(tmp_path):
    from gru_sentiment.checkpoint import RunRecord
    from gru_sentiment.merge import same_carve

    folder = write_splits(tmp_path / "data", "csv", *reviews(80, seed=2))
    spec = jobs.DataSpec((str(folder),), label_names=("neg", "pos"))
    _, val0 = jobs.load_training_data(spec, seed=0)
    _, val5 = jobs.load_training_data(spec, seed=5)
    _, kept = jobs.load_training_data(jobs.DataSpec((str(folder),), label_names=("neg", "pos"), val_seed=0), seed=5)
    assert kept.texts == val0.texts != val5.texts

    def record(seed, val_seed=None):
        data = dataclasses.asdict(dataclasses.replace(spec, val_seed=val_seed))
        return RunRecord(data=data, config={"seed": seed})

    assert same_carve(record(0), record(5, val_seed=0)) and same_carve(record(3, 7), record(7))
    assert not same_carve(record(0), record(5))


def test_a_smaller_share_of_the_same_seed_holds_out_part_of_the_same_texts(tmp_path):
    folder = write_splits(tmp_path / "data", "csv", *reviews(120, seed=4))
    held = [
        set(jobs.load_training_data(jobs.DataSpec((str(folder),), val_fraction=f), seed=3)[1].texts)
        for f in (0.05, 0.2)
    ]
    assert held[0] and held[0] < held[1]  # so --init-from allows it: no training text of the first is held out


def test_sentence_weight_lifts_whole_sentences_of_the_weighted_set_only():
    phrases_set = sst2_like()
    reviews_set = ["great app , works well", "works well", "slow and buggy"]
    texts = phrases_set.texts + reviews_set
    sources = [0] * len(phrases_set) + [1] * len(reviews_set)
    repeats = splits.whole_text_repeats(texts, sources, {0: 4})
    assert {t for t, r in zip(texts, repeats) if r == 4} == set(SENTENCES)  # the sentences, none of their phrases
    assert sum(r == 4 for r in repeats) == len(SENTENCES) and set(repeats) == {1, 4}
    assert repeats[len(phrases_set) :] == [1, 1, 1]  # the other data set is drawn as before
    both = splits.whole_text_repeats(texts, sources, {0: 2, 1: 3})
    assert both[len(phrases_set) :] == [3, 1, 3]  # "works well" sits inside a longer review


def test_sentence_weight_values_are_checked_and_named_by_data_set():
    assert splits.sentence_weights(("sst2=4",), ["imdb", "sst2"]) == {1: 4}
    assert splits.sentence_weights(("3",), ["imdb", "sst2"]) == {0: 3, 1: 3}
    for bad in ("sst2=0", "sst2=1.5", "films=2", "sst2="):
        with pytest.raises(UsageError):
            splits.sentence_weights((bad,), ["imdb", "sst2"])
