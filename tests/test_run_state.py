"""Broken run state (issue 26): two processes on one run, a corrupt or half-saved run, a full disk at a
checkpoint, Ctrl-C, and a SUMTUNE_MODEL_<NAME> pin to the wrong run. Runs are written by hand where
no training is needed; two tests train the tiny BART for 4 steps."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import transformers
from safetensors.numpy import save_file

import sumtune
from sumtune import records
from sumtune.artifacts import Run, find_runs, new_run
from sumtune.cli import main
from sumtune.config import load_config
from sumtune.distributed import open_run
from sumtune.trained import RunError, find_run_dir
from sumtune.train import CheckpointSaveError, train

from test_models import fake_run
from test_training import FAST, tiny_config

REPO = Path(__file__).resolve().parents[1]
TINY_BART = REPO / "config" / "model_configs" / "tiny_bart.yaml"
CODE = Path(sumtune.__file__).resolve().parents[1]
CHECKPOINTED = ["training.max_steps=4", "training.save_strategy=steps", "training.save_steps=2",
                "training.eval_strategy=no", "training.save_total_limit=3", "data.eval_file=null"]


@pytest.fixture(autouse=True)
def in_the_repository(monkeypatch):
    """The shipped configs' data paths are relative to the repository root."""
    monkeypatch.chdir(REPO)


def resumable_run(root: Path, name: str = "tiny_bart") -> Run:
    """A failed run with one complete (hand-made) checkpoint, as ``--resume`` finds it."""
    run = new_run(name, root)
    (run.model_dir / "config.yaml").write_text(f"name: {name}\n")
    run.update(name=name, run_id=run.run_id, status="failed", error="RuntimeError: earlier")
    checkpoint = run.checkpoint_dir / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text('{"global_step": 2}')
    save_file({"w": np.zeros(4, dtype=np.float32)}, str(checkpoint / "adapter_model.safetensors"))
    return run


