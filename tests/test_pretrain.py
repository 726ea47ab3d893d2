"""Language-model pre-training (`pretrain`) and starting a classifier from it (`train --init-from`)."""

import json

import pytest
import torch
from typer.testing import CliRunner

from gru_sentiment import checkpoint, tokenizer
from gru_sentiment.batching import pad
from gru_sentiment.cli import app
from gru_sentiment.model import GRUClassifier, ModelConfig
from gru_sentiment.pretrain import LanguageModel, PretrainConfig, fit_lm, frequency_rank
from tests.corpus import reviews, write_splits

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def small_lm(vocab=30, **kw):
    torch.manual_seed(0)
    encoder = GRUClassifier(ModelConfig(vocab_size=vocab, num_labels=1, embed_dim=8, hidden_size=6, **kw))
    return LanguageModel(encoder, torch.arange(vocab), cutoffs=(10, 20))


def test_frequency_rank_puts_frequent_tokens_first():
    rank = frequency_rank([[5, 5, 5, 2], [2, 7], [5]], vocab_size=8)
    assert sorted(rank.tolist()) == list(range(8))
    assert rank[5] == 0 and rank[2] == 1 and rank[7] == 2


@pytest.mark.parametrize("bidirectional", [False, True])
def test_forward_predicts_the_next_token_and_backward_the_previous(bidirectional):
    lm = small_lm(bidirectional=bidirectional).eval()
    ids, lengths = pad([[3, 4, 5, 6, 7], [8, 9, 10]])
    loss, count = lm(ids, lengths)
    states = lm.encoder.encode(ids, lengths)  # input order: [forward | backward]
    expected, n = 0.0, 0
    for row, length in enumerate(lengths.tolist()):
        seq = ids[row, :length]
        log_probs = lm.softmax.log_prob(states[row, :length, :6])
        expected -= log_probs[torch.arange(length - 1), seq[1:]].sum()  # state at t -> token t+1
        n += length - 1
        if bidirectional:
            log_probs = lm.softmax.log_prob(states[row, :length, 6:])
            expected -= log_probs[torch.arange(1, length), seq[:-1]].sum()  # state at t -> token t-1
            n += length - 1
    assert count == n
    assert torch.allclose(loss, expected, atol=1e-4)


def test_padding_does_not_change_the_language_model_loss():
    lm = small_lm(num_layers=2).eval()
    seqs = [[3, 4, 5, 6, 7, 8, 9], [10, 11], [12]]
    together, count = lm(*pad(seqs))
    alone = [lm(*pad([s])) for s in seqs]
    assert count == sum(n for _, n in alone) == 2 * (6 + 1 + 0)
    assert torch.allclose(together, sum(loss for loss, _ in alone), atol=1e-4)


def test_pretraining_learns_a_predictable_language():
    torch.set_num_threads(1)
    seqs = [[2 + (start + i) % 12 for i in range(20)] for start in range(12)] * 8  # counting modulo 12
    seqs += [[3]] * 16  # one-token texts: nothing to predict, and a batch of only those must not break a step
    lm = small_lm(vocab=16, dropout=0.0)
    history = fit_lm(
        lm, seqs, seqs[:12], PretrainConfig(epochs=20, batch_size=16, lr=2e-2, evals=4), torch.device("cpu")
    )
    assert history.evals[-1].loss < history.evals[0].loss
    assert history.best.perplexity < 2.0  # a uniform guess over 16 tokens would be 16


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    texts, labels = reviews(300, seed=5)
    return write_splits(
        tmp_path_factory.mktemp("data") / "corpus", "parquet", texts, [["neg", "pos"][i] for i in labels]
    )


