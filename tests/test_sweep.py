"""`sumtune sweep` goes on past failed configs, records each as a failed run and reports them all;
the seed `trainer.py --mode multi_model` and scripts/run_multi_model_experiments.sh do the same."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sumtune.artifacts import find_runs
from sumtune.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
TINY_BART = REPO / "config" / "model_configs" / "tiny_bart.yaml"


def write_config(directory: Path, name: str, root: Path, extra: str = "", train_file: Path = SAMPLE / "ko_train.csv") -> Path:
    """A tiny_bart-based config with absolute data paths, a fast schedule and its own output root."""
    path = directory / f"{name}.yaml"
    path.write_text(
        f"_base_: {TINY_BART}\n"
        f"name: {name}\n"
        f"data: {{train_file: {train_file}, eval_file: {SAMPLE / 'ko_dev.csv'}, test_file: null}}\n"
        "training: {max_steps: 2, eval_strategy: 'no', save_strategy: 'no', logging_steps: 1}\n"
        "evaluation: {max_examples: 2}\n"
        "generation: {max_new_tokens: 8, num_beams: 1}\n"
        f"output: {{root: {root}}}\n" + extra,
        encoding="utf-8",
    )
    return path


def manifest_of(name: str, root: Path) -> dict:
    [run] = find_runs(name, root)
    return json.loads(run.run_json.read_text(encoding="utf-8"))


def test_sweep_goes_on_past_failures_and_reports_every_run(tmp_path, capsys):
    root = tmp_path / "work"
    configs = [
        write_config(tmp_path, "no_data", root, train_file=tmp_path / "missing.csv"),  # fails validation
        write_config(tmp_path, "bad_targets", root, "qlora: {target_modules: [no_such_layer]}\n"),  # fails in train()
        write_config(tmp_path, "good", root),
    ]
    runs_file = tmp_path / "runs.txt"
    code = main(["sweep", *map(str, configs), "--out", str(tmp_path / "report"), "--runs-file", str(runs_file)])
    assert code == 1

    invalid = manifest_of("no_data", root)
    assert invalid["status"] == "failed" and "data.train_file: file not found" in invalid["error"]
    assert Path(invalid["log"]).is_file() and "missing.csv" in Path(invalid["log"]).read_text(encoding="utf-8")
    in_training = manifest_of("bad_targets", root)
    assert in_training["status"] == "failed" and "no_such_layer" in in_training["error"]
    assert Path(in_training["log"]).is_file()
    assert manifest_of("good", root)["status"] == "completed"

    assert len(runs_file.read_text().splitlines()) == 3
    with (tmp_path / "report" / "comparison.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows][0] == "good"
    dev_sha256 = hashlib.sha256((SAMPLE / "ko_dev.csv").read_bytes()).hexdigest()
    assert manifest_of("good", root)["eval_file_sha256"] == dev_sha256
    good = rows[0]
    assert (good["group"], good["rank"], good["eval file sha256"], good["examples"]) == ("1", "1", dev_sha256, "2")
    assert rows[0]["ROUGE tokenizer"].startswith("auto") and rows[0]["empty predictions"].isdigit()
    assert all(r["group"] == r["rank"] == "" for r in rows[1:])  # failed runs: shown, not ranked
    assert sorted(r["name"] for r in rows[1:]) == ["bad_targets", "no_data"]
    assert all(r["status"] == "failed" and r["error"] for r in rows[1:])
    out = capsys.readouterr()
    assert f"report: {tmp_path / 'report' / 'comparison.md'}" in out.out
    assert "2 of 3 run(s) failed" in out.err


def test_train_still_rejects_a_bad_config_without_recording_a_run(tmp_path):
    root = tmp_path / "work"
    config = write_config(tmp_path, "no_data", root, train_file=tmp_path / "missing.csv")
    assert main(["train", str(config)]) == 2
    assert not (root / "models").exists()


def test_trainer_multi_model_is_the_sweep(monkeypatch):
    spec = importlib.util.spec_from_file_location("seed_trainer", REPO / "code" / "trainer.py")
    trainer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trainer)
    calls = []
    monkeypatch.setattr(trainer, "train_configs", lambda *args, **kwargs: calls.append((args, kwargs)) or 0)
    monkeypatch.setattr(sys, "argv", ["trainer.py", "--mode", "multi_model", "--models", "tiny_bart", "tiny_t5"])
    assert trainer.main() == 0
    [(args, kwargs)] = calls
    assert [p.name for p in args[0]] == ["tiny_bart.yaml", "tiny_t5.yaml"] and kwargs == {"sweep": True, "debug": False}


@pytest.mark.skipif(sys.platform == "win32", reason="bash script")
def test_script_logs_each_model_reports_all_and_fails_if_any_failed(tmp_path):
    root = tmp_path / "work"
    configs = [write_config(tmp_path, "no_data", root, train_file=tmp_path / "missing.csv"),
               write_config(tmp_path, "typo", root, "trainig: {}\n")]
    env = dict(os.environ, EXPERIMENTS_ROOT=str(tmp_path / "experiments"), PYTHON=sys.executable)
    done = subprocess.run(["bash", str(REPO / "scripts" / "run_multi_model_experiments.sh"), *map(str, configs)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 of 2 model(s) failed: no_data typo" in done.stderr
    [log_dir] = (tmp_path / "experiments" / "logs" / "multi_model_experiments").iterdir()
    assert "file not found" in (log_dir / "no_data.log").read_text(encoding="utf-8")
    assert "trainig: unknown key" in (log_dir / "typo.log").read_text(encoding="utf-8")
    [report] = (tmp_path / "experiments" / "reports" / "multi_model_experiments").iterdir()
    markdown = (report / "comparison.md").read_text(encoding="utf-8")
    assert "| no_data_" in markdown and "| typo_" in markdown and (report / "rouge.png").is_file()
