"""The one training loop, its batch sources, data-set mixing and the adversarial objectives."""

import random

import pytest
import torch

from gru_sentiment import jobs, jobs_train, objectives
from gru_sentiment.data import TextData, load
from gru_sentiment.loop import Eval, History, LoopConfig, Score, Trainer, adamw, fit
from gru_sentiment.model import GRUClassifier, ModelConfig
from gru_sentiment.sources import InMemoryBatches, UnlabelledPool, mix_counts
from gru_sentiment.train import TrainConfig, loss_function, validator


def test_mix_counts_natural_temperature_and_weights():
    assert mix_counts([100, 10], None) == [100, 10]
    assert mix_counts([100, 10], "natural") == [100, 10]
    lifted = mix_counts([900, 100], "0.5")  # shares 3:1 instead of 9:1, same epoch size
    assert lifted == [750, 250]
    assert mix_counts([100, 10, 40], "0.5,2,1") == [50, 20, 40]
    for bad in ("0", "1.5", "x", "1,2"):
        with pytest.raises(ValueError):
            mix_counts([100, 10, 40], bad)


def test_mixed_epochs_draw_each_group_as_asked_and_ranks_split_them():
    groups = [0] * 30 + [1] * 5
    seqs = [[1] * (1 + i % 7) for i in range(35)]
    source = InMemoryBatches(seqs, list(range(35)), 4, groups=groups, counts=[6, 12])
    assert source.steps_per_epoch() == 5
    drawn = [int(v) for _, _, labels in source.batches(1, random.Random(0)) for v in labels]
    assert len(drawn) == 18
    assert sum(v < 30 for v in drawn) == 6 and len(set(v for v in drawn if v < 30)) == 6  # without replacement
    assert sum(v >= 30 for v in drawn) == 12
    assert all(drawn.count(v) in (2, 3) for v in range(30, 35))  # 12 of 5: each twice, 2 more at random
    plan = [labels.tolist() for _, _, labels in source.batches(1, random.Random(0))]
    ranks = [[labels.tolist() for _, _, labels in source.batches(1, random.Random(0), rank, 2)] for rank in (0, 1)]
    assert source.steps_per_epoch(2) == 2 and ranks == [plan[0:4:2], plan[1:4:2]]  # every other batch each
    resumed = [labels.tolist() for _, _, labels in source.batches(1, random.Random(0), 1, 2, skip=1)]
    assert resumed == [plan[3]]


def test_repeated_texts_are_drawn_that_many_times_as_often_within_their_group():
    groups = [0] * 8 + [1] * 4
    repeats = [5, 5] + [1] * 10  # texts 0 and 1 weigh 5 in group 0; group 1 unweighted
    source = InMemoryBatches([[1, 2]] * 12, list(range(12)), 4, groups=groups, counts=[16, 4], repeats=repeats)
    drawn = [int(v) for _, _, labels in source.batches(1, random.Random(0)) for v in labels]
    assert len(drawn) == 20  # the epoch's size is still the mix's counts
    assert drawn.count(0) == drawn.count(1) == 5 and all(drawn.count(v) == 1 for v in range(2, 12))
    halved = InMemoryBatches([[1, 2]] * 12, list(range(12)), 4, groups=groups, counts=[8, 4], repeats=repeats)
    draws = [int(v) for e in range(200) for _, _, labels in halved.batches(e, random.Random(e)) for v in labels]
    heavy, light = sum(draws.count(v) for v in (0, 1)), sum(draws.count(v) for v in range(2, 8))
    assert 4.0 < (heavy / 2) / (light / 6) < 6.5  # about 5 times as often, each
    with pytest.raises(ValueError):
        InMemoryBatches([[1]] * 3, [0, 1, 0], 2, repeats=[1, 2, 1])


def test_history_best_follows_the_score_direction():
    up = History([Eval(1, s, v, True, False) for s, v in enumerate([0.5, 0.9, 0.7])])
    down = History([Eval(1, s, v, False, False) for s, v in enumerate([5.0, 3.0, 4.0])])
    assert up.best.value == 0.9 and down.best.value == 3.0
    assert Score(3.0, False).beats(4.0) and not Score(0.5).beats(0.9)


def _model(dropout=0.0):
    torch.manual_seed(0)
    return GRUClassifier(ModelConfig(vocab_size=30, num_labels=2, embed_dim=6, hidden_size=5, dropout=dropout))


def _batch():
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    return ids, torch.tensor([4, 2]), torch.tensor([1, 0])