@pytest.fixture(scope="module")
def encoder_dir(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "encoder"
    result = invoke(
        "pretrain",
        "-d",
        f"{corpus}:train",
        "-d",
        f"{corpus}:test",
        "-o",
        out,
        "--vocab-size",
        200,
        "--embed-dim",
        16,
        "--hidden-size",
        12,
        "--max-length",
        32,
        "--epochs",
        2,
        "--val-size",
        40,
        "--threads",
        1,
    )
    assert result.exit_code == 0, result.output
    return out


def test_pretrain_writes_an_encoder_with_its_record(encoder_dir):
    config = json.loads((encoder_dir / "config.json").read_text())
    assert config["format"] == "gru-sentiment-encoder"
    record = config["pretraining"]
    assert record["train_texts"] == 560 and record["validation_texts"] == 40
    assert record["data"][0].endswith("corpus:train") and record["best"]["val_perplexity"] > 1
    encoder = checkpoint.load_encoder(encoder_dir)
    assert encoder.settings["hidden_size"] == 12 and not any(k.startswith("head.") for k in encoder.state)


def test_init_from_starts_the_classifier_from_the_encoder_weights(corpus, encoder_dir, tmp_path):
    out = tmp_path / "clf"
    result = invoke(
        "train", "-d", corpus, "-o", out, "--init-from", encoder_dir, "--max-steps", 1, "--lr", 0, "--threads", 1
    )
    assert result.exit_code == 0, result.output
    encoder, bundle = checkpoint.load_encoder(encoder_dir), checkpoint.load(out)
    state = bundle.model.state_dict()
    for name, value in encoder.state.items():
        assert torch.equal(state[name], value), name  # lr 0: still exactly the pre-trained weights
    assert bundle.tokenizer.to_str() == encoder.tokenizer.to_str()
    assert bundle.model.config.hidden_size == 12
    assert bundle.training.init_from["encoder"] == str(encoder_dir)


def test_init_from_refuses_what_does_not_fit(corpus, encoder_dir, tmp_path, tiny_model):
    cases = [
        (["--init-from", encoder_dir, "--set", "model.hidden_size=64"], "model.hidden_size 64 differs"),
        (["--init-from", encoder_dir, "--set", f"tokenizer.from={encoder_dir}"], "drop tokenizer.from"),
        (["--init-from", tmp_path / "missing"], "not found"),
    ]
    for extra, message in cases:
        result = invoke("train", "-d", corpus, "-o", tmp_path / "out", *extra)
        assert result.exit_code != 0 and message in result.output, result.output
        assert not (tmp_path / "out").exists()


def test_init_from_a_trained_model_takes_its_encoder_and_a_new_head(corpus, tiny_model, tmp_path):
    out = tmp_path / "more"
    result = invoke(
        "train", "-d", corpus, "-o", out, "--init-from", tiny_model, "--max-steps", 1, "--lr", 0, "--threads", 1
    )
    assert result.exit_code == 0, result.output
    before, after = checkpoint.load(tiny_model), checkpoint.load(out)
    old, new = before.model.state_dict(), after.model.state_dict()
    for name, value in old.items():
        if not name.startswith("head."):
            assert torch.equal(new[name], value), name
    assert after.tokenizer.to_str() == before.tokenizer.to_str()
    assert after.training.init_from["encoder"] == str(tiny_model)
    assert after.training.init_from.get("command", "") == before.training.command


NO_GROUPS = ["--set", "data.val_groups=false"]
CARVE = "carve as it did: data.val_seed=0, data.val_fraction=0.1, data.val_groups=false"


def test_init_from_a_model_carved_the_other_way_is_refused(corpus, tmp_path):
    """A model trained before grouped carving (or with --no-val-groups) trained on texts that a grouped carve of
    the same data holds out: starting from it would leak them into validation."""
    first, quick = (
        tmp_path / "random",
        ["--max-steps", 1, "--threads", 1, "--set", "model.embed_dim=8", "--set", "model.hidden_size=6"],
    )
    assert invoke("train", "-d", corpus, "-o", first, *NO_GROUPS, *quick).exit_code == 0
    result = invoke("train", "-d", corpus, "-o", tmp_path / "out", "--init-from", first, *quick[:4])
    assert result.exit_code != 0 and CARVE in result.output
    assert not (tmp_path / "out").exists()
    args = ["--init-from", first, *NO_GROUPS, *quick[:4]]
    assert invoke("train", "-d", corpus, "-o", tmp_path / "out", *args).exit_code == 0
    other_seed = ["--init-from", first, *NO_GROUPS, "--seed", 1, *quick[:4]]  # another carve: it leaks too
    result = invoke("train", "-d", corpus, "-o", tmp_path / "seed1", *other_seed)
    assert result.exit_code == 2 and CARVE in result.output
    kept = invoke(
        "train", "-d", corpus, "-o", tmp_path / "seed1", *other_seed, "--set", "data.val_seed=0"
    )  # same carve
    assert kept.exit_code == 0, kept.output
    wider = invoke("train", "-d", corpus, "-o", tmp_path / "wider", *args, "--val-fraction", 0.2)
    assert wider.exit_code == 2 and "carve as it did" in wider.output  # holds out texts the first trained on
    narrower = invoke("train", "-d", corpus, "-o", tmp_path / "narrower", *args, "--val-fraction", 0.05)
    assert narrower.exit_code == 0, narrower.output  # part of the first one's held-out texts


def test_damaged_encoders_give_one_line_errors(encoder_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(encoder_dir, broken)
    data = (broken / "encoder.safetensors").read_bytes()
    (broken / "encoder.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.ModelError, match="damaged"):
        checkpoint.load_encoder(broken)
    shutil.copytree(encoder_dir, broken, dirs_exist_ok=True)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(checkpoint.ModelError, match="upgrade"):
        checkpoint.load_encoder(broken)


def test_pretrain_reports_bad_sources(corpus, tmp_path):
    result = invoke("pretrain", "-d", f"{corpus}:nope", "-o", tmp_path / "enc")
    assert result.exit_code == 1 and "no split 'nope'" in result.output
    result = invoke("pretrain", "-d", f"{corpus}:train", "-o", tmp_path / "enc", "--val-size", 5000)
    assert result.exit_code == 1 and "--val-size" in result.output
    assert not (tmp_path / "enc").exists()


def test_split_negations_goes_on_training_a_model_with_its_vocabulary_and_weights(corpus, tiny_model, tmp_path):
    out = tmp_path / "split"
    result = invoke(
        "train", "-d", corpus, "-o", out, "--init-from", tiny_model, "--set", "tokenizer.split_negations=true",
        "--max-steps", 1, "--lr", 0, "--threads", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    before, after = checkpoint.load(tiny_model), checkpoint.load(out)
    assert tokenizer.splits_negations(after.tokenizer) and not tokenizer.splits_negations(before.tokenizer)
    assert after.tokenizer.get_vocab() == before.tokenizer.get_vocab()
    assert torch.equal(after.model.state_dict()["embedding.weight"], before.model.state_dict()["embedding.weight"])
    raw, treebank = after.tokenizer.encode_batch(["it doesn't work", "it does n't work"])
    assert raw.ids == treebank.ids


def test_pretrain_with_split_negations_learns_such_a_tokenizer(corpus, tmp_path):
    out = tmp_path / "lm"
    result = invoke(
        "pretrain", "-d", f"{corpus}:train", "-o", out, "--split-negations", "--vocab-size", 200,
        "--embed-dim", 8, "--hidden-size", 6, "--max-steps", 2, "--val-size", 5, "--threads", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert tokenizer.splits_negations(checkpoint.load_encoder(out).tokenizer)
