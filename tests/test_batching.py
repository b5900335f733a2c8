"""Exact length bucketing (training.group_by_length, training.max_tokens_per_batch): sumtune.batching and
the Trainer's data loader built from it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from transformers.trainer_pt_utils import LengthGroupedSampler

import bucket_order
from sumtune.batching import LengthBuckets, consecutive, example_shapes, least_padded_work, padded_size, padding_share, token_budget_sizes
from sumtune.config import ConfigError, load_config
from sumtune.data import encode_examples, read_examples, tokenizer_training_texts, Splits
from sumtune.loading import train_tokenizer
from sumtune.train import length_buckets, position_weights
from test_training import tiny_config

REPO = Path(__file__).resolve().parents[1]
LENGTHS = [(13 * i) % 37 + 1 for i in range(50)]  # 50 examples, 1 to 37 tokens, several of equal length


def flat(batches: list[list[int]]) -> list[int]:
    return sorted(i for batch in batches for i in batch)


def test_the_same_seed_and_epoch_give_the_same_batches_and_another_epoch_or_seed_another_order():
    buckets = LengthBuckets(LENGTHS, batch_size=4, seed=3)
    again = LengthBuckets(list(LENGTHS), batch_size=4, seed=3)
    assert buckets.batches(0) == again.batches(0) and buckets.batches(5) == again.batches(5)
    assert buckets.batches(1) != buckets.batches(0)
    assert LengthBuckets(LENGTHS, batch_size=4, seed=4).batches(0) != buckets.batches(0)
    buckets.set_epoch(5)
    assert list(buckets) == again.batches(5)  # iterating gives the epoch set_epoch chose


@pytest.mark.parametrize("max_tokens", [None, 40, 7])
def test_every_example_is_in_exactly_one_batch_every_epoch(max_tokens):
    buckets = LengthBuckets(LENGTHS, batch_size=4, seed=0, max_tokens=max_tokens)
    for epoch in range(4):
        batches = buckets.batches(epoch)
        assert flat(batches) == list(range(len(LENGTHS)))
        assert len(batches) == len(buckets)  # the Trainer counts steps from len() once


def test_batches_hold_neighbours_in_length_order():
    """Sorted by their shortest row, no batch reaches into the next one's lengths: the whole set was sorted,
    not megabatches of it (HF's LengthGroupedSampler sorts inside groups of ≤ 50 batches)."""
    buckets = LengthBuckets(LENGTHS, batch_size=4, seed=0)
    spans = sorted((min(LENGTHS[i] for i in b), max(LENGTHS[i] for i in b)) for b in buckets.batches(2))
    assert all(longest <= next_shortest for (_, longest), (next_shortest, _) in zip(spans, spans[1:])), spans
    assert sorted(len(b) for b in buckets.batches(2)) == [2] + [4] * 12  # 50 = 12 × 4 + 2


def test_the_costliest_batch_comes_first_so_that_memory_runs_out_at_the_first_step():
    buckets = LengthBuckets(LENGTHS, batch_size=4, seed=0)
    for epoch in range(3):
        first, *rest = buckets.batches(epoch)
        assert buckets.padded(first) == max(buckets.padded(b) for b in rest + [first])


def test_token_budget_batches_fit_the_budget_and_short_examples_travel_in_bigger_batches():
    budget = 60
    buckets = LengthBuckets(LENGTHS, batch_size=4, seed=0, max_tokens=budget)
    batches = buckets.batches(0)
    assert all(buckets.padded(b) <= budget for b in batches)
    by_length = sorted(batches, key=lambda b: max(LENGTHS[i] for i in b))
    assert len(by_length[0]) > len(by_length[-1]) and len(by_length[0]) > 4
    # greedy and full: the next example in length order would not have fitted
    ordered = [i for b in by_length for i in sorted(b, key=LENGTHS.__getitem__)]
    at = 0
    for batch in by_length[:-1]:
        at += len(batch)
        assert (len(batch) + 1) * LENGTHS[ordered[at]] > budget


def test_a_seq2seq_token_budget_counts_source_and_target_each_padded_to_the_batch_longest():
    # sorted by source: (2, 9) (3, 1) (4, 1); with (4, 1) the batch would take 3 × (4 + 9) = 39 positions
    assert token_budget_sizes([(2, 9), (3, 1), (4, 1)], 30) == [2, 1]
    assert token_budget_sizes([(2, 9), (3, 1), (4, 1)], 39) == [3]


def test_an_example_longer_than_the_token_budget_is_a_batch_of_its_own():
    assert token_budget_sizes([(2,), (3,), (50,), (60,)], 10) == [2, 1, 1]
    assert token_budget_sizes([(20,)], 10) == [1]
    buckets = LengthBuckets([2, 3, 50, 60], batch_size=8, seed=0, max_tokens=10)
    assert sorted(map(sorted, buckets.batches(0))) == [[0, 1], [2], [3]]


def test_no_examples_is_refused():
    with pytest.raises(ValueError, match="no examples"):
        LengthBuckets([], batch_size=4, seed=0)


def test_under_ddp_each_rank_gets_its_share_and_the_ranks_of_a_step_get_neighbouring_lengths():
    """accelerate deals batch i to rank i mod N (BatchSamplerShard): together the ranks see every example,
    and the batches trained in one step come from neighbouring lengths (no rank waits on a far longer one)."""
    ranks = 2
    buckets = LengthBuckets(LENGTHS, batch_size=4, seed=1, ranks=ranks)
    per_rank = [list(BatchSamplerShard(buckets, num_processes=ranks, process_index=rank)) for rank in range(ranks)]
    assert set(flat(per_rank[0] + per_rank[1])) == set(range(len(LENGTHS)))
    assert len(per_rank[0]) == len(per_rank[1]) == 7  # 13 batches dealt to 2 ranks, the last step made even
    rank_of_sorted = sorted(buckets.batches(0), key=lambda b: max(LENGTHS[i] for i in b))
    position = {tuple(b): at for at, b in enumerate(rank_of_sorted)}
    for first, second in list(zip(*per_rank))[:-1]:
        assert abs(position[tuple(first)] - position[tuple(second)]) == 1


def test_seq2seq_examples_sort_by_source_then_target_and_causal_by_the_whole_sequence():
    columns = {"input_ids": [[1, 2, 3], [4], [5, 6, 7]], "labels": [[5, 6], [7, 8, 9], [1]]}
    assert example_shapes(columns, "seq2seq") == [(3, 2), (1, 3), (3, 1)]
    assert sorted(LengthBuckets(example_shapes(columns, "seq2seq"), 1, seed=0).batches(0)) == [[0], [1], [2]]
    assert [b for b in LengthBuckets(example_shapes(columns, "seq2seq"), 2, seed=0).batches(0) if len(b) == 2] == [[2, 0]]
    causal = {"input_ids": [[1, 2, 3], [4]], "labels": [[-100, 2, 3], [4]]}
    assert example_shapes(causal, "causal") == [(3,), (1,)]


def weighted_work(layout, ascending, weights):
    return sum(padded_size([ascending[p] for p in batch], weights) for batch in layout)


@pytest.mark.parametrize("weights", [(1.0, 1.0), (1.0, 1.9)])
def test_seq2seq_batches_are_cut_from_stretches_re_sorted_by_summary_when_that_leaves_less_padded_work(weights):
    # sources climb slowly while summaries alternate short/long: a cut of the source order pads every
    # batch's summaries to the long ones; re-sorting stretches by summary pairs the long ones together
    shapes = sorted((100 + i, 5 if i % 2 else 60) for i in range(64))
    layout = least_padded_work(shapes, 8, weights)
    assert sorted(p for batch in layout for p in batch) == list(range(64)) and {len(b) for b in layout} == {8}
    plain = consecutive([8] * 8)
    assert all(len({shapes[p][1] for p in batch}) == 1 for batch in layout)  # no summary padding left
    assert weighted_work(layout, shapes, weights) < 0.9 * weighted_work(plain, shapes, weights)
    # where summaries follow the sources, the source order is already best and is kept
    follows = [(100 + i, 10 + i) for i in range(64)]
    assert least_padded_work(follows, 8, weights) == plain


def test_the_stretch_cut_keeps_the_remainder_batch_first_and_every_example_once_every_epoch():
    shapes = [((7 * i) % 23 + 10, (5 * i) % 11 + 1) for i in range(45)]
    buckets = LengthBuckets(shapes, batch_size=4, seed=1, weights=(1.0, 2.0))
    for epoch in range(3):
        batches = buckets.batches(epoch)
        assert flat(batches) == list(range(45)) and sorted(map(len, batches)) == [1] + [4] * 11
    ascending = sorted(shapes)
    assert buckets.layout[0] == [0]  # the shortest example's batch takes the remainder
    assert weighted_work(buckets.layout, ascending, (1.0, 2.0)) <= weighted_work(consecutive([1] + [4] * 11), ascending, (1.0, 2.0))


def test_a_summary_position_weighs_what_the_decoder_and_output_layer_cost_against_the_encoder(tmp_path):
    from sumtune import backends

    for family, expected in (("bart", "seq2seq"), ("gpt2", "causal")):
        cfg = tiny_config(tmp_path, family)
        plan = backends.resolve(cfg, backends.probe_machine(cfg))
        model = backends.load(plan, cfg, ["안녕하세요 반갑습니다"] * 20).model
        weights = position_weights(model)
        if expected == "seq2seq":  # decoder layers have cross-attention, and the output layer comes on top
            assert weights[0] == 1.0 and weights[1] > 1.2, weights
        else:
            assert weights is None


def test_max_tokens_per_batch_without_group_by_length_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="training.max_tokens_per_batch: needs group_by_length: true"):
        tiny_config(tmp_path, "bart", "training.group_by_length=false", "training.max_tokens_per_batch=512")