def test_delta_is_added_to_the_embeddings_in_input_order():
    model = _model().eval()
    ids, lengths, _ = _batch()
    delta = torch.zeros(2, 4, 6)
    delta[0, 0] = torch.randn(6)  # only the first word of the first text
    with torch.no_grad():
        base = model(ids, lengths)
        assert torch.equal(model(ids, lengths, torch.zeros(2, 4, 6)), base)
        shifted = model(ids, lengths, delta)
        model.embedding.weight[3] += delta[0, 0]  # the same change made to the first word's embedding
        assert torch.allclose(model(ids, lengths)[0], shifted[0], atol=1e-6)


def test_adversarial_perturbation_has_the_stated_size_and_raises_the_loss():
    model = _model().train()
    batch = _batch()
    clean, _ = objectives.cross_entropy(model, batch)
    settings = objectives.Adversarial(at=1.0, eps=2.0)
    loss, tokens = objectives.AdversarialLoss(settings, model.embedding)(model, batch)
    assert tokens == 6 and loss.item() > 2 * clean.item()  # clean + a perturbed term that is worse than clean
    g = torch.randn(2, 4, 6)
    unit = objectives._unit(g, batch[1])
    assert torch.allclose(unit.flatten(1).norm(dim=1), torch.ones(2))
    assert torch.all(unit[1, 2:] == 0)  # padding is never perturbed


def test_vat_draws_the_same_dropout_masks_for_clean_and_perturbed_passes():
    model = _model(dropout=0.5).train()
    pool = UnlabelledPool([[3, 4, 5], [6, 7], [8, 9, 10, 11]], batch_size=2)
    ids, lengths = pool.sample()
    zero = objectives.AdversarialLoss(objectives.Adversarial(vat=1.0, eps=0.0), model.embedding, pool)
    assert zero.vat_loss(model, ids, lengths).item() == pytest.approx(0.0, abs=1e-7)  # no perturbation: p == q
    some = objectives.AdversarialLoss(objectives.Adversarial(vat=1.0, eps=5.0), model.embedding, pool)
    assert some.vat_loss(model, ids, lengths).item() > 0


def test_discriminative_learning_rates_slow_every_layer_below_the_head():
    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(vocab_size=30, num_labels=2, embed_dim=6, hidden_size=5, num_layers=2))
    named = dict(model.named_parameters())
    plain = adamw(model, 1e-2, 0.01)
    assert [(g["lr"], g["weight_decay"]) for g in plain.param_groups] == [(1e-2, 0.01), (1e-2, 0.0)]
    optimiser = adamw(model, 1e-2, 0.01, layer_lr_decay=2.0)
    lr = {id(p): g["lr"] for g in optimiser.param_groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in optimiser.param_groups for p in g["params"]}
    assert len(lr) == len(named)  # every parameter, once
    assert lr[id(named["head.weight"])] == lr[id(named["head.bias"])] == 1e-2
    assert lr[id(named["layers.1.0.weight_hh_l0"])] == lr[id(named["layers.1.1.bias_ih_l0"])] == 5e-3
    assert lr[id(named["layers.0.1.weight_ih_l0"])] == 2.5e-3
    assert lr[id(named["embedding.weight"])] == 1.25e-3
    assert decay[id(named["head.weight"])] == 0.01 and decay[id(named["layers.0.0.bias_hh_l0"])] == 0.0
    assert decay[id(named["embedding.weight"])] == 0.0
    # the schedule scales every group alike: warm-up keeps the ratios
    trainer = Trainer(model, objectives.cross_entropy, LoopConfig(lr=1e-2, warmup=0.5, layer_lr_decay=2.0), 4)
    for expected in (0.5, 1.0):  # the first of two warm-up steps, then the peak
        assert [g["lr"] / g["initial_lr"] for g in trainer.optimizer.param_groups] == pytest.approx(
            [expected] * 7
        )  # 3 depths x 2 + the embedding
        trainer.step(_batch())


