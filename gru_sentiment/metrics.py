"""Classification metrics as pure functions over label indices."""

from __future__ import annotations


def confusion_matrix(y_true: list[int], y_pred: list[int], num_labels: int) -> list[list[int]]:
    """Counts with rows = true label, columns = predicted label."""
    matrix = [[0] * num_labels for _ in range(num_labels)]
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[t][p] += 1
    return matrix


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def report(y_true: list[int], y_pred: list[int], label_names: list[str]) -> dict:
    """Accuracy, per-label precision/recall/F1/support, macro F1 and the confusion matrix.

    A label never predicted has precision 0; a label with no true examples has recall 0 (as scikit-learn with
    zero_division=0). Macro F1 averages over every label of the model.
    """
    return report_from_confusion(confusion_matrix(y_true, y_pred, len(label_names)), label_names)


def report_from_confusion(matrix: list[list[int]], label_names: list[str]) -> dict:
    """The same report from a confusion matrix (rows true, columns predicted), e.g. one summed over processes."""
    k = len(label_names)
    per_label = {}
    for i, name in enumerate(label_names):
        tp = matrix[i][i]
        predicted = sum(matrix[r][i] for r in range(k))
        support = sum(matrix[i])
        precision, recall = _ratio(tp, predicted), _ratio(tp, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_label[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    n = sum(map(sum, matrix))
    return {
        "accuracy": _ratio(sum(matrix[i][i] for i in range(k)), n),
        "macro_f1": sum(v["f1"] for v in per_label.values()) / k,
        "per_label": per_label,
        "confusion_matrix": matrix,
        "labels": list(label_names),
        "n": n,
    }
