"""Faults a run must survive or report honestly: divergence, interrupted writes, library noise."""

from __future__ import annotations

import json
import logging
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


# --- atomic writes ------------------------------------------------------------------------------------


def interrupted(*args, **kwargs):
    raise KeyboardInterrupt  # what Ctrl-C or a kill between the write and the rename looks like to the writer


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_an_interrupted_file_write_leaves_the_old_file_whole(tmp_path, monkeypatch, step):
    from sumtune import records

    target = tmp_path / "run.json"
    records.write_json_atomic(target, {"status": "running", "rows": list(range(1000))})
    before = target.read_bytes()
    monkeypatch.setattr(records.os, step, interrupted)
    with pytest.raises(KeyboardInterrupt):
        records.write_json_atomic(target, {"status": "completed"})
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == []


def library_save(directory, files: dict[str, str], fail_after: int | None = None):
    """Writes files one by one into ``directory`` the way save_pretrained does, optionally dying midway."""
    for number, (name, text) in enumerate(files.items()):
        if fail_after is not None and number == fail_after:
            raise KeyboardInterrupt
        (Path(directory) / name).write_text(text, encoding="utf-8")


def test_an_interrupted_directory_save_keeps_the_old_directory(tmp_path):
    from sumtune.records import atomic_directory

    base = tmp_path / "base_model"
    with atomic_directory(base) as staging:
        library_save(staging, {"config.json": "old", "model.safetensors": "old weights"})
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(base) as staging:
            library_save(staging, {"config.json": "new", "model.safetensors": "new weights"}, fail_after=1)
    assert {p.name: p.read_text() for p in base.iterdir()} == {"config.json": "old", "model.safetensors": "old weights"}
    assert leftovers(tmp_path) == []

    with atomic_directory(base) as staging:
        library_save(staging, {"config.json": "new"})
    assert {p.name: p.read_text() for p in base.iterdir()} == {"config.json": "new"}
    assert leftovers(tmp_path) == []


def test_an_interrupted_save_beside_other_files_moves_nothing(tmp_path):
    from sumtune.records import files_moved_into

    model_dir = tmp_path / "models" / "run"
    (model_dir / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    with files_moved_into(model_dir) as staging:
        library_save(staging, {"adapter_model.safetensors": "v1", "tokenizer.json": "v1"})
    with pytest.raises(KeyboardInterrupt):
        with files_moved_into(model_dir) as staging:
            library_save(staging, {"adapter_model.safetensors": "v2", "tokenizer.json": "v2"}, fail_after=1)
    assert (model_dir / "adapter_model.safetensors").read_text() == "v1"
    assert (model_dir / "tokenizer.json").read_text() == "v1"
    assert sorted(p.name for p in model_dir.iterdir()) == ["adapter_model.safetensors", "checkpoints", "tokenizer.json"]


def test_a_run_saves_its_model_and_scratch_base_through_staging(tmp_path, monkeypatch):
    """A trained run's model directory holds whole files and no staging leftovers; base_model/ loads."""
    from transformers import AutoModelForSeq2SeqLM

    run = train(tiny_config(tmp_path, "bart", "training.max_steps=2", "evaluation.max_examples=1")).run
    names = sorted(p.name for p in run.model_dir.iterdir())
    assert "adapter_model.safetensors" in names and "tokenizer.json" in names and "config.yaml" in names
    assert not [name for name in names if name.startswith(".")]
    assert AutoModelForSeq2SeqLM.from_pretrained(run.scratch_base_dir).config.vocab_size > 0


# --- quiet console ------------------------------------------------------------------------------------

BNB_NOISE = "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'"


def test_known_library_noise_goes_to_the_run_log_and_real_warnings_stay_visible(tmp_path, caplog):
    from sumtune.artifacts import keep_library_noise_off_the_console, new_run

    keep_library_noise_off_the_console()
    library = logging.getLogger("bitsandbytes.backends.cpu.ops")
    library.warning(BNB_NOISE)
    library.warning("CUDA kernel missing for this GPU")
    assert BNB_NOISE not in caplog.text
    assert "CUDA kernel missing for this GPU" in caplog.text

    run = new_run("quiet", tmp_path)
    run.attach_log()
    run.detach_log()
    assert f"DEBUG sumtune.file: bitsandbytes.backends.cpu.ops: {BNB_NOISE}" in run.log_path.read_text(encoding="utf-8")


def test_importing_the_training_stack_prints_no_library_noise():
    import subprocess
    import sys

    def stderr_of(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr

    if "gemm_4bit_forward" not in stderr_of("import peft"):
        pytest.skip("bitsandbytes is quiet on this CPU (no AVX512-BF16, or the kernels package is installed)")
    assert "gemm_4bit_forward" not in stderr_of("from sumtune.sweep import console_logging; console_logging(); "
                                                 "import sumtune.train")


def test_every_test_the_reliability_table_names_exists():
    import re

    table = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = re.findall(r"`(test_\w+\.py)::(\w+)", table)
    assert len({name for _, name in named}) >= 30
    missing = [f"{file}::{name}" for file, name in named
               if not re.search(rf"^def {name}\(", (REPO / "tests" / file).read_text(encoding="utf-8"), re.M)]
    assert missing == []