def test_padding_on_the_bundled_korean_sample_is_lower_than_with_hf_length_grouped_batches(tmp_path):
    """Source and target are padded separately (DataCollatorForSeq2Seq), each to its batch's longest."""
    cfg = tiny_config(tmp_path, "bart")
    examples = read_examples(cfg.data.train_file, cfg.data)
    tokenizer = train_tokenizer(tokenizer_training_texts(Splits(examples, None)), cfg.arch, 2000)
    rows = encode_examples(examples, cfg, tokenizer, "train")
    shapes = example_shapes(rows, "seq2seq")
    sources = [source for source, _ in shapes]
    ours, hf = [], []
    for seed in range(5):
        ours.append(padding_share(LengthBuckets(shapes, batch_size=8, seed=seed).batches(0), shapes))
        order = list(LengthGroupedSampler(8, lengths=sources, generator=torch.Generator().manual_seed(seed)))
        hf.append(padding_share([order[at:at + 8] for at in range(0, len(order), 8)], shapes))
    mean_ours, mean_hf = sum(ours) / 5, sum(hf) / 5
    assert mean_ours < mean_hf / 2, (ours, hf)  # 17 % against 47 % when written


# --------------------------------------------------------------------------------------------------
# The Trainer's loop: what it trains on, in one process and under DDP, and after a resume


