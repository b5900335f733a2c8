"""Degenerate predictions counted beside the empty ones: cut at max_new_tokens without the end token, and
repeating a phrase (the most frequent word 3-gram occurs 3 times or more; Korean words are kiwi morphemes)."""

from __future__ import annotations

import json

import pytest
import torch

from sumtune.generate import ended_on_stop_token
from sumtune.metrics import count_degenerate, degenerate_warning, most_repeated_ngram


@pytest.mark.parametrize("text, repeats", [
    ("izzm. izzm. izzm. izzm. izzm.", True),  # five words: the 3-gram "izzm izzm izzm" three times
    ("Person1 asks Person2 for help. Person1 asks Person2 for help. Person1 asks Person2 for help.", True),
    ("xtreme xtreme xtreme", False),  # one 3-gram, once
    ("Person1 and Person2 talk about the party and the party is on Friday and the party ends late.", False),  # twice
    ("#Person1# asks #Person2# to book a meeting room for tomorrow afternoon.", False),
])
def test_an_english_prediction_repeats_when_a_word_3gram_occurs_three_times(text, repeats):
    assert count_degenerate([text], tokenizer="auto").n_repeating_predictions == int(repeats)


@pytest.mark.parametrize("text, repeats", [
    ("#Person1#은 회의에 간다. #Person1#은 회의에 간다. #Person1#은 회의에 간다.", True),
    ("#Person1#은 회의에 간다. #Person1#은 회의에 간다.", False),
    ("좋아요 좋아요 좋아요 좋아요", True),  # morphemes 좋/어요 x4: the 3-gram 좋 어요 좋 three times
    ("#Person2#가 #Person1#에게 새 휴대폰 번호를 알려주고 내일 다시 전화하기로 한다.", False),
])
def test_a_korean_prediction_repeats_when_a_morpheme_3gram_occurs_three_times(text, repeats):
    for tokenizer in ("auto", "kiwi"):
        assert count_degenerate([text], tokenizer=tokenizer).n_repeating_predictions == int(repeats), tokenizer


def test_most_repeated_ngram_counts_overlapping_occurrences():
    assert most_repeated_ngram(list("aaaab")) == (("a", "a", "a"), 2)
    assert most_repeated_ngram(["one", "two"]) == ((), 0)


def test_cut_predictions_are_those_that_never_reached_a_stop_token():
    predictions = ["a b c a b c a b c", "short and done", "cut off but not looping", "done"]
    counts = count_degenerate(predictions, stopped=[True, True, False, True], tokenizer="english")
    assert (counts.n_cut_at_max_new_tokens, counts.n_repeating_predictions, counts.n_degenerate_predictions) == (1, 1, 2)
    # a file of predictions has no stop information: the cut count is unknown, not zero
    assert count_degenerate(predictions, tokenizer="english").n_cut_at_max_new_tokens is None


def test_generation_tells_a_stopped_row_from_one_cut_at_max_new_tokens():
    stop_ids = [2, 7]
    generated = torch.tensor([[5, 6, 2, 0], [5, 6, 8, 9], [7, 0, 0, 0]])
    assert ended_on_stop_token(generated, stop_ids) == [True, False, True]


def test_the_warning_starts_above_five_percent_and_names_both_kinds():
    below = count_degenerate(["fine"] * 19 + ["x y z x y z x y z"], stopped=[True] * 20, tokenizer="english")
    assert degenerate_warning(below, 20) is None  # 1 of 20 = 5 %: not above
    above = count_degenerate(["fine"] * 18 + ["x y z x y z x y z", "cut"], stopped=[True] * 19 + [False],
                             tokenizer="english")
    warning = degenerate_warning(above, 20, max_new_tokens=48)
    assert warning.startswith("2 of 20 predictions (10%) are degenerate: 1 hit generation.max_new_tokens (48) "
                              "without the end token and 1 repeat a phrase")


def test_a_tiny_run_records_its_degenerate_counts_in_run_json_metrics_json_and_the_log(tiny_trained_runs):
    run = tiny_trained_runs["bart"]
    manifest = json.loads(run.run_json.read_text(encoding="utf-8"))
    on_disk = json.loads((run.results_dir / "metrics.json").read_text(encoding="utf-8"))
    keys = ("n_cut_at_max_new_tokens", "n_repeating_predictions", "n_degenerate_predictions")
    assert {key: manifest["metrics"][key] for key in keys} == {key: on_disk[key] for key in keys}
    counts = [manifest["metrics"][key] for key in keys]
    assert all(isinstance(n, int) and 0 <= n <= manifest["metrics"]["n_examples"] for n in counts)
    assert max(counts[:2]) <= counts[2] <= counts[0] + counts[1]
    log = run.log_path.read_text(encoding="utf-8")
    assert (f"degenerate predictions: {counts[0]} cut at generation.max_new_tokens (12) without the end token, "
            f"{counts[1]} repeating a phrase ({counts[2]} in all)") in log
