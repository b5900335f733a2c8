"""Classification scores (accuracy, macro-F1, per class, confusion matrix, majority baseline) on small
cases worked out by hand."""

from __future__ import annotations

import json
import warnings

import pytest

from sumtune.metrics import classification_scores, format_classification_table

METRICS_JSON_KEYS = ["task", "score", "macro_f1", "accuracy", "majority_label", "majority_accuracy",
                     "majority_macro_f1", "labels", "per_class", "confusion_matrix", "n_examples"]


def test_two_classes_by_hand() -> None:
    # ham: 5 right, 1 called spam; spam: 3 right, 1 called ham
    true = ["ham"] * 6 + ["spam"] * 4
    predicted = ["ham"] * 5 + ["spam"] + ["spam"] * 3 + ["ham"]
    result = classification_scores(true, predicted, ["ham", "spam"])
    assert result.accuracy == pytest.approx(8 / 10)
    assert result.per_class["ham"] == pytest.approx({"precision": 5 / 6, "recall": 5 / 6, "f1": 5 / 6, "support": 6})
    assert result.per_class["spam"] == pytest.approx({"precision": 3 / 4, "recall": 3 / 4, "f1": 3 / 4, "support": 4})
    assert result.macro_f1 == pytest.approx((5 / 6 + 3 / 4) / 2) and result.score == result.macro_f1
    assert result.confusion_matrix == [[5, 1], [1, 3]]
    # always "ham": ham f1 = 2 * 0.6 / 1.6 = 0.75, spam 0 -> 0.375 (the design's example)
    assert (result.majority_label, result.majority_accuracy) == ("ham", pytest.approx(0.6))
    assert result.majority_macro_f1 == pytest.approx(0.375)
    assert result.n_examples == 10


def test_three_classes_with_unequal_precision_and_recall() -> None:
    labels = ["neg", "neu", "pos"]
    true = ["neg", "neg", "neg", "neu", "neu", "pos", "pos", "pos", "pos"]
    predicted = ["neg", "neg", "pos", "neg", "neu", "pos", "pos", "pos", "pos"]
    result = classification_scores(true, predicted, labels)
    assert result.per_class["neg"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert result.per_class["neu"] == pytest.approx({"precision": 1.0, "recall": 1 / 2, "f1": 2 / 3, "support": 2})
    assert result.per_class["pos"] == pytest.approx({"precision": 4 / 5, "recall": 1.0, "f1": 8 / 9, "support": 4})
    assert result.macro_f1 == pytest.approx(20 / 27)
    assert result.accuracy == pytest.approx(7 / 9)
    assert result.confusion_matrix == [[2, 0, 1], [1, 1, 0], [0, 0, 4]]  # rows true, columns predicted
    # always "pos": precision 4/9, recall 1 -> f1 8/13, the other two 0
    assert result.majority_label == "pos" and result.majority_macro_f1 == pytest.approx(8 / 39)


def test_the_confusion_matrix_follows_the_order_of_labels() -> None:
    true, predicted = ["a", "a", "b"], ["a", "b", "b"]
    assert classification_scores(true, predicted, ["a", "b"]).confusion_matrix == [[1, 1], [0, 1]]
    assert classification_scores(true, predicted, ["b", "a"]).confusion_matrix == [[1, 0], [1, 1]]


def test_a_class_never_predicted_scores_zero_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's UndefinedMetricWarning would fail the test
        result = classification_scores(["a", "b", "b", "c"], ["a", "a", "a", "c"], ["a", "b", "c"])
    assert result.per_class["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert result.per_class["a"]["precision"] == pytest.approx(1 / 3)
    assert result.macro_f1 == pytest.approx((0.5 + 0 + 1) / 3)


def test_a_class_without_examples_still_counts_in_macro_f1() -> None:
    result = classification_scores(["a", "b"], ["a", "b"], ["a", "b", "c"])
    assert result.accuracy == 1.0 and result.per_class["c"]["support"] == 0
    assert result.macro_f1 == pytest.approx(2 / 3)


def test_a_majority_tie_goes_to_the_label_listed_first() -> None:
    true = ["b", "a", "a", "b"]
    assert classification_scores(true, true, ["a", "b"]).majority_label == "a"
    assert classification_scores(true, true, ["b", "a"]).majority_label == "b"
    assert classification_scores(true, true, ["a", "b"]).majority_accuracy == 0.5


def test_integer_labels_keep_their_values_and_the_result_is_json() -> None:
    result = classification_scores([0, 1, 1, 1], [0, 1, 0, 1], [0, 1])
    data = json.loads(json.dumps(result.as_dict()))
    assert list(result.as_dict()) == METRICS_JSON_KEYS
    assert data["task"] == "classification" and data["score"] == data["macro_f1"]
    assert data["labels"] == [0, 1] and data["majority_label"] == 1
    assert set(data["per_class"]) == {"0", "1"} and data["per_class"]["1"]["support"] == 3
    assert data["confusion_matrix"] == [[1, 0], [1, 2]]


@pytest.mark.parametrize("true, predicted, labels, ids, message", [
    (["a", "b"], ["a"], ["a", "b"], None, "got 2 true labels but 1 predicted labels"),
    (["a", "spma"], ["a", "b"], ["a", "b"], None, r"example 1: true label 'spma' is not one of the labels \['a', 'b'\]"),
    (["a", "b"], ["a", "c"], ["a", "b"], ["m1", "m2"], r"example 1 \(id 'm2'\): predicted label 'c' is not one"),
    ([1, 0], ["1", "0"], [0, 1], None, "example 0: predicted label '1' is not one of the labels"),  # str vs int
    (["a"], ["a"], ["a", "b", "a"], None, "labels lists 'a' more than once"),
    (["a"], ["a"], ["a"], None, "at least two classes"),
    ([], [], ["a", "b"], None, "nothing to score"),
    (["a", "b"], ["a", "b"], ["a", "b"], ["m1"], "got 1 ids for 2 examples"),
])
def test_bad_input_is_a_clear_error(true, predicted, labels, ids, message) -> None:
    with pytest.raises(ValueError, match=message):
        classification_scores(true, predicted, labels, ids=ids)


def test_a_string_instead_of_a_list_is_refused() -> None:
    with pytest.raises(TypeError, match="predicted must be a list of labels, not a str"):
        classification_scores(["a", "b"], "ab", ["a", "b"])


def test_the_console_table_shows_scores_per_class_and_the_matrix() -> None:
    result = classification_scores(["ham"] * 6 + ["spam"] * 4, ["ham"] * 5 + ["spam"] * 4 + ["ham"], ["ham", "spam"])
    table = format_classification_table(result)
    lines = table.splitlines()
    assert lines[0].split() == ["accuracy", "0.8000"] and lines[1].split()[:2] == ["macro-F1", "0.7917"]
    assert "always predicting 'ham'" in lines[2] and "0.3750" in lines[2]
    assert ["spam", "0.7500", "0.7500", "0.7500", "4"] in [line.split() for line in lines]
    matrix = lines[lines.index("confusion matrix (rows: true label, columns: predicted label)") + 1:]
    assert [line.split() for line in matrix] == [["ham", "spam"], ["ham", "5", "1"], ["spam", "1", "3"]]