def test_length_buckets_follow_the_config_and_are_off_with_group_by_length_false(tmp_path, caplog):
    rows = {"input_ids": [[1] * n for n in (5, 50, 3)], "labels": [[1] * n for n in (2, 2, 45)]}
    cfg = tiny_config(tmp_path, "bart", "training.max_tokens_per_batch=45")
    with caplog.at_level(logging.WARNING, logger="sumtune"):
        buckets = length_buckets(cfg, rows, ranks=1)
    assert buckets.shapes == [(5, 2), (50, 2), (3, 45)] and len(buckets) == 3  # 48 and 52 exceed 45: one row each
    assert "2 training examples are longer than training.max_tokens_per_batch (45 tokens)" in caplog.text
    assert length_buckets(tiny_config(tmp_path, "bart", "training.group_by_length=false"), rows, ranks=1) is None


def test_the_trainer_trains_on_the_buckets_and_a_resumed_run_goes_on_in_the_same_order(tmp_path):
    seen = bucket_order.batches_seen(tmp_path)
    whole, steps = seen["whole"], seen["steps_per_epoch"]
    expected = LengthBuckets(bucket_order.LENGTHS, bucket_order.BATCH_SIZE, seed=7)
    assert [sorted(b) for b in whole] == [sorted(b) for b in expected.batches(0) + expected.batches(1)]
    assert whole[:steps] != whole[steps:]  # the second epoch has its own order
    assert seen["resumed"] == whole[seen["resumed_from"]:]


def test_under_ddp_every_rank_trains_its_share_and_a_resumed_run_goes_on_in_the_same_order(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO / "code"), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(REPO / "tests" / "bucket_order.py"), str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    steps = ranks[0]["steps_per_epoch"]
    for epoch in (0, 1):
        trained = [i for seen in ranks for batch in seen["whole"][epoch * steps:(epoch + 1) * steps] for i in batch]
        assert set(trained) == set(range(len(bucket_order.LENGTHS)))  # 11 batches dealt as 6 + 6: one repeats
    for seen in ranks:
        assert seen["whole"][:steps] != seen["whole"][steps:]
        assert seen["resumed"] == seen["whole"][seen["resumed_from"]:]