def test_entropy_minimisation_adds_the_mean_entropy_of_the_unlabelled_predictions():
    model = _model().eval()  # no dropout: the clean passes are deterministic
    pool = UnlabelledPool([[3, 4, 5], [6, 7], [8, 9, 10, 11]], batch_size=3)  # one batch: every text
    settings = objectives.Adversarial(vat=1.0, eps=0.0, entmin=0.7)  # VAT with no perturbation adds nothing
    loss, tokens = objectives.AdversarialLoss(settings, model.embedding, pool)(model, _batch())
    ids, lengths = pool.sample()
    p = torch.softmax(model(ids, lengths), -1)
    entropy = -(p * p.log()).sum(-1).mean()
    assert tokens == 6 + 9
    assert loss.item() == pytest.approx(objectives.cross_entropy(model, _batch())[0].item() + 0.7 * entropy.item())
    # its gradient makes the unlabelled predictions more confident
    only = objectives.AdversarialLoss(objectives.Adversarial(entmin=1.0), model.embedding, pool)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(20):
        optimiser.zero_grad()
        only.unlabelled_loss(model, ids, lengths).backward()
        optimiser.step()
    p = torch.softmax(model(ids, lengths), -1)
    assert -(p * p.log()).sum(-1).mean().item() < 0.5 * entropy.item()


def test_entropy_and_vat_in_training_mode_share_the_clean_pass_and_its_dropout_masks():
    model = _model(dropout=0.5).train()
    pool = UnlabelledPool([[3, 4, 5], [6, 7], [8, 9, 10, 11]], batch_size=3)
    ids, lengths = pool.sample()
    settings = objectives.Adversarial(vat=1.0, eps=0.0, entmin=0.7)
    loss_fn = objectives.AdversarialLoss(settings, model.embedding, pool)
    state = torch.get_rng_state()
    loss = loss_fn.unlabelled_loss(model, ids, lengths)
    torch.set_rng_state(state)
    p = torch.softmax(model(ids, lengths), -1)  # the clean pass again, with the same masks
    # VAT with no perturbation adds exactly nothing: its passes drew the clean pass's masks
    assert loss.item() == pytest.approx(0.7 * -(p * p.log()).sum(-1).mean().item(), abs=1e-6)
    loss.backward()  # the entropy term trains the model, with VAT on too
    assert model.embedding.weight.grad is not None and model.embedding.weight.grad.abs().sum() > 0


def test_one_loop_trains_a_classifier_with_mixing_and_vat_and_reports_each_source():
    from tests.corpus import reviews

    texts, labels = reviews(120, seed=5)
    val_texts, val_labels = reviews(40, seed=6)
    groups = [i % 3 for i in range(120)]
    val_groups = [i % 3 for i in range(40)]
    vocab = {w: i + 3 for i, w in enumerate(sorted({w for t in texts + val_texts for w in t.split()}))}
    seqs = [[vocab[w] for w in t.split()] for t in texts]
    val_seqs = [[vocab[w] for w in t.split()] for t in val_texts]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(vocab_size=len(vocab) + 3, num_labels=2, embed_dim=8, hidden_size=6, dropout=0.1))
    # eps 1: with 8-dimensional embeddings and 6-word texts, a larger budget rewrites whole words
    config = TrainConfig(epochs=6, batch_size=16, lr=2e-2, patience=10, adv=0.5, vat=0.5, adv_eps=1.0)
    source = InMemoryBatches(seqs, labels, 16, groups=groups, counts=mix_counts([40, 40, 40], "1,0.5,2"))
    validate = validator(
        val_seqs, val_labels, ["neg", "pos"], 32, torch.device("cpu"), groups=val_groups, group_names=["a", "b", "c"]
    )
    loss_fn = loss_function(model, config, UnlabelledPool(seqs, 16))
    history = fit(model, source, loss_fn, validate, config.loop(), torch.device("cpu"))
    best = history.best
    assert set(best.metrics["by_source"]) == {"a", "b", "c"}
    assert best.value == pytest.approx(sum(best.metrics["by_source"].values()) / 3)
    assert best.value >= 0.9  # polarity words are easy: the loop, mixing and VAT together still learn them
    assert history.steps == 6 * 9  # 140 texts an epoch in batches of 16


def test_a_data_set_mixed_in_with_weight_zero_is_reported_but_not_chosen_on(tmp_path):
    from tests.corpus import reviews, write_splits

    films = write_splits(tmp_path / "films", "csv", *reviews(90, seed=3))
    hotels = write_splits(tmp_path / "hotels", "csv", *reviews(60, seed=4))
    spec = jobs.DataSpec((str(films), str(hotels)), label_names=("neg", "pos"), mix="1,0")
    train, val = jobs.load_training_data(spec, 0)
    torch.set_num_threads(1)
    config = TrainConfig(epochs=2, batch_size=16, lr=1e-2, patience=5, evals_per_epoch=2)
    settings = jobs.TokenizerSettings("wordpiece", 120, 24)
    model = dict(embed_dim=8, hidden_size=6, dropout=0.1)
    out = tmp_path / "m"
    bundle, history = jobs.train_model(
        train, val, settings, model, config, str(out), torch.device("cpu"), data_spec=spec
    )
    assert bundle.training.mix["hotels"] == 0 < bundle.training.mix["films"]
    for info in history.evals:
        assert set(info.metrics["by_source"]) == {"films", "hotels"}  # both reported
        assert info.value == info.metrics["by_source"]["films"] and info.metrics["mean_of"] == ["films"]
    assert bundle.training.best["val_mean_of"] == ["films"]


