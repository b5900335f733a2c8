"""--resume is exact: a killed run, resumed, ends where the same run uninterrupted ends.

It goes on from the newest complete checkpoint (a half-written one is skipped), with the tokenizer and
initial weights the run saved in base_model/ (never rebuilt or overwritten), and reports the loss of
the whole run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

import sumtune
from sumtune import loading
from sumtune.artifacts import Run, checkpoint_problem, find_runs, new_run, run_to_resume
from sumtune.train import train
from test_training import Interrupt, InterruptAt, tiny_config

REPO = Path(__file__).resolve().parents[1]
TINY_BART = REPO / "config" / "model_configs" / "tiny_bart.yaml"
STEP_LINE = re.compile(r"sumtune\.file: step (\d+)/\d+ ")
INTERRUPTED = ["training.max_steps=4", "training.save_strategy=steps", "training.save_steps=2",
               "training.eval_strategy=no", "training.save_total_limit=3", "data.eval_file=null"]


def file_facts(directory: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``directory``: (sha256, mtime in ns)."""
    return {str(path.relative_to(directory)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(directory.rglob("*")) if path.is_file()}


# --------------------------------------------------------------------------------------------------
# Half-written checkpoints


def fake_checkpoint(run: Run, step: int, state: str | None = '{"global_step": STEP}', weights: bool = True) -> Path:
    directory = run.checkpoint_dir / f"checkpoint-{step}"
    directory.mkdir(parents=True)
    if state is not None:
        (directory / "trainer_state.json").write_text(state.replace("STEP", str(step)))
    if weights:
        (directory / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return directory


def test_the_newest_complete_checkpoint_is_chosen_and_half_written_ones_are_skipped_with_a_warning(tmp_path, caplog):
    run = new_run("tiny", tmp_path)
    complete = fake_checkpoint(run, 10)
    fake_checkpoint(run, 9)  # older, complete
    fake_checkpoint(run, 12, state=None)  # killed before trainer_state.json (the Trainer writes it last)
    fake_checkpoint(run, 14, state='{"global_step": 14, "log_hi')  # killed while writing it
    fake_checkpoint(run, 16, weights=False)  # no weights at all
    (run.checkpoint_dir / "checkpoint-18.tmp").mkdir()  # not a Trainer checkpoint name
    with caplog.at_level(logging.WARNING, logger="sumtune"):
        assert run.last_checkpoint() == complete
    skipped = " ".join(record.getMessage() for record in caplog.records)
    for step, why in ((12, "has no trainer_state.json"), (14, "trainer_state.json is cut short"), (16, "holds no model weights")):
        assert re.search(rf"skipping \S+checkpoint-{step}: [^(]*{why}", skipped), (step, skipped)
    assert "checkpoint-18" not in skipped and "checkpoint-9" not in skipped


def test_a_run_with_only_half_written_checkpoints_cannot_be_resumed(tmp_path):
    run = new_run("tiny", tmp_path)
    run.update(status="running")
    fake_checkpoint(run, 2, state=None)
    with pytest.raises(FileNotFoundError, match="no run of 'tiny' with a checkpoint .*half-written ones do not count"):
        run_to_resume("tiny", tmp_path)
    fake_checkpoint(run, 1)
    assert run_to_resume("tiny", tmp_path).run_id == run.run_id
