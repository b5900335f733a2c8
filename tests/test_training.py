"""Tiny models from scratch, trained for real on the bundled sample data (CPU, offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from sumtune.artifacts import find_runs
from sumtune.config import load_config
from sumtune.train import train

REPO = Path(__file__).resolve().parents[1]
FAST = [
    "training.num_train_epochs=4",
    "training.logging_steps=2",
    "training.save_strategy=no",
    "evaluation.max_examples=3",
    "generation.max_new_tokens=16",
]


def tiny_config(tmp_path, family: str, *overrides: str):
    """A tiny_* config from config/model_configs, or tiny_llama's with another chat family swapped in."""
    shipped = REPO / "config" / "model_configs" / f"tiny_{family}.yaml"
    path = shipped if shipped.exists() else REPO / "config" / "model_configs" / "tiny_bart.yaml"
    extra = [] if shipped.exists() else [f"model.architecture={family}", f"name=tiny_{family}"]
    return load_config(path, [f"output.root={tmp_path}", *FAST, *extra, *overrides])


@pytest.fixture(autouse=True)
def in_the_repository(monkeypatch):
    """The configs' data paths are relative to the repository root; the directory is restored after each test."""
    monkeypatch.chdir(REPO)


class WeightWatcher(TrainerCallback):
    """Copies of the trainable (LoRA) and frozen weights at the start and end of training."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.trainable = {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("family", ["bart", "t5", "gpt2", "llama", "mt5", "kobart", "qwen3", "exaone"])
def test_lora_run_learns_and_writes_artifacts(tmp_path, family):
    watcher = WeightWatcher()
    result = train(tiny_config(tmp_path, family), callbacks=[watcher])
    run = result.run
    manifest = json.loads(run.run_json.read_text())

    assert manifest["status"] == "completed"
    assert manifest["last_logged_loss"] < manifest["first_logged_loss"], manifest
    assert manifest["backend"] == "peft" and manifest["quantization"] is None
    assert 0 < manifest["trainable_params"] < manifest["total_params"]
    assert manifest["train_tokens"] > 0 and manifest["train_tokens_per_s"] > 0

    # LoRA trained the adapter and left the base weights alone
    lora = [n for n in watcher.trainable if "lora_" in n]
    assert lora, watcher.trainable
    assert any(not torch.equal(watcher.before[n], watcher.after[n]) for n in lora)
    frozen = [n for n in watcher.before if n not in watcher.trainable]
    assert all(torch.equal(watcher.before[n], watcher.after[n]) for n in frozen)

    assert (run.model_dir / "adapter_model.safetensors").is_file()
    assert (run.model_dir / "adapter_config.json").is_file()
    assert (run.model_dir / "tokenizer.json").is_file()
    assert (run.model_dir / "base_model" / "model.safetensors").is_file()  # scratch init kept for the adapter
    assert "architecture: " + family in (run.model_dir / "config.yaml").read_text()
    adapter = load_file(str(run.model_dir / "adapter_model.safetensors"))
    assert any("lora_B" in key and adapter[key].abs().sum() > 0 for key in adapter)

    log_text = run.log_path.read_text(encoding="utf-8")  # one training example, special tokens visible
    assert "train example as the model sees it" in log_text and "labels (" in log_text and "</s>" in log_text

    metrics = json.loads((run.results_dir / "metrics.json").read_text())
    assert metrics["n_examples"] == 3
    assert metrics["score"] == pytest.approx(metrics["rouge1"] + metrics["rouge2"] + metrics["rougeL"])
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("rouge1", "rouge2", "rougeL"))
    header = (run.results_dir / "predictions.csv").read_text().splitlines()[0]
    assert header == "id,prediction,reference"
    assert run.log_path.is_file() and "backend: peft" in run.log_path.read_text()
    for key in ("name", "architecture", "checkpoint", "backend_reason", "versions", "wall_time_s", "peak_memory_mb"):
        assert manifest[key], key


def test_full_finetuning_saves_whole_model(tmp_path):
    result = train(tiny_config(tmp_path, "bart", "qlora.use_qlora=false"))
    manifest = json.loads(result.run.run_json.read_text())
    assert manifest["backend"] == "full" and manifest["trainable_params"] == manifest["total_params"]
    assert (result.run.model_dir / "model.safetensors").is_file()
    assert not (result.run.model_dir / "adapter_config.json").exists()


def test_runs_are_never_overwritten(tmp_path):
    cfg = tiny_config(tmp_path, "gpt2", "training.max_steps=2", "data.eval_file=null")
    first, second = train(cfg).run, train(cfg).run
    assert first.run_id != second.run_id
    assert first.model_dir.is_dir() and second.model_dir.is_dir()


def test_the_same_config_and_seed_train_to_the_same_weights(tmp_path):
    """A scratch model's initial weights and the training that follows depend only on training.seed,
    so that rerunning a config (or comparing runs in a report) gives the same numbers."""
    cfg = tiny_config(tmp_path, "bart", "training.max_steps=3", "data.eval_file=null")
    watchers = [WeightWatcher(), WeightWatcher(), WeightWatcher()]
    for watcher, seed in zip(watchers, (42, 42, 7)):
        train(cfg.model_copy(update={"training": cfg.training.model_copy(update={"seed": seed})}), callbacks=[watcher])
    first, again, other_seed = watchers
    assert first.before.keys() == again.before.keys() == other_seed.before.keys()
    for name in first.after:
        assert torch.equal(first.before[name], again.before[name]), name
        assert torch.equal(first.after[name], again.after[name]), name
    assert any(not torch.equal(first.before[n], other_seed.before[n]) for n in first.before)


class Interrupt(Exception):
    pass


class InterruptAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Interrupt(f"simulated interruption at step {self.step}")


class StepRecorder(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_resume_continues_an_interrupted_run_from_its_last_checkpoint(tmp_path):
    overrides = ["training.max_steps=6", "training.save_strategy=steps", "training.save_steps=2",
                 "training.eval_strategy=no", "training.save_total_limit=3", "training.logging_steps=3"]
    cfg = tiny_config(tmp_path, "bart", *overrides)
    with pytest.raises(Interrupt):
        train(cfg, callbacks=[InterruptAt(5)])
    [interrupted] = find_runs(cfg.name, tmp_path)
    assert json.loads(interrupted.run_json.read_text())["status"] == "failed"
    assert interrupted.last_checkpoint().name == "checkpoint-4"

    recorder = StepRecorder()
    resumed = train(cfg, resume=True, callbacks=[recorder]).run
    assert resumed.run_id == interrupted.run_id  # same run, continued
    assert recorder.steps == [5, 6]  # only the steps after the checkpoint ran
    manifest = json.loads(resumed.run_json.read_text())
    assert manifest["status"] == "completed" and manifest["train_steps"] == 6 and manifest["resumed_from_step"] == 4
    assert len(find_runs(cfg.name, tmp_path)) == 1
    uninterrupted = json.loads(train(tiny_config(tmp_path / "again", "bart", *overrides)).run.run_json.read_text())
    assert manifest["train_loss"] == pytest.approx(uninterrupted["train_loss"], abs=1e-6)  # all 6 steps, not the last 2
    with pytest.raises(FileExistsError, match="already completed"):
        train(cfg, resume=True)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run of 'tiny_bart' with a checkpoint"):
        train(tiny_config(tmp_path, "bart"), resume=True)


def test_missing_pretrained_checkpoint_fails_in_one_clear_message(tmp_path):
    config = tmp_path / "missing.yaml"
    config.write_text(
        "_base_: " + str(REPO / "config/model_configs/bart_base.yaml") + "\n"
        "model: {checkpoint: sumtune-tests/no-such-model}\n"
        f"output: {{root: {tmp_path}}}\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run([sys.executable, "-m", "sumtune.cli", "train", str(config)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "sumtune-tests/no-such-model" in done.stderr
    assert str(tmp_path / "hf") in done.stderr  # the cache directory it looked in
    assert "huggingface-cli download sumtune-tests/no-such-model" in done.stderr
    assert "Traceback" not in done.stderr
    [run] = find_runs("missing", tmp_path)  # its own stem: a run name is never inherited from the base
    manifest = json.loads(run.run_json.read_text())
    assert manifest["status"] == "failed" and "no-such-model" in manifest["error"]
