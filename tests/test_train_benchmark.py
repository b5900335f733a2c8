"""benchmarks/train_throughput.py: the zero-padding bound holds each batch's own tokens, the padding
baselines train exactly the examples of sumtune's timed steps, and the report has what the issue asks."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import train_throughput as bench  # noqa: E402

from sumtune.batching import LengthBuckets  # noqa: E402


class ShiftRight:
    """Stands in for the model's prepare_decoder_input_ids_from_labels (decoder start 2)."""

    def prepare_decoder_input_ids_from_labels(self, labels):
        return torch.cat([torch.full_like(labels[:, :1], 2), labels[:, :-1]], dim=1)


def features(lengths):
    token = iter(range(10, 10_000))
    return [{"input_ids": [next(token) for _ in range(source)], "attention_mask": [1] * source,
             "labels": [next(token) for _ in range(target)]} for source, target in lengths]


def test_the_zero_padding_bound_lays_a_batchs_own_tokens_in_equal_rows_without_padding():
    rows = features([(30, 9), (7, 4), (19, 12)])  # 56 source tokens, 25 summary tokens, 3 rows
    batch = bench.EqualRows(ShiftRight())(rows)

    assert batch["input_ids"].shape == (3, 18) and batch["labels"].shape == (3, 8)  # same rows, one length
    assert bool(batch["attention_mask"].all())  # nothing to mask: no padding
    assert not bool((batch["labels"] == -100).any())
    # the batch's own tokens, in order; only the tail that cannot fill a row (< rows) is left out
    assert batch["input_ids"].flatten().tolist() == [t for row in rows for t in row["input_ids"]][:54]
    assert batch["labels"].flatten().tolist() == [t for row in rows for t in row["labels"]][:24]
    assert batch["decoder_input_ids"][:, 1:].tolist() == batch["labels"][:, :-1].tolist()


@pytest.mark.parametrize("steps", [5, 12])  # within the first epoch, and into the second
def test_padding_baselines_train_exactly_the_examples_of_sumtunes_timed_steps(steps):
    shapes = [(n % 37 + 5, n % 11 + 2) for n in range(60)]
    buckets = LengthBuckets(shapes, batch_size=8, seed=42)
    timed = bench.timed_batches(buckets, steps)
    random = bench.random_batches(timed, seed=42)

    assert len(timed) == steps
    assert timed[:len(buckets)] == buckets.batches(0)[:steps]  # the order sumtune's lane trains in
    if steps > len(buckets):
        assert timed[len(buckets):] == buckets.batches(1)[:steps - len(buckets)]
    assert [len(b) for b in random] == [len(b) for b in timed]  # same rows per step
    assert Counter(i for b in random for i in b) == Counter(i for b in timed for i in b)  # same examples
    assert random != timed  # but in a random order
    assert random == bench.random_batches(timed, seed=42)  # the same for the same seed


def test_training_benchmark_reports_the_bound_ratios_and_same_tokens(tmp_path):
    """A tiny run end to end: the bound lanes at both precisions, every fraction of the bound, the
    ratios at defaults and at equal precision, and the checks that the compared lanes had the same tokens."""
    report = tmp_path / "train.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "train_throughput.py"), str(REPO / "data" / "sample" / "ko_train.csv"),
         "--size", "tiny", "--steps", "2", "--warmup", "0", "--batch-size", "4", "--precision", "bf16",
         "--skip", "hf", "--skip", "budget", "--out", str(report)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = report.read_text()
    table = {cells[0]: cells for cells in (line.strip("| ").split(" | ") for line in text.splitlines())
             if len(cells) == 13 and cells[0] != "variant" and not cells[0].startswith("---")}
    assert list(table) == ["sumtune", "sumtune fp32", "(a) pad to max_length", "(b) random + dynamic",
                           "zero-padding bound", "zero-padding bound fp32"]  # --skip left out hf and budget
    assert table["zero-padding bound"][3] == "bf16" and table["zero-padding bound fp32"][3] == "fp32"
    assert table["zero-padding bound"][7] == "0.0%" and table["zero-padding bound"][11] == "100.0%"
    assert {table[name][5] for name in ("sumtune", "sumtune fp32", "(a) pad to max_length", "(b) random + dynamic")} \
        == {table["sumtune"][5]}  # the same real tokens
    assert "same examples and real tokens in sumtune, sumtune fp32, (a) and (b): yes" in text
    assert "(at most rows − 1 per sequence per step: yes)" in text
    assert "**sumtune / (a) = " in text and "At equal precision (fp32): sumtune / (a) = " in text
    assert "Fraction of the zero-padding bound at matched settings" in text
