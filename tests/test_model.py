import pytest
import torch

from gru_sentiment.batching import bucketed, pad, padding_fraction
from gru_sentiment.model import GRUClassifier, ModelConfig, reverse_within_length, weight_shapes


def make(**kw):
    torch.manual_seed(0)
    return GRUClassifier(ModelConfig(vocab_size=50, num_labels=3, embed_dim=8, hidden_size=6, **kw)).eval()


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("pooling", ["mean_max", "mean", "max", "last"])
def test_shapes(bidirectional, layers, pooling):
    model = make(bidirectional=bidirectional, num_layers=layers, pooling=pooling)
    ids, lengths = pad([[3, 4, 5], [6], [7, 8]])
    assert model(ids, lengths).shape == (3, 3)
    assert model.encode(ids, lengths).shape == (3, 3, 6 * (2 if bidirectional else 1))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("pooling", ["mean_max", "last"])
def test_weight_shapes_name_every_tensor_of_the_built_model(bidirectional, layers, pooling):
    model = make(bidirectional=bidirectional, num_layers=layers, pooling=pooling)
    built = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    assert weight_shapes(model.config) == built


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["mean_max", "last"])
def test_padding_never_changes_a_prediction(bidirectional, pooling):
    model = make(bidirectional=bidirectional, num_layers=2, pooling=pooling)
    seqs = [[5, 9, 2, 7], [11, 3, 3, 8, 14, 21, 30, 4, 9], [1]]
    ids, lengths = pad(seqs)
    batched = torch.softmax(model(ids, lengths), -1)
    for row, seq in enumerate(seqs):
        alone = torch.softmax(model(*pad([seq])), -1)[0]
        assert torch.allclose(alone, batched[row], atol=1e-5)


def test_reverse_within_length_is_an_involution_that_keeps_padding():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    lengths = torch.tensor([3, 2])
    r = reverse_within_length(x, lengths)
    assert r.tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]
    assert torch.equal(reverse_within_length(r, lengths), x)


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        ModelConfig(vocab_size=10, num_labels=2, pooling="attention")
    with pytest.raises(ValueError):
        ModelConfig(vocab_size=10, num_labels=0)
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({"vocab_size": 10, "num_labels": 2, "heads": 4})


def test_bucketing_keeps_padding_low_and_covers_every_example():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(10, 600) for _ in range(5000)]
    seqs = [[1] * n for n in lengths]
    batches = bucketed(lengths, 64, random.Random(1))
    assert sorted(i for b in batches for i in b) == list(range(5000))
    assert padding_fraction(seqs, batches) < 0.10


@pytest.mark.parametrize("layers", [1, 2])
def test_pooling_does_not_need_the_backward_states_back_in_input_order(layers):
    from gru_sentiment.model import pool

    model = make(bidirectional=True, num_layers=layers, pooling="mean_max")
    ids, lengths = pad([[5, 9, 2, 7], [11, 3, 3, 8, 14, 21, 30, 4, 9], [1]])
    ordered, (forward, backward) = model.encode(ids, lengths), model.encode_directions(ids, lengths)
    assert torch.equal(ordered[..., :6], forward)
    assert torch.equal(reverse_within_length(backward, lengths), ordered[..., 6:])
    for pooling in ("mean", "max", "mean_max"):
        assert torch.allclose(
            pool(ordered, lengths, pooling, 2), pool([forward, backward], lengths, pooling, 2), atol=1e-6
        )


def test_pooling_matches_a_plain_masked_mean_and_max():
    from gru_sentiment.model import pool

    states, lengths = torch.randn(3, 5, 4), torch.tensor([5, 2, 1])
    expected = torch.stack(
        [
            torch.cat([s[:n, :2].mean(0), s[:n, 2:].mean(0), s[:n, :2].amax(0), s[:n, 2:].amax(0)])
            for s, n in zip(states, lengths)
        ]
    )
    assert torch.allclose(pool(states, lengths, "mean_max", 2), expected, atol=1e-6)


