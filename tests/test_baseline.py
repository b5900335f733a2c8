"""Every run says whether training paid: a pretrained base is scored before training, with the run's
decoding, beside the fine-tuned model after it; a fine-tuned score below the base's is a warning.

The "pretrained" checkpoint is a tiny BART that sumtune fully fine-tuned on the dev examples and saved
to disk (so it knows them), loaded with ``model.init: pretrained`` like any local checkpoint. A LoRA run
on it at a learning rate that wrecks it (0.5) forces the below-base case."""

from __future__ import annotations

import json
import logging

import pytest

from sumtune.baseline import BASE_PREDICTIONS, CACHE_DIR, baseline_facts, cache_key
from sumtune.records import read_records
from sumtune.train import train
from test_report import table_rows
from tiny_runs import SAMPLE, tiny

DECODING = ["generation.num_beams=1", "generation.max_new_tokens=16"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A local checkpoint directory that scores well on the first dev examples: it memorised them."""
    root = tmp_path_factory.mktemp("pretrained")
    run = train(tiny(root, "bart", "qlora.use_qlora=false", "training.max_steps=50", "training.learning_rate=1e-2",
                     "training.logging_steps=25", f"data.train_file={SAMPLE / 'ko_dev.csv'}", "data.max_train_samples=3",
                     "training.per_device_train_batch_size=3", "evaluation.baseline=false", *DECODING)).run
    return run.model_dir


def on(checkpoint, root, *overrides):
    return tiny(root, "bart", "model.init=pretrained", f"model.checkpoint={checkpoint}", *DECODING, *overrides)


@pytest.fixture(scope="module")
def wrecked(pretrained, tmp_path_factory):
    """A run whose training made the model worse than its base, and the log records of it."""
    root = tmp_path_factory.mktemp("wrecked")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("sumtune").addHandler(handler)
    try:
        run = train(on(pretrained, root, "training.learning_rate=0.5")).run
    finally:
        logging.getLogger("sumtune").removeHandler(handler)
    return root, run, records


def manifest_of(run) -> dict:
    return json.loads(run.run_json.read_text(encoding="utf-8"))


def test_the_base_is_scored_before_training_and_set_beside_the_fine_tuned_scores(wrecked):
    _, run, _ = wrecked
    manifest = manifest_of(run)
    base = manifest["baseline"]
    assert base["status"] == "scored" and base["metrics"]["n_examples"] == manifest["metrics"]["n_examples"] == 3
    assert base["metrics"]["score"] > 0
    rows = read_records(run.results_dir / BASE_PREDICTIONS)
    assert [row["id"] for row in rows] == [row["id"] for row in read_records(run.results_dir / "predictions.csv")]
    table = manifest["base_vs_fine_tuned"]
    for key in ("rouge1", "rouge2", "rougeL", "score"):
        assert table[key]["base"] == base["metrics"][key]
        assert table[key]["fine_tuned"] == manifest["metrics"][key]
        assert table[key]["gain"] == pytest.approx(table[key]["fine_tuned"] - table[key]["base"])


def test_a_fine_tuned_score_below_the_base_is_a_loud_warning_at_the_end_and_in_run_json(wrecked):
    _, run, records = wrecked
    manifest = manifest_of(run)
    assert manifest["below_base"] is True
    [warning] = [w for w in manifest["warnings"] if w.startswith("training did not pay")]
    assert "ROUGE-L" in warning and BASE_PREDICTIONS in warning and "training.learning_rate" in warning
    messages = [r.getMessage() for r in records]
    done = next(i for i, m in enumerate(messages) if m.startswith("done: model"))
    last = [r for r in records[done + 1:]]
    assert any(r.levelno == logging.WARNING and "training did not pay" in r.getMessage() for r in last)
    assert any(m.startswith("base -> fine-tuned: ROUGE-1") for m in messages)


def test_a_second_run_on_the_same_base_and_examples_reuses_the_cached_scores(pretrained, wrecked, monkeypatch):
    root, first, _ = wrecked
    import sumtune.evaluation

    scored_by = []
    original = sumtune.evaluation.generate_and_score
    monkeypatch.setattr(sumtune.evaluation, "generate_and_score",
                        lambda *args: scored_by.append(args[-1]) or original(*args))
    again = train(on(pretrained, root, "training.learning_rate=1e-3", "training.max_steps=1")).run
    base = manifest_of(again)["baseline"]
    assert base["status"] == "reused" and base["metrics"] == manifest_of(first)["baseline"]["metrics"]
    assert base["cache"] == str(root / CACHE_DIR / base["key"])
    assert scored_by == ["predictions.csv"]  # the base was not generated again
    assert read_records(again.results_dir / BASE_PREDICTIONS) == read_records(first.results_dir / BASE_PREDICTIONS)


def test_the_cache_key_changes_with_the_decoding_the_prompt_and_the_examples(tmp_path):
    from sumtune.datafiles import Example

    class Tokens:
        def convert_ids_to_tokens(self, ids):
            return [f"t{i}" for i in ids]

    examples = [Example("a", "#Person1#: 안녕", "인사한다.")]
    facts = lambda cfg, shown=examples, added=(): baseline_facts(cfg, {}, Tokens(), list(added), shown, "fp32")  # noqa: E731
    key = cache_key(facts(on("ckpt", tmp_path)))
    assert key == cache_key(facts(on("ckpt", tmp_path)))
    assert key != cache_key(facts(on("ckpt", tmp_path, "generation.max_new_tokens=17")))
    assert key != cache_key(facts(on("ckpt", tmp_path, "preprocessing.prefix=요약")))
    assert key != cache_key(facts(on("ckpt", tmp_path), added=[5]))
    assert key != cache_key(facts(on("ckpt", tmp_path), [Example("a", "#Person1#: 안녕", "다른 요약.")]))
    assert key != cache_key(facts(on("other", tmp_path)))


def test_evaluation_baseline_false_and_scratch_models_skip_it_and_say_why(pretrained, tiny_trained_runs, tmp_path):
    scratch = manifest_of(tiny_trained_runs["bart"])
    assert scratch["baseline"] == {"status": "skipped",
                                   "reason": "a scratch model (model.init: scratch) knows nothing before training"}
    assert "base_vs_fine_tuned" not in scratch and "below_base" not in scratch
    off = train(on(pretrained, tmp_path, "evaluation.baseline=false", "training.max_steps=1")).run
    assert manifest_of(off)["baseline"] == {"status": "skipped", "reason": "evaluation.baseline is false"}
    assert not (off.results_dir / BASE_PREDICTIONS).exists() and not (tmp_path / CACHE_DIR).exists()


def test_the_report_shows_the_base_models_prediction_beside_the_fine_tuned_one(wrecked, tmp_path):
    from sumtune.report import write_report

    _, run, _ = wrecked
    out = write_report([run.model_dir], tmp_path / "report")
    markdown = (out / "comparison.md").read_text(encoding="utf-8")
    base = {row["id"]: row["prediction"] for row in read_records(run.results_dir / BASE_PREDICTIONS)}
    shown = markdown.split(f"### {run.run_id}")[1]
    assert shown.count("- base model: ") == shown.count("- prediction: ") == 3
    assert all(f"- base model: {' '.join(text.split())}" in shown for text in base.values())
    assert "**training did not pay" in markdown.split("## Warnings")[1]
    header, row = table_rows(markdown)[:2]
    gain = manifest_of(run)["base_vs_fine_tuned"]["score"]["gain"]
    assert row[header.index("gain over base")] == f"{gain:+.4f}" and gain < 0


def test_scoring_the_base_first_changes_nothing_in_training(pretrained, tmp_path):
    """Generation before training draws no random numbers and leaves the model as it found it: the same
    losses and the same summaries with and without the baseline."""
    runs = [train(on(pretrained, tmp_path / str(flag), f"evaluation.baseline={flag}", "training.max_steps=2",
                     "training.logging_steps=1")).run for flag in ("true", "false")]
    scored, skipped = (manifest_of(run) for run in runs)
    assert scored["baseline"]["status"] == "scored" and skipped["baseline"]["status"] == "skipped"
    assert scored["train_loss"] == skipped["train_loss"]
    for results in ("losses.csv", "predictions.csv"):
        assert read_records(runs[0].results_dir / results) == read_records(runs[1].results_dir / results), results
