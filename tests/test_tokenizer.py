import pytest

from gru_sentiment import tokenizer
from tests.corpus import reviews

TEXTS = reviews(200)[0] + ["I didn't quite enjoy the book.<br /><br />Café Über-fantastic!"]


@pytest.fixture(scope="module", params=["wordpiece", "bpe"])
def tok(request):
    return tokenizer.train(TEXTS, request.param, vocab_size=300, min_frequency=1)


def test_special_tokens_have_fixed_ids(tok):
    assert tok.token_to_id(tokenizer.PAD) == 0 and tok.token_to_id(tokenizer.UNK) == 1


def test_offsets_point_into_the_original_text(tok):
    text = "I didn't quite enjoy the BOOK.<br /><br />Café!"
    enc = tokenizer.encode_batch(tok, [text], tokenizer.Cut())[0]
    pieces = [text[a:b] for a, b in enc.offsets]
    assert "<br" not in "".join(pieces) and "br" not in pieces
    assert pieces[:3] == ["I", "didn", "'"]
    assert "BOOK" in "".join(pieces)  # lowercased for the model, original case in the offsets
    for (a, b), token in zip(enc.offsets, enc.tokens):
        assert 0 <= a <= b <= len(text)
        if token != tokenizer.UNK:
            assert text[a:b].lower() == token.removeprefix("##")


def test_round_trip_through_file(tok, tmp_path):
    tok.save(str(tmp_path / "tokenizer.json"))
    again = tokenizer.load(str(tmp_path / "tokenizer.json"))
    text = "a wonderful story , honestly ."
    assert again.encode(text).ids == tok.encode(text).ids
    assert again.decode(again.encode(text).ids) == "a wonderful story, honestly."  # the decoder tidies spaces


def test_truncation_is_reported_and_empty_text_gets_one_token(tok):
    long, empty = tokenizer.encode_batch(tok, ["great " * 50, ""], tokenizer.Cut(10))
    assert len(long.ids) == 10 and long.truncated
    assert empty.ids == [tok.token_to_id(tokenizer.UNK)] and not empty.truncated


def test_encoding_without_tokens_gives_the_same_ids_and_truncation(tok):
    texts = ["great " * 50, "", "I didn't quite enjoy the book."]
    full = tokenizer.encode_batch(tok, texts, tokenizer.Cut(10))
    bare = tokenizer.encode_batch(tok, texts, tokenizer.Cut(10), with_tokens=False)
    assert [(e.ids, e.truncated) for e in bare] == [(e.ids, e.truncated) for e in full]
    assert bare[0].tokens == [] and bare[2].offsets == []


def test_word_ids_join_continuation_pieces():
    assert tokenizer.word_ids(["i", "didn", "'", "t", "fan", "##tas", "##tic", "!"]) == [0, 1, 2, 3, 4, 4, 4, 5]
    assert tokenizer.word_ids(["##x", "y"]) == [0, 1]


def test_unknown_kind_is_a_value_error():
    with pytest.raises(ValueError, match="wordpiece"):
        tokenizer.build("sentencepiece")


def test_words_as_people_write_them_keep_contractions_whole():
    from pathlib import Path

    tok = tokenizer.load(str(Path(__file__).resolve().parents[1] / "models" / "gru-reviews" / "tokenizer.json"))
    text = "I didn't like it, wasn't moved and can't recommend the hotel's 'famous' breakfast."
    encoded = tokenizer.encode_batch(tok, [text], tokenizer.Cut())[0]
    ids = tokenizer.word_ids(encoded.tokens, encoded.offsets)
    words = {}
    for index, word in enumerate(ids):
        start, end = words.get(word, (encoded.offsets[index][0], 0))
        words[word] = (start, encoded.offsets[index][1])
    assert [text[a:b] for a, b in words.values()] == [
        "I", "didn't", "like", "it", ",", "wasn't", "moved", "and", "can't", "recommend", "the", "hotel's",
        "'", "famous", "'", "breakfast", ".",
    ]  # fmt: skip