def test_dropout_masks_whole_features_alike_at_every_step_and_in_both_directions():
    model = make(bidirectional=True, num_layers=2, dropout=0.5).train()
    seen = {}
    for layer, grus in enumerate(model.layers):
        for direction, gru in zip(("forward", "backward"), grus):
            gru.register_forward_pre_hook(lambda m, args, key=(layer, direction): seen.__setitem__(key, args[0]))
    ids, lengths = pad([[5, 9, 2, 7, 3, 8], [11, 3, 3, 8]])
    model.encode(ids, lengths)
    for layer in (0, 1):
        forward, backward = seen[(layer, "forward")], seen[(layer, "backward")]
        assert torch.equal(reverse_within_length(forward, lengths), backward)
        dropped = forward == 0
        assert dropped.any() and not dropped.all()
        assert torch.equal(dropped[0, :6], dropped[0, :1].expand(6, -1))  # one mask for all time steps
    model.eval()
    first = model(ids, lengths)
    assert torch.equal(first, model(ids, lengths))  # no dropout in eval mode


def test_parallel_inference_gives_each_text_its_own_logits_in_input_order():
    from gru_sentiment.batching import logits_for

    model = make(bidirectional=True, num_layers=2)
    rng = torch.Generator().manual_seed(0)
    seqs = [torch.randint(1, 50, (int(n),), generator=rng).tolist() for n in torch.randint(1, 40, (37,), generator=rng)]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # shared out over 2 or 3 workers: one thread each, whatever the machine's cores
    try:
        one = logits_for(model, seqs, 4, "cpu", workers=1)
        three = logits_for(model, seqs, 4, "cpu", workers=3)
        assert torch.get_num_threads() == 2  # put back after the workers finish
        two = logits_for(model, seqs, 4, "cpu", workers=2)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(three, two)  # each batch on one thread either way: same bits
    assert torch.allclose(three, one, atol=1e-6)
    with torch.no_grad():
        alone = torch.cat([model(*pad([s])) for s in seqs])
    assert torch.allclose(three, alone, atol=1e-5)


def test_parallel_inference_really_runs_batches_side_by_side_on_one_thread_each_longest_first():
    import threading

    from gru_sentiment.batching import logits_for

    model = make()
    seqs = [[i % 49 + 1] * (i % 9 + 1) for i in range(40)]
    together = threading.Barrier(2, timeout=60)  # the first two batches must be inside at once, or this breaks
    seen, lock = [], threading.Lock()

    def probe(ids, lengths):
        with lock:
            seen.append((threading.get_ident(), torch.get_num_threads(), ids.shape[1]))
            first_two = len(seen) <= 2
        if first_two:
            together.wait()
        return model(ids, lengths)

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        logits_for(probe, seqs, 4, "cpu", workers=2)
    finally:
        torch.set_num_threads(threads)
    assert len({ident for ident, _, _ in seen}) == 2
    assert {n for _, n, _ in seen} == {1}  # two threads shared out over two workers
    assert max(length for _, _, length in seen[:2]) == max(len(s) for s in seqs)  # the longest started first


def test_parallel_inference_puts_the_threads_back_when_a_batch_fails():
    from gru_sentiment.batching import logits_for

    def broken(ids, lengths):
        raise RuntimeError("out of memory")

    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="out of memory"):
        logits_for(broken, [[1, 2], [3], [4, 5, 6]], 1, "cpu", workers=2)
    assert torch.get_num_threads() == threads


def test_two_threads_predicting_at_once_each_get_their_logits_and_their_thread_setting_back():
    import threading

    from gru_sentiment.batching import logits_for

    model = make(bidirectional=True)
    seqs = [[i % 49 + 1] * (i % 9 + 1) for i in range(40)]
    expected = logits_for(model, seqs, 4, "cpu", workers=1)
    both_inside = threading.Barrier(2, timeout=60)
    results, errors = {}, []

    def caller(name):
        lock, first = threading.Lock(), []

        def meet_then_run(ids, lengths):  # each caller's first batch waits for the other's: both are inside
            with lock:
                go, first[:] = not first, [True]
            if go:
                both_inside.wait()
            return model(ids, lengths)

        try:
            before = torch.get_num_threads()
            results[name] = logits_for(meet_then_run, seqs, 4, "cpu", workers=2)
            results[name + " threads"] = (before, torch.get_num_threads())
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    callers = [threading.Thread(target=caller, args=(name,)) for name in ("a", "b")]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    assert not errors
    for name in ("a", "b"):
        assert torch.allclose(results[name], expected, atol=1e-6)
        before, after = results[name + " threads"]
        assert after == before
