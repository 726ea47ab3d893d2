"""The recomputed gates are exactly nn.GRU's: same states, gates in [0, 1], same prediction."""

import pytest
import torch

from gru_sentiment import gates
from gru_sentiment.batching import pad
from gru_sentiment.model import GRUClassifier, ModelConfig


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_recomputed_states_equal_nn_gru(bidirectional, layers):
    torch.manual_seed(0)
    gru = torch.nn.GRU(7, 5, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    x = torch.randn(3, 13, 7)
    expected, h_n = gru(x)
    traces = gates.trace_gru(gru, x)
    assert [(t.layer, t.direction) for t in traces] == [
        (k, d) for k in range(layers) for d in (("forward", "backward") if bidirectional else ("forward",))
    ]
    last = [t.values.hidden for t in traces if t.layer == layers - 1]
    assert torch.allclose(torch.cat(last, -1), expected, atol=1e-5)
    # final states of every layer/direction: forward ends at the last token, backward at the first
    finals = [t.values.hidden[:, -1] if t.direction == "forward" else t.values.hidden[:, 0] for t in traces]
    assert torch.allclose(torch.stack(finals), h_n, atol=1e-5)


def test_candidate_and_update_reproduce_the_state():
    torch.manual_seed(1)
    gru = torch.nn.GRU(4, 3, batch_first=True)
    v = gates.trace_gru(gru, torch.randn(2, 6, 4))[0].values
    previous = torch.cat([torch.zeros(2, 1, 3), v.hidden[:, :-1]], 1)
    assert torch.allclose(v.hidden, v.update * previous + (1 - v.update) * v.candidate, atol=1e-6)


def padded_batch(vocab=40):
    torch.manual_seed(3)
    seqs = [torch.randint(2, vocab, (n,)).tolist() for n in (9, 4, 1, 6)]
    return seqs, *pad(seqs)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_model_trace_matches_model_on_texts_of_different_lengths(bidirectional, layers):
    torch.manual_seed(2)
    model = GRUClassifier(
        ModelConfig(
            vocab_size=40, num_labels=2, embed_dim=8, hidden_size=6, num_layers=layers, bidirectional=bidirectional
        )
    ).eval()
    seqs, ids, lengths = padded_batch()
    result = gates.trace(model, ids, lengths)
    with torch.no_grad():
        states = model.encode(ids, lengths)
        logits = model(ids, lengths)
    assert torch.allclose(result.logits, logits, atol=1e-5)
    last = torch.cat([t.values.hidden for t in result.layers if t.layer == layers - 1], -1)
    for row, n in enumerate(lengths.tolist()):
        assert torch.allclose(last[row, :n], states[row, :n], atol=1e-5)
        for t in result.layers:
            for name in ("reset", "update"):
                g = getattr(t.values, name)[row, :n]
                assert g.min() >= 0 and g.max() <= 1
            assert t.values.candidate[row, :n].abs().max() <= 1


def test_backward_values_are_those_computed_when_reading_each_token():
    """For the backward direction, the state at token t has read tokens t..n-1: check on a lone sequence."""
    torch.manual_seed(4)
    model = GRUClassifier(ModelConfig(vocab_size=40, num_labels=2, embed_dim=8, hidden_size=6)).eval()
    seq = [5, 6, 7, 8, 9]
    full = gates.trace(model, *pad([seq])).layers[1].values
    for t in range(len(seq)):
        suffix = gates.trace(model, *pad([seq[t:]])).layers[1].values
        assert torch.allclose(full.hidden[0, t], suffix.hidden[0, 0], atol=1e-6)
        assert torch.allclose(full.update[0, t], suffix.update[0, 0], atol=1e-6)


def test_trace_refuses_training_mode():
    model = GRUClassifier(ModelConfig(vocab_size=10, num_labels=2))
    with pytest.raises(ValueError, match="eval"):
        gates.trace(model, *pad([[1, 2]]))
