"""Faults a run must survive or report honestly: divergence, interrupted writes, library noise."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from sumtune.artifacts import find_runs
from sumtune.cli import main
from sumtune.train import DivergenceError, train

from test_training import REPO, tiny_config

DIVERGING = ["training.learning_rate=1e6", "training.max_steps=6", "training.save_strategy=steps",
             "training.save_steps=1", "training.eval_strategy=no"]


def only_run(root: Path, name: str):
    runs = find_runs(name, root)
    assert len(runs) == 1, runs
    return runs[0], json.loads(runs[0].run_json.read_text())


def test_a_diverging_run_stops_at_the_first_non_finite_loss_and_fails(tmp_path):
    cfg = tiny_config(tmp_path, "bart", *DIVERGING)
    with pytest.raises(DivergenceError, match=r"(?i)training loss is (nan|inf) at step (\d+) of 6 \(learning rate .*lower training.learning_rate"):
        train(cfg)
    run, manifest = only_run(tmp_path, "tiny_bart")
    assert manifest["status"] == "failed"
    assert "DivergenceError" in manifest["error"] and "training.precision: fp32" in manifest["error"]
    # Checkpoints end before the diverged step: each one's logged losses are all finite.
    step = int(manifest["error"].split(" at step ")[1].split()[0])
    saved = sorted(int(p.name.split("-")[1]) for p in run.checkpoint_dir.glob("checkpoint-*"))
    assert saved and max(saved) < step
    state = json.loads((run.checkpoint_dir / f"checkpoint-{max(saved)}" / "trainer_state.json").read_text())
    assert state["global_step"] == max(saved)


def test_train_command_exits_1_on_divergence_and_a_sweep_goes_on(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    base = REPO / "config" / "model_configs" / "tiny_bart.yaml"
    diverging = tmp_path / "diverging.yaml"
    diverging.write_text(f"_base_: {base}\nname: diverging\ntraining:\n  learning_rate: 1.0e+6\n", encoding="utf-8")
    fine = tmp_path / "fine.yaml"
    fine.write_text(f"_base_: {base}\nname: fine\n", encoding="utf-8")
    common = ["--set", f"output.root={tmp_path}", "--set", "training.max_steps=4", "--set", "evaluation.max_examples=2",
              "--set", "generation.max_new_tokens=8", "--set", "training.save_strategy=no"]

    assert main(["train", str(diverging), *common]) == 1
    assert only_run(tmp_path, "diverging")[1]["status"] == "failed"

    assert main(["sweep", str(diverging), str(fine), *common, "--out", str(tmp_path / "report")]) == 1
    statuses = sorted(json.loads(run.run_json.read_text())["status"] for name in ("diverging", "fine")
                      for run in find_runs(name, tmp_path))
    assert statuses == ["completed", "failed", "failed"]
    report = (tmp_path / "report" / "comparison.md").read_text(encoding="utf-8")
    assert "diverging" in report and "fine" in report


class PoisonWeightsAt(TrainerCallback):
    """Makes the model's weights infinite after one step, as an overflow would, so the eval that follows sees it."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                next(p for p in model.parameters() if p.requires_grad).fill_(float("inf"))


def test_a_non_finite_eval_loss_stops_the_run_before_that_step_is_saved(tmp_path):
    cfg = tiny_config(tmp_path, "bart", "training.max_steps=4", "training.eval_strategy=steps", "training.eval_steps=2",
                      "training.save_strategy=steps", "training.save_steps=1")
    with pytest.raises(DivergenceError, match=r"eval loss is (nan|inf) at step 2 of 4"):
        train(cfg, callbacks=[PoisonWeightsAt(2)])
    run, manifest = only_run(tmp_path, "tiny_bart")
    assert manifest["status"] == "failed"
    assert [p.name for p in run.checkpoint_dir.glob("checkpoint-*")] == ["checkpoint-1"]
