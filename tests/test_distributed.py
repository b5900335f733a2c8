"""`sumtune train` under torchrun: two CPU processes (DDP over gloo), one run, written by rank 0 only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAST = ["training.max_steps=4", "evaluation.max_examples=2", "generation.max_new_tokens=8", "generation.num_beams=1"]


def torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "sumtune.cli", "train", "config/model_configs/tiny_bart.yaml", "--set", f"output.root={tmp_path}"]
    for override in FAST:
        command += ["--set", override]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    return subprocess.run(command + list(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=150)


def only(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


def test_two_processes_make_one_run_written_by_rank_zero(tmp_path):
    done = torchrun(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    model_dir = only(list((tmp_path / "models").iterdir()))
    results = only(list((tmp_path / "outputs").iterdir())) / "results"
    assert results.parent.name == model_dir.name
    only(list((tmp_path / "logs").iterdir()))
    manifest = json.loads((results / "run.json").read_text())
    assert manifest["status"] == "completed" and manifest["processes"] == 2
    assert manifest["backend"] == "peft" and manifest["train_steps"] == 4
    assert json.loads((results / "metrics.json").read_text())["n_examples"] == 2
    assert (results / "predictions.csv").is_file()
    assert (model_dir / "adapter_model.safetensors").is_file() and (model_dir / "base_model" / "model.safetensors").is_file()
    assert done.stdout.count("ROUGE-1") == 1  # only rank 0 evaluated


def test_a_failure_on_rank_zero_stops_every_rank(tmp_path):
    done = torchrun(tmp_path, "--resume")  # nothing to resume: rank 0 fails while reserving the run
    assert done.returncode != 0
    assert "no run of 'tiny_bart' with a checkpoint" in done.stderr
    assert "rank 0 could not reserve the run directory" in done.stderr  # the other rank heard of it
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
