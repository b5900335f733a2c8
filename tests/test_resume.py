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
from sumtune.train import train, whole_run_loss
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
# A real `sumtune train` process, killed with SIGKILL, then resumed


KILL_TEST_SETTINGS = [  # 48 examples in batches of 8: 6 steps an epoch, so checkpoint-8 lies inside the second
    "training.max_steps=16", "training.save_strategy=steps", "training.save_steps=4", "training.save_total_limit=3",
    "training.logging_steps=3",  # logs fall between checkpoints: the loss total must not depend on them lining up
    "training.group_by_length=true", "qlora.lora_dropout=0.1",  # data order and dropout must both come back
    "training.eval_strategy=no", "training.num_train_epochs=50",
    "evaluation.max_examples=4", "generation.max_new_tokens=12", "data.test_file=null",
]


def sumtune_train(root: Path, *extra: str) -> subprocess.Popen:
    """`sumtune train` tiny_bart in a process of its own; its console output goes to root/console.txt."""
    package_root = str(Path(sumtune.__file__).resolve().parents[1])  # the sumtune this test imported
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    settings = [part for item in [*KILL_TEST_SETTINGS, f"output.root={root}"] for part in ("--set", item)]
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "console.txt", "w", encoding="utf-8") as console:  # a file, not a pipe nobody reads while we wait
        return subprocess.Popen([sys.executable, "-m", "sumtune.cli", "train", str(TINY_BART), *settings, *extra],
                                cwd=REPO, env=env, stdout=console, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, root: Path) -> str:
    process.wait(timeout=300)
    output = (root / "console.txt").read_text(encoding="utf-8")
    assert process.returncode == 0, output
    return output


def wait_for_complete_checkpoint(root: Path, step: int, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        checkpoints = list((root / "models").glob(f"tiny_bart_*/checkpoints/checkpoint-{step}"))
        if checkpoints and checkpoint_problem(checkpoints[0]) is None:
            return
        if process.poll() is not None:
            console = (root / "console.txt").read_text(encoding="utf-8")
            pytest.fail(f"sumtune train ended (exit {process.returncode}) before checkpoint-{step}:\n{console}")
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"no complete checkpoint-{step} under {root} after {timeout} s")


def test_a_killed_training_process_resumes_to_the_same_result_as_an_uninterrupted_run(tmp_path):
    finish(sumtune_train(tmp_path / "reference"), tmp_path / "reference")
    [reference] = find_runs("tiny_bart", tmp_path / "reference")

    root = tmp_path / "killed"
    killed = sumtune_train(root)
    wait_for_complete_checkpoint(root, 8, killed)  # the second checkpoint
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=60) == -signal.SIGKILL
    [run] = find_runs("tiny_bart", root)
    assert json.loads(run.run_json.read_text())["status"] == "running"  # killed mid-training, nothing recorded the end
    resume_step = int(run.last_checkpoint().name.split("-")[1])
    assert 8 <= resume_step < 16
    base_before = file_facts(run.scratch_base_dir)
    log_before = run.log_path.read_text(encoding="utf-8")

    output = finish(sumtune_train(root, "--resume"), root)
    assert f"resuming from {run.checkpoint_dir / f'checkpoint-{resume_step}'}: step {resume_step} of 16 done" in output
    assert find_runs("tiny_bart", root) == [run]  # the same run, continued
    manifest = json.loads(run.run_json.read_text())
    expected = json.loads(reference.run_json.read_text())
    assert manifest["status"] == "completed"
    assert (manifest["train_steps"], manifest["resumed_from_step"], expected["resumed_from_step"]) == (16, resume_step, None)
    # the resumed process trained only the steps after the checkpoint
    resumed_log = run.log_path.read_text(encoding="utf-8")[len(log_before):]
    logged_steps = [int(step) for step in STEP_LINE.findall(resumed_log)]
    assert logged_steps and min(logged_steps) > resume_step and max(logged_steps) == 16, logged_steps
    # and ended exactly where the uninterrupted run ended
    assert manifest["train_loss"] == pytest.approx(expected["train_loss"], abs=1e-6)
    assert manifest["last_logged_loss"] == pytest.approx(expected["last_logged_loss"], abs=1e-6)
    assert manifest["train_tokens"] == expected["train_tokens"]
    adapter, expected_adapter = (load_file(str(r.model_dir / "adapter_model.safetensors")) for r in (run, reference))
    assert adapter.keys() == expected_adapter.keys()
    assert all(torch.equal(adapter[key], expected_adapter[key]) for key in adapter)
    assert json.loads((run.results_dir / "metrics.json").read_text()) == json.loads((reference.results_dir / "metrics.json").read_text())
    assert (run.results_dir / "predictions.csv").read_text() == (reference.results_dir / "predictions.csv").read_text()
    assert file_facts(run.scratch_base_dir) == base_before  # base_model/ read, not rebuilt


# --------------------------------------------------------------------------------------------------
# base_model/: the tokenizer and initial weights a run started from, loaded on --resume