def test_a_sentence_weighted_run_records_what_it_lifted(tmp_path):
    from tests.corpus import reviews, write_splits

    films = write_splits(tmp_path / "films", "csv", *reviews(60, seed=3))
    texts, labels = reviews(40, seed=5)
    sentence, phrase = "a tender , funny film", "funny film"  # a phrase of a sentence, as SST-2 holds them
    phrases = write_splits(tmp_path / "phrases", "csv", [*texts, sentence, phrase], [*labels, 1, 1])
    spec = jobs.DataSpec((str(films), str(phrases)), label_names=("neg", "pos"), sentence_weight=("phrases=3",))
    train, val = jobs.load_training_data(spec, 0)
    config = TrainConfig(epochs=1, batch_size=16, lr=1e-2, evals_per_epoch=1)
    settings = jobs.TokenizerSettings("wordpiece", 120, 24)
    bundle, _ = jobs.train_model(
        train, val, settings, dict(embed_dim=8, hidden_size=6), config, str(tmp_path / "m"), "cpu", data_spec=spec
    )
    record = bundle.training.sentence_weight["phrases"]
    mine = {" ".join(t.split()) for t, g in zip(train.texts, train.groups) if g == 1}
    whole = [t for t in mine if not any(f" {t} " in f" {o} " for o in mine if o != t)]  # by brute force
    assert phrase not in whole and (sentence in whole) == (sentence in mine)
    assert record == {"weight": 3, "whole_texts": len(whole)} and "films" not in bundle.training.sentence_weight
    assert bundle.training.steps == -(-len(train) // 16)  # an epoch still reads as many texts as there are


def test_a_train_only_set_is_trained_on_whole_and_leaves_the_carve_as_it_was(tmp_path):
    from tests.corpus import reviews, write_splits

    films = write_splits(tmp_path / "films", "csv", *reviews(80, seed=3))
    hotels = write_splits(tmp_path / "hotels", "csv", *reviews(60, seed=4))
    diner_texts, diner_labels = reviews(30, seed=6)
    diners = write_splits(tmp_path / "diners", "csv", diner_texts, diner_labels)
    plain = jobs.DataSpec((str(films), str(hotels)), label_names=("neg", "pos"), mix="0.5")
    spec = jobs.DataSpec(**{**vars(plain), "train_only": (f"{diners}:train",)})
    before_train, before_val = jobs.load_training_data(plain, 0)
    train, val = jobs.load_training_data(spec, 0)
    assert (val.texts, val.labels, val.groups) == (before_val.texts, before_val.labels, before_val.groups)
    assert train.texts[: len(before_train)] == before_train.texts and train.groups[: len(before_train)] == (
        before_train.groups
    )
    diner_part = train.subset([i for i, g in enumerate(train.groups) if g == 2])
    assert train.group_names == ["films", "hotels", "diners"]
    assert sorted(diner_part.texts) == sorted(load(str(diners), "train", label_names=["neg", "pos"]).texts)
    config = TrainConfig(epochs=1, batch_size=16, lr=1e-2, evals_per_epoch=1)
    settings = jobs.TokenizerSettings("wordpiece", 120, 24)
    bundle, history = jobs.train_model(
        train, val, settings, dict(embed_dim=8, hidden_size=6), config, str(tmp_path / "m"), "cpu", data_spec=spec
    )
    assert bundle.training.mix["diners"] > 0  # drawn like any set under --mix
    assert set(history.evals[-1].metrics["by_source"]) == {"films", "hotels"}  # validated on the carve only
    assert jobs.DataSpec.from_dict(bundle.training.data) == spec  # what --resume reads back


def test_labels_of_minus_one_are_unlabelled_text(tmp_path):
    import pandas as pd

    folder = tmp_path / "stars"
    folder.mkdir()
    pd.DataFrame({"text": ["good", "bad", "so-so", "great", "fine"], "label": [1, 0, -1, 1, -1]}).to_parquet(
        folder / "train.parquet"
    )
    train, val = jobs.load_training_data(jobs.DataSpec((str(folder),), val_fraction=0.25), seed=0)
    assert sorted(train.texts + val.texts) == ["bad", "good", "great"]
    assert train.label_names == ["0", "1"] and train.unlabelled == ["so-so", "fine"]
    spec = jobs.DataSpec((str(folder),), unlabelled=(f"{folder}:train",))
    assert jobs.unlabelled_texts(spec, train)[len(train) :] == [
        "so-so",
        "fine",
        "good",
        "bad",
        "so-so",
        "great",
        "fine",
    ]


def test_pretraining_runs_the_same_loop_and_keeps_the_lowest_perplexity():
    from gru_sentiment.pretrain import LanguageModel, PretrainConfig, fit_lm, frequency_rank

    torch.manual_seed(0)
    seqs = [[3 + (i * 7 + j) % 20 for j in range(6)] for i in range(40)]
    encoder = GRUClassifier(ModelConfig(vocab_size=24, num_labels=1, embed_dim=8, hidden_size=8, dropout=0.0))
    lm = LanguageModel(encoder, frequency_rank(seqs, 24), (4, 8))
    history = fit_lm(lm, seqs, seqs[:8], PretrainConfig(epochs=3, batch_size=8, lr=2e-2, evals=3), torch.device("cpu"))
    assert [e.higher_is_better for e in history.evals] == [False] * 3
    assert history.best.perplexity == min(e.perplexity for e in history.evals)
    assert LoopConfig().patience == 2 and PretrainConfig().loop().patience is None


def test_adversarial_training_is_refused_under_torchrun(tiny_model):
    from gru_sentiment import checkpoint
    from gru_sentiment.distributed import Dist
    from gru_sentiment.errors import UsageError

    bundle = checkpoint.load(tiny_model)
    data = TextData(["good film", "bad film"], [1, 0], ["neg", "pos"], "x")
    with pytest.raises(UsageError, match="single process"):
        jobs_train._source_and_loss(bundle, data, TrainConfig(adv=1.0), None, Dist(0, 2, 0))


def test_a_config_saved_before_entmin_and_layer_lr_decay_still_loads():
    saved = TrainConfig(adv=1.0).to_dict()
    del saved["entmin"], saved["layer_lr_decay"]  # as a model trained before these options records it
    assert TrainConfig.from_dict(saved) == TrainConfig(adv=1.0)


def test_weight_average_follows_every_update_and_is_swapped_in_only_inside_averaged():
    model = _model()
    config = LoopConfig(lr=0.1, warmup=0.0, clip=0.0, ema=0.75)
    trainer = Trainer(model, loss_function(model, TrainConfig()), config, total_steps=10)
    expected = {name: p.detach().clone() for name, p in model.named_parameters()}
    for _ in range(3):
        trainer.step(_batch())
        for name, p in model.named_parameters():
            expected[name] = 0.75 * expected[name] + 0.25 * p.detach()
    trained = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert all(torch.allclose(trainer.average[n], expected[n], atol=1e-6) for n in expected)
    assert not torch.equal(trainer.average["head.weight"], trained["head.weight"])
    with trainer.averaged():
        assert all(torch.equal(p, trainer.average[n]) for n, p in model.named_parameters())
    assert all(torch.equal(p, trained[n]) for n, p in model.named_parameters())  # the trained weights are back
    plain = Trainer(_model(), loss_function(model, TrainConfig()), LoopConfig(), total_steps=10)
    assert plain.average == {}


def test_fit_with_weight_average_validates_and_keeps_the_average():
    seqs = [[3 + (i + j) % 9 for j in range(5)] for i in range(24)]
    labels = [i % 2 for i in range(24)]
    source = InMemoryBatches(seqs, labels, 8)
    seen = []

    def validate(net):
        seen.append({n: p.detach().clone() for n, p in net.named_parameters()})
        return Score(float(len(seen)))  # every validation improves: the last one is kept

    model = _model()
    config = LoopConfig(epochs=2, lr=0.05, ema=0.5, patience=None)
    fit(model, source, loss_function(model, TrainConfig()), validate, config, torch.device("cpu"))
    assert len(seen) == 2
    assert all(torch.equal(p, seen[-1][n]) for n, p in model.named_parameters())  # what was validated is kept
    again = _model()  # the same run without the average ends elsewhere
    fit(again, source, loss_function(again, TrainConfig()), validate, LoopConfig(epochs=2, lr=0.05, patience=None),
        torch.device("cpu"))  # fmt: skip
    assert not torch.equal(again.head.weight, model.head.weight)