class CtrlCAt(transformers.TrainerCallback):
    """Ctrl-C after step 3 (checkpoint-2 is saved, checkpoint-4 not yet)."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt


def weights(path: Path) -> Path:
    save_file({"lora_A": np.zeros((8, 8), dtype=np.float32)}, str(path))
    return path


# --- two processes on one run ------------------------------------------------------------------------


def test_a_second_process_on_a_held_run_is_refused_in_one_line_and_a_killed_holder_holds_nothing(tmp_path, capsys):
    overrides = [f"output.root={tmp_path}", *FAST, *CHECKPOINTED]
    with pytest.raises(KeyboardInterrupt):
        train(load_config(TINY_BART, overrides), callbacks=[CtrlCAt()])
    [run] = find_runs("tiny_bart", tmp_path)
    holder = subprocess.Popen(  # another process on the run, as a second `sumtune train --resume` would be
        [sys.executable, "-c", "import time; from pathlib import Path; from sumtune.artifacts import Run; "
         f"run = Run('tiny_bart', {run.run_id!r}, Path({str(tmp_path)!r})); run.hold(); print('held', flush=True); "
         "time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(CODE)})
    try:
        assert holder.stdout.readline().strip() == "held"
        before = run.run_json.read_text(), run.log_path.read_text()
        capsys.readouterr()  # the first process's progress bars
        assert main(["train", str(TINY_BART), *[a for o in overrides for a in ("--set", o)], "--resume"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert run.run_id in err[0] and f"held by process {holder.pid} on " in err[0] and str(run.lock_path) in err[0]
        assert (run.run_json.read_text(), run.log_path.read_text()) == before  # the refused process wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the system dropped the killed holder's lock: a new resume gets the run and finishes it
    assert train(load_config(TINY_BART, overrides), resume=True).run.run_id == run.run_id
    manifest = json.loads(run.run_json.read_text())
    assert manifest["status"] == "completed" and manifest["resumed_from_step"] == 2


# --- a corrupt run; an incomplete save -------------------------------------------------------------


def test_a_corrupt_run_is_named_with_its_file_and_by_name_lookups_take_the_newest_whole_run(tmp_path, monkeypatch, capsys, caplog):
    whole = fake_run(tmp_path, "kobart_20250101-120000")
    weights(whole.model_dir / "adapter_model.safetensors")
    truncated = fake_run(tmp_path, "kobart_20250102-120000")
    full = weights(truncated.model_dir / "adapter_model.safetensors").read_bytes()
    (truncated.model_dir / "adapter_model.safetensors").write_bytes(full[: len(full) // 2])
    unreadable = fake_run(tmp_path, "kobart_20250103-120000")
    unreadable.run_json.write_text('{"status": "compl')
    monkeypatch.setenv("SUMTUNE_HOME", str(tmp_path))

    with caplog.at_level(logging.WARNING, logger="sumtune"):
        assert find_run_dir("kobart") == whole.model_dir
    passed_over = " ".join(record.getMessage() for record in caplog.records)
    assert str(unreadable.run_json) in passed_over and str(truncated.model_dir / "adapter_model.safetensors") in passed_over

    with pytest.raises(RunError, match=r"adapter_model.safetensors is unreadable .*: the run is corrupt"):
        sumtune.load(truncated.model_dir)
    test_file = tmp_path / "test.csv"
    test_file.write_text("fname,dialogue\nt1,hi\n")
    for command in (["predict", str(unreadable.model_dir), "--input", str(test_file), "--output", str(tmp_path / "o.csv")],
                    ["export", str(truncated.model_dir), "--out", str(tmp_path / "exported")],
                    ["compare", str(truncated.model_dir)]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "corrupt" in err and ("run.json" in err if command[0] == "predict" else "adapter_model.safetensors" in err)
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "exported").exists()


def test_an_interrupted_final_save_is_named_incomplete_and_resume_removes_its_staging(tmp_path, caplog):
    run = resumable_run(tmp_path)
    run.update(status="running")
    staging = run.model_dir / ".staging.1a2b3c4d.tmp"  # killed between the final save's renames
    staging.mkdir()
    (staging / "tokenizer.json").write_text("{}")
    weights(run.model_dir / "adapter_model.safetensors")
    with pytest.raises(RunError, match=r"final save was interrupted .*\.staging\.1a2b3c4d\.tmp.*--resume"):
        find_run_dir(run.model_dir)
    with caplog.at_level(logging.WARNING, logger="sumtune"):
        resumed = open_run(load_config(TINY_BART, [f"output.root={tmp_path}"], check_files=False), resume=True)
    resumed.release()
    assert not staging.exists() and f"removing {staging}" in caplog.text


# --- a full disk at a checkpoint; Ctrl-C -----------------------------------------------------------


def test_a_full_disk_at_a_checkpoint_records_the_error_and_path_and_removes_the_partial_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, "bart", *CHECKPOINTED)
    partial = []

    def disk_fills_at_step_4(trainer, output_dir):
        if trainer.state.global_step == 4:
            partial.append(Path(output_dir))
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_optimizer(trainer, output_dir)

    def write_unless_full(path, text):  # the disk stays full while the partial checkpoint takes the space
        if partial and partial[0].exists():
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write_text(path, text)

    save_optimizer, write_text = transformers.Trainer._save_optimizer_and_scheduler, records._write_text_atomic
    monkeypatch.setattr(transformers.Trainer, "_save_optimizer_and_scheduler", disk_fills_at_step_4)
    monkeypatch.setattr(records, "_write_text_atomic", write_unless_full)
    with pytest.raises(CheckpointSaveError, match=r"saving checkpoint .*checkpoint-4 failed .*No space left on device.*--resume"):
        train(cfg)
    [run] = find_runs(cfg.name, tmp_path)
    manifest = json.loads(run.run_json.read_text())
    assert manifest["status"] == "failed" and str(run.checkpoint_dir / "checkpoint-4") in manifest["error"]
    assert [p.name for p in run.checkpoints()] == ["checkpoint-2"]  # the partial one is gone, the whole one stays


def test_ctrl_c_is_recorded_as_interrupted_and_a_completed_resume_clears_the_error(tmp_path):
    cfg = tiny_config(tmp_path, "bart", *CHECKPOINTED)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[CtrlCAt()])
    [run] = find_runs(cfg.name, tmp_path)
    manifest = json.loads(run.run_json.read_text())
    assert manifest["status"] == "interrupted" and "--resume" in manifest["error"]
    train(cfg, resume=True)  # the interrupted process let go of the run
    manifest = json.loads(run.run_json.read_text())
    assert manifest["status"] == "completed" and "error" not in manifest and manifest["resumed_from_step"] == 2


# --- a pin to the wrong run ------------------------------------------------------------------------


def test_a_pin_to_a_run_of_another_task_is_refused_and_a_pin_to_a_debug_run_is_named(tmp_path, monkeypatch, capsys):
    spam = fake_run(tmp_path, "spam_20250101-120000")
    (spam.model_dir / "config.yaml").write_text("name: spam\ntask: classification\n")
    monkeypatch.setenv("SUMTUNE_MODEL_TINY_BART", str(spam.model_dir))
    with pytest.raises(RunError, match=r"SUMTUNE_MODEL_TINY_BART=.*pins the summarization run name 'tiny_bart' to a "
                                       r"classification run \('spam'\)"):
        find_run_dir("tiny_bart")
    test_file = tmp_path / "test.csv"
    test_file.write_text("fname,dialogue\nt1,hi\n")
    assert main(["predict", "tiny_bart", "--input", str(test_file), "--output", str(tmp_path / "o.csv")]) == 2
    assert "classification run" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()

    smoke = fake_run(tmp_path, "tiny_bart-debug_20250101-120000")
    (smoke.model_dir / "config.yaml").write_text("name: tiny_bart-debug\ndebug: true\n")
    monkeypatch.setenv("SUMTUNE_MODEL_TINY_BART", str(smoke.model_dir))
    assert main(["predict", "tiny_bart", "--input", str(test_file), "--output", str(tmp_path / "o.csv")]) != 0
    assert f"{smoke.model_dir} is a --debug smoke run (2 training steps)" in capsys.readouterr().err  # then loads it