def test_split_negations_reads_raw_and_treebank_negations_alike(tok):
    split = tokenizer.with_split_negations(tok)
    raw = "It doesn't work, I CAN'T log in and won’t pay."
    treebank = "it does n't work , i ca n't log in and wo n't pay ."
    encoded = tokenizer.encode_batch(split, [raw, treebank], tokenizer.Cut())
    assert encoded[0].ids == encoded[1].ids
    assert tokenizer.encode_batch(tok, [raw, treebank], tokenizer.Cut())[0].ids != encoded[1].ids  # as before
    assert "".join(raw[a:b] for a, b in encoded[0].offsets) == raw.replace(" ", "")  # into the original text
    assert split.get_vocab() == tok.get_vocab()
    assert tokenizer.splits_negations(split) and not tokenizer.splits_negations(tok)


def test_split_negations_survive_the_file_and_keep_words_whole(tok, tmp_path):
    split = tokenizer.with_split_negations(tok)
    split.save(str(tmp_path / "tokenizer.json"))
    again = tokenizer.load(str(tmp_path / "tokenizer.json"))
    assert tokenizer.splits_negations(again)
    text = "I didn't like it but it isn't bad; does n't matter."
    encoded = tokenizer.encode_batch(again, [text], tokenizer.Cut())[0]
    ids = tokenizer.word_ids(encoded.tokens, encoded.offsets)
    spans = {}
    for index, word in enumerate(ids):
        spans.setdefault(word, [encoded.offsets[index][0], 0])[1] = encoded.offsets[index][1]
    assert [text[a:b] for a, b in spans.values()] == [
        "I", "didn't", "like", "it", "but", "it", "isn't", "bad", ";", "does", "n't", "matter", ".",
    ]  # fmt: skip


def test_a_tokenizer_learned_with_split_negations_has_no_doesn_piece():
    learned = tokenizer.train(TEXTS * 3 + ["It doesn't, it doesn't, it doesn't."] * 5, split_negations=True)
    assert tokenizer.splits_negations(learned)
    assert "doesn" not in learned.get_vocab() and "does" in learned.get_vocab()


def test_split_negations_keep_what_a_reused_tokenizer_did_before(tok):
    from tokenizers import Tokenizer, normalizers

    cased = Tokenizer.from_str(tok.to_str())
    cased.normalizer = normalizers.NFKC()  # a tokenizer made elsewhere, which does not lowercase
    split = tokenizer.with_split_negations(cased)
    for text in ("Great Book", "It DOESN'T work"):
        assert split.encode(text, add_special_tokens=False).tokens[:2] == cased.encode(text).tokens[:2]
    assert split.encode("doesn’t", add_special_tokens=False).ids == split.encode("does n't").ids


def test_apostrophe_less_negations_read_like_the_apostrophe_forms(tok):
    typed = "I didnt like it, it DOESNT work, cant wait, wont pay, isnt, wasnt, dont, couldnt"
    proper = "I didn't like it, it DOESN'T work, can't wait, won't pay, isn't, wasn't, don't, couldn't"
    for reader in (tok, tokenizer.with_split_negations(tok)):
        a, b = tokenizer.encode_batch(reader, [typed, proper], tokenizer.Cut(), with_tokens=True)
        assert a.ids == b.ids
        t = a.tokens.index("t")  # the "t" of "didnt" reads as "'t", its offsets on the typed "t"
        assert typed[slice(*a.offsets[t])] == "t" and typed[slice(*a.offsets[t - 2])].endswith("n")
    assert "'" not in tok.encode("want anthem tent donts cants").tokens  # other words stay as they are


def test_split_negations_add_each_missing_step_once(tok):
    from tokenizers import Tokenizer, normalizers

    old = Tokenizer.from_str(tok.to_str())
    old.normalizer = normalizers.Lowercase()  # a tokenizer saved before apostrophe-less negations were read
    assert old.encode("didnt").tokens != old.encode("didn't").tokens
    split = tokenizer.with_split_negations(old)
    assert split.encode("didnt").ids == split.encode("did n't").ids
    assert tokenizer.with_split_negations(split).to_str() == split.to_str()
