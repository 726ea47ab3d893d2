"""On a GPU: training runs on cuDNN's GRU kernel, and the gate trace still matches it. Skipped without CUDA.

CI has no GPU and so never runs these: every name they use is imported here, at module level, so that a renamed
or moved one fails CI's collection instead of the next run on a GPU.
"""

import pytest
import torch

import gru_sentiment
from gru_sentiment import gates
from gru_sentiment.api import select_device
from gru_sentiment.attribution import integrated_gradients
from gru_sentiment.batching import pad
from gru_sentiment.cli_support import setup_device
from gru_sentiment.data import TextData
from gru_sentiment.jobs import TokenizerSettings, train_model
from gru_sentiment.model import GRUClassifier, ModelConfig
from gru_sentiment.options import Device
from gru_sentiment.pipeline import label_stream
from gru_sentiment.train import TrainConfig
from tests.corpus import reviews
from tests.test_pipeline import ODD

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(autouse=True)
def exact_matmuls():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # compare in true fp32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_device_auto_picks_cuda():
    assert setup_device(Device.auto, None).type == "cuda"  # the command line's --device auto
    assert select_device("auto").type == "cuda"


def test_the_python_api_predicts_on_the_gpu_as_on_the_cpu(tiny_model):
    on_gpu, on_cpu = gru_sentiment.load(tiny_model), gru_sentiment.load(tiny_model, device="cpu")
    assert on_gpu.device.type == "cuda" and next(on_gpu.bundle.model.parameters()).is_cuda
    texts = ["superb acting and a wonderful plot", "dull , boring and far too long", "a fine film"]
    for mine, theirs in zip(on_gpu.predict(texts), on_cpu.predict(texts)):
        assert mine.label == theirs.label
        assert mine.probabilities == pytest.approx(theirs.probabilities, abs=1e-4)
    mine, theirs = on_gpu.explain(texts[1], attributions=True), on_cpu.explain(texts[1], attributions=True)
    assert torch.allclose(mine.layers[0].values.update, theirs.layers[0].values.update, atol=1e-5)
    assert mine.attributions.label == theirs.attributions.label  # the grids may refine apart: compare the ends
    assert mine.attributions.value == pytest.approx(theirs.attributions.value, abs=1e-4)
    assert sum(mine.attributions.scores) == pytest.approx(sum(theirs.attributions.scores), rel=0.03, abs=0.01)


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
    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(vocab_size=100, num_labels=2, embed_dim=16, hidden_size=12)).eval()
    ids = [5, 9, 2, 7, 3, 8, 40, 41]
    on_cpu = integrated_gradients(model, ids, label=1, min_steps=16, max_points=17)
    on_gpu = integrated_gradients(model.cuda(), ids, label=1, min_steps=16, max_points=17)
    assert on_gpu.scores == pytest.approx(on_cpu.scores, abs=1e-4)
    assert on_gpu.value == pytest.approx(on_cpu.value, abs=1e-4)


def test_labels_on_the_gpu_pipeline_are_the_cpus():
    """The shipped model's labels-only path on the GPU (worker processes tokenizing, chunks queued, long
    batches) against the CPU: same labels, probabilities within 1e-4, even with TF32 allowed around it."""
    texts = ODD + reviews(3000, seed=5)[0]
    on_gpu, on_cpu = gru_sentiment.load(device="cuda"), gru_sentiment.load(device="cpu")
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default; the pipeline asks for true fp32 itself
    mine = list(label_stream(on_gpu.bundle, texts, "cuda", chunk_size=500, workers=2))
    theirs = on_cpu.predict(texts)
    assert [p.text for p in mine] == texts
    assert [p.label for p in mine] == [p.label for p in theirs]
    assert [p.notes for p in mine] == [p.notes for p in theirs]
    assert [p.truncated for p in mine] == [p.truncated for p in theirs]
    for a, b in zip(mine, theirs):
        assert list(a.probabilities.values()) == pytest.approx(list(b.probabilities.values()), abs=1e-4)


def test_a_ray_predictor_on_the_gpu_labels_as_the_cpu():
    """`gru_sentiment.ray.Predictor` with device="cuda" (a Ray worker given a GPU) on one batch of rows."""
    pytest.importorskip("ray")
    import numpy as np

    from gru_sentiment.ray import Predictor

    texts = ODD + reviews(500, seed=6)[0]
    batch = {"id": np.arange(len(texts)), "text": np.array(texts, dtype=object)}
    out = Predictor(device="cuda", threads=2)(batch)
    expected = gru_sentiment.load(device="cpu").predict(texts)
    assert out["id"].tolist() == list(range(len(texts)))
    assert out["label"].tolist() == [p.label for p in expected]
    assert np.allclose(out["p_pos"], [p.probabilities["pos"] for p in expected], atol=1e-4)
