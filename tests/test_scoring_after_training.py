"""After generation: predictions are written before they are scored (training) or whatever they hold
(predict), and what scoring finds (empty predictions, the eval file's content hash) lands in metrics.json
and run.json. Generation is replaced by fixed texts, so no model is built."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from sumtune import generate, metrics
from sumtune.artifacts import new_run
from sumtune.config import load_config
from sumtune.data import read_examples
from sumtune.records import read_records
from sumtune.train import describe_run, evaluate_after_training

REPO = Path(__file__).resolve().parents[1]
EN_DEV = REPO / "data" / "sample" / "en_dev.csv"  # 4 rows


def started_run(tmp_path, monkeypatch, predictions: list[str], *overrides: str):
    """A run as train() has it just before evaluation, with generate_summaries returning ``predictions``."""
    monkeypatch.chdir(REPO)
    cfg = load_config(REPO / "config" / "model_configs" / "tiny_t5.yaml",
                      [f"output.root={tmp_path}", f"data.eval_file={EN_DEV}", *overrides])
    run = new_run(cfg.name, cfg.output.root)
    run.update(**describe_run(cfg, run), status="running")
    monkeypatch.setattr(generate, "generate_summaries", lambda model, tokenizer, dialogues, cfg, **options: predictions)
    examples = read_examples(cfg.data.eval_file, cfg.data)
    return cfg, run, examples


def test_predictions_are_written_even_when_scoring_fails(tmp_path, monkeypatch, caplog):
    predictions = [f"summary {i}" for i in range(4)]
    cfg, run, examples = started_run(tmp_path, monkeypatch, predictions)

    def broken_scorer(*args, **kwargs):
        raise RuntimeError("the scorer broke")

    monkeypatch.setattr(metrics, "rouge", broken_scorer)
    monkeypatch.setattr(logging.getLogger("sumtune"), "propagate", True)  # the CLI tests turn it off
    with caplog.at_level(logging.ERROR, logger="sumtune"), pytest.raises(RuntimeError, match="the scorer broke"):
        evaluate_after_training(None, None, examples, cfg, run)

    rows = read_records(run.results_dir / "predictions.csv")
    assert [row["prediction"] for row in rows] == predictions
    assert [row["id"] for row in rows] == [e.id for e in examples]
    assert not (run.results_dir / "metrics.json").exists()
    [message] = [r.getMessage() for r in caplog.records if "scoring failed" in r.getMessage()]
    assert f"sumtune score --predictions {run.results_dir / 'predictions.csv'} --tokenizer auto" in message


def test_a_model_that_writes_nothing_is_scored_counted_and_warned_about(tmp_path, monkeypatch, caplog):
    # a tiny T5 on English chat data: every summary empty, or only punctuation the English tokenizer drops
    cfg, run, examples = started_run(tmp_path, monkeypatch, [""] * 3 + ["..."], "evaluation.tokenizer=english")
    monkeypatch.setattr(logging.getLogger("sumtune"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="sumtune"):
        scores = evaluate_after_training(None, None, examples, cfg, run)

    assert (scores["n_examples"], scores["n_empty_predictions"], scores["score"]) == (4, 4, 0.0)
    on_disk = json.loads((run.results_dir / "metrics.json").read_text(encoding="utf-8"))
    assert on_disk["n_empty_predictions"] == 4
    assert len(read_records(run.results_dir / "predictions.csv")) == 4
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert "4 of 4 predictions (100%) are empty or have no tokens under the 'english' ROUGE tokenizer" in log
    assert "(4 examples, 4 empty predictions, english)" in log


def test_the_eval_file_content_hash_is_recorded_for_the_report(tmp_path, monkeypatch):
    cfg, run, examples = started_run(tmp_path, monkeypatch, ["Person1 asks Person2 for help."] * 4)
    evaluate_after_training(None, None, examples, cfg, run)

    expected = hashlib.sha256(EN_DEV.read_bytes()).hexdigest()
    manifest = json.loads(run.run_json.read_text(encoding="utf-8"))
    assert manifest["eval_file_sha256"] == expected == manifest["metrics"]["eval_file_sha256"]
    assert json.loads((run.results_dir / "metrics.json").read_text(encoding="utf-8"))["eval_file_sha256"] == expected


def test_predict_writes_its_file_and_warns_when_many_summaries_are_empty(tmp_path, monkeypatch, caplog):
    from sumtune import predict as predict_module

    monkeypatch.chdir(REPO)
    cfg = load_config(REPO / "config" / "model_configs" / "tiny_t5.yaml", [f"output.root={tmp_path}"])

    class Trained:
        def summarize(self, dialogues, progress=True, **settings):
            return ["", ""] + ["#Person1# asks for help."] * (len(dialogues) - 2)

    monkeypatch.setattr(predict_module, "find_run_dir", lambda target: tmp_path)
    monkeypatch.setattr(predict_module, "load_run_config", lambda run_dir: cfg)
    monkeypatch.setattr(predict_module, "load_trained", lambda run_dir: Trained())
    monkeypatch.setattr(logging.getLogger("sumtune"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="sumtune"):
        written = predict_module.predict("run", EN_DEV, tmp_path / "submission.csv")

    assert [row["summary"] for row in read_records(written)][:3] == ["", "", "#Person1# asks for help."]
    [warning] = [r.getMessage() for r in caplog.records]
    assert "2 of 4 predictions (50%) are empty" in warning and "max_new_tokens" in warning
