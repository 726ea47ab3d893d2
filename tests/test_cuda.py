"""On a GPU: training runs on cuDNN's GRU kernel, and the gate trace still matches it. Skipped without CUDA."""

import pytest
import torch

from gru_sentiment import gates
from gru_sentiment.batching import pad
from gru_sentiment.model import GRUClassifier, ModelConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(autouse=True)
def exact_matmuls():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # compare in true fp32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_device_auto_picks_cuda():
    from gru_sentiment.cli import Device, _setup

    assert _setup(Device.auto, None).type == "cuda"


def test_gate_trace_on_gpu_matches_cudnn_and_cpu():
    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(vocab_size=100, num_labels=2, embed_dim=16, hidden_size=12, num_layers=2)).eval()
    ids, lengths = pad([[5, 9, 2, 7, 3, 8, 40, 41], [11, 3, 3], [60]])
    cpu_logits = model(ids, lengths)
    model.cuda()
    assert torch.backends.cudnn.enabled and torch.backends.cudnn.is_available()
    trace = gates.trace(model, ids.cuda(), lengths.cuda())
    states = model.encode(ids.cuda(), lengths.cuda())  # nn.GRU on CUDA runs cuDNN's kernel
    valid = torch.arange(ids.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    last = [t for t in trace.layers if t.layer == 1]
    traced = torch.cat([last[0].values.hidden, last[1].values.hidden], -1)
    assert torch.allclose(traced[valid.cuda()], states[valid.cuda()], atol=1e-5)
    assert torch.allclose(trace.logits.cpu(), cpu_logits, atol=1e-4)


def test_training_steps_run_on_the_gpu(tmp_path):
    from gru_sentiment.data import TextData
    from gru_sentiment.jobs import TokenizerSettings, train_model
    from gru_sentiment.train import TrainConfig
    from tests.corpus import reviews

    texts, labels = reviews(200, seed=1)
    bundle, history = train_model(
        TextData(texts, labels, ["neg", "pos"], "corpus"),
        TextData(texts[:40], labels[:40], ["neg", "pos"], "corpus"),
        TokenizerSettings("wordpiece", 200, 32),
        dict(embed_dim=16, hidden_size=12, num_layers=1, bidirectional=True, dropout=0.1),
        TrainConfig(epochs=3, batch_size=16, lr=1e-2),
        str(tmp_path / "m"),
        torch.device("cuda"),
    )
    assert next(bundle.model.parameters()).is_cuda
    assert history.best.accuracy >= 0.8


def test_attributions_on_the_gpu_match_the_cpu():
    from gru_sentiment.attribution import integrated_gradients

    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(vocab_size=100, num_labels=2, embed_dim=16, hidden_size=12)).eval()
    ids = [5, 9, 2, 7, 3, 8, 40, 41]
    on_cpu = integrated_gradients(model, ids, label=1, min_steps=16, max_points=17)
    on_gpu = integrated_gradients(model.cuda(), ids, label=1, min_steps=16, max_points=17)
    assert on_gpu.scores == pytest.approx(on_cpu.scores, abs=1e-4)
    assert on_gpu.value == pytest.approx(on_cpu.value, abs=1e-4)
