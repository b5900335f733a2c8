"""Which examples the HF Trainer, built with sumtune's LengthBucketing, trains on at each step: a whole run,
then the same run resumed from a checkpoint inside its second epoch. Used by tests/test_batching.py in
this process and, for DDP, under ``torchrun`` (``python -m torch.distributed.run --nproc_per_node 2
tests/bucket_order.py OUT_DIR``), where each rank writes what it saw to OUT_DIR/rank{N}.json.

The model is a stand-in with one weight: it records each batch's example numbers (every row's first
token) and returns a loss, so the Trainer's own loop, checkpointing and resume are what is tested.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import datasets
import torch
import transformers

from sumtune.batching import LengthBuckets
from sumtune.train import SumtuneTrainer

LENGTHS = [(7 * number) % 23 + 2 for number in range(42)]  # 42 examples of 2 to 24 tokens, some of equal length
BATCH_SIZE = 4  # 11 batches an epoch (one of 2 rows)


class Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[int]] = []

    def forward(self, input_ids, labels=None):
        self.seen.append(sorted(input_ids[:, 0].tolist()))
        return {"loss": (self.weight - 1).pow(2).sum() + 0.0 * input_ids.sum()}


def collate(rows):
    longest = max(len(row["input_ids"]) for row in rows)
    ids = torch.tensor([row["input_ids"] + [0] * (longest - len(row["input_ids"])) for row in rows])
    return {"input_ids": ids, "labels": ids}


def trainer(out: Path, save_steps: int, world_size: int) -> SumtuneTrainer:
    rows = [{"input_ids": [number + 1] * length} for number, length in enumerate(LENGTHS)]  # first token = number + 1
    args = transformers.TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=BATCH_SIZE, num_train_epochs=2, learning_rate=0.1,
        save_strategy="steps", save_steps=save_steps, save_only_model=False, logging_strategy="no",
        train_sampling_strategy="group_by_length", use_cpu=True, report_to="none", seed=7,
    )
    built = SumtuneTrainer(model=Recorder(), args=args, train_dataset=datasets.Dataset.from_list(rows), data_collator=collate)
    built.length_buckets = LengthBuckets([len(row["input_ids"]) for row in rows], BATCH_SIZE, seed=7, ranks=world_size)
    return built


def batches_seen(out: Path) -> dict:
    """{"whole": the batches of an uninterrupted 2-epoch run, "resumed": those after resuming from the
    checkpoint at the second step of epoch 2, "resumed_from": that step}; example numbers from 0."""
    world_size = int(transformers.TrainingArguments(output_dir=str(out), use_cpu=True).world_size)
    steps_per_epoch = -(-11 // world_size)
    resume_step = steps_per_epoch + 2  # two batches into the second epoch
    whole = trainer(out / "whole", save_steps=resume_step, world_size=world_size)
    whole.train()
    resumed = trainer(out / "resumed", save_steps=resume_step, world_size=world_size)
    if world_size > 1:  # transformers 5.17 loads the optimizer state to "cpu:0" under CPU DDP, which torch refuses
        resumed._load_optimizer_and_scheduler = lambda checkpoint: None  # the data order is what is tested here
    resumed.train(resume_from_checkpoint=str(out / "whole" / f"checkpoint-{resume_step}"))
    shift = lambda batches: [[number - 1 for number in batch] for batch in batches]  # noqa: E731
    return {"whole": shift(whole.model.seen), "resumed": shift(resumed.model.seen), "resumed_from": resume_step,
            "steps_per_epoch": steps_per_epoch}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    seen = batches_seen(out / "work")
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    (out / f"rank{rank}.json").write_text(json.dumps(seen))