@pytest.mark.parametrize("backend, kept", [
    ("qlora.use_qlora=true", {"tokenizer.json", "model.safetensors", "config.json", "sumtune_base.json"}),
    ("qlora.use_qlora=false", {"tokenizer.json", "sumtune_base.json"}),  # full: the checkpoint holds every weight
])
def test_resume_loads_the_saved_tokenizer_and_init_instead_of_rebuilding_them(tmp_path, monkeypatch, caplog, backend, kept):
    cfg = tiny_config(tmp_path, "bart", *INTERRUPTED, backend)
    with pytest.raises(Interrupt):
        train(cfg, callbacks=[InterruptAt(3)])
    [run] = find_runs(cfg.name, tmp_path)
    assert kept <= set(path.name for path in run.scratch_base_dir.iterdir())
    before = file_facts(run.scratch_base_dir)
    added = json.loads((run.scratch_base_dir / "sumtune_base.json").read_text())["new_token_ids"]
    assert added  # the speaker tags: LoRA trains their rows, so resuming must know them

    def retrained(*args, **kwargs):
        raise AssertionError("--resume trained a new tokenizer instead of loading the run's own")

    monkeypatch.setattr(loading, "train_tokenizer", retrained)
    if "model.safetensors" in kept:
        monkeypatch.setattr(loading, "build_scratch_model", lambda *a, **k: pytest.fail("--resume rebuilt the initial weights"))
    with caplog.at_level(logging.INFO, logger="sumtune"):
        train(cfg, resume=True)
    manifest = json.loads(run.run_json.read_text())
    assert manifest["status"] == "completed" and manifest["resumed_from_step"] == 2
    assert manifest["added_token_ids"] == added
    assert file_facts(run.scratch_base_dir) == before  # same files, same bytes, not even rewritten


def test_a_base_model_dir_without_its_facts_file_is_refused_not_overwritten(tmp_path):
    cfg = tiny_config(tmp_path, "bart")
    old = tmp_path / "base_model"
    old.mkdir()
    (old / "model.safetensors").write_bytes(b"weights of an older sumtune")
    with pytest.raises(ValueError, match="without its sumtune_base.json .* Start a new run"):
        loading.load_base(cfg, ["#Person1#: hi"], scratch_dir=old)
    assert (old / "model.safetensors").read_bytes() == b"weights of an older sumtune"
    assert loading.saved_scratch_base(cfg, tmp_path / "absent") is None
    (tmp_path / "empty").mkdir()
    assert loading.saved_scratch_base(cfg, tmp_path / "empty") is None  # a fresh (temporary) directory is filled


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
    (fake_checkpoint(run, 16, weights=False) / "training_args.bin").write_bytes(b"args, not weights")  # no weights
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


def test_resume_goes_on_from_the_checkpoint_before_a_half_written_one(tmp_path, caplog):
    cfg = tiny_config(tmp_path, "bart", *INTERRUPTED, "training.max_steps=6")
    with pytest.raises(Interrupt):
        train(cfg, callbacks=[InterruptAt(5)])
    [run] = find_runs(cfg.name, tmp_path)
    (run.checkpoint_dir / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4, "log_his')  # killed mid-save
    with caplog.at_level(logging.INFO, logger="sumtune"):
        train(cfg, resume=True)
    manifest = json.loads(run.run_json.read_text())
    assert manifest["status"] == "completed" and (manifest["resumed_from_step"], manifest["train_steps"]) == (2, 6)
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "skipping " + str(run.checkpoint_dir / "checkpoint-4") in messages
    assert "resuming from " + str(run.checkpoint_dir / "checkpoint-2") in messages


# --------------------------------------------------------------------------------------------------
# The loss of the whole run


def state_with(step: int, logged: list[tuple[int, float]]) -> transformers.TrainerState:
    return transformers.TrainerState(global_step=step, log_history=[{"loss": loss, "step": at} for at, loss in logged])


def test_whole_run_loss_weights_each_logged_mean_by_the_steps_it_covers():
    # steps 1-3 logged as one mean (logging_steps=3), steps 4 alone (the checkpoint's own log); then 4 more steps
    before = state_with(4, [(3, 2.0), (4, 6.0)])
    resumed_total = 4 * 1.0
    assert whole_run_loss(before, resumed_total / 8, 8) == pytest.approx((3 * 2.0 + 6.0 + 4.0) / 8)
    assert whole_run_loss(transformers.TrainerState(), 1.25, 8) == 1.25  # not resumed: the Trainer's own figure


def test_whole_run_loss_without_a_log_at_the_checkpoint_says_what_it_averages(caplog):
    before = state_with(4, [(3, 2.0)])  # step 4's loss was never logged (a checkpoint from an older sumtune)
    with caplog.at_level(logging.WARNING, logger="sumtune"):
        assert whole_run_loss(before, 4 * 1.5 / 8, 8) == pytest.approx(1.5)
    assert "averages the 4 resumed steps only" in caplog.text
