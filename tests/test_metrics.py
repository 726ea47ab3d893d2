import pytest

from gru_sentiment.metrics import confusion_matrix, report


def test_confusion_matrix_rows_are_true_labels():
    assert confusion_matrix([0, 0, 1, 2], [0, 1, 1, 0], 3) == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_report_against_hand_computed_values():
    # true: a a a b b c ; pred: a a b b c c
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    r = report(y_true, y_pred, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_label"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert r["per_label"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert r["per_label"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert r["labels"] == ["a", "b", "c"] and r["n"] == 6


def test_label_never_predicted_has_zero_precision_not_an_error():
    r = report([0, 1], [0, 0], ["neg", "pos"])
    assert r["per_label"]["pos"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["per_label"]["neg"]["precision"] == 0.5


def test_matches_scikit_learn_when_installed():
    sk = pytest.importorskip("sklearn.metrics")
    import random

    rng = random.Random(0)
    y_true = [rng.randrange(3) for _ in range(200)]
    y_pred = [t if rng.random() < 0.6 else rng.randrange(3) for t in y_true]
    r = report(y_true, y_pred, ["x", "y", "z"])
    assert r["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro"))
    assert r["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert r["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred).tolist()
