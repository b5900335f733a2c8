"""Classification runs around the run itself: the report's own section, table, CSV and confusion matrices;
the sweep's console line; the model card; and the commands that only make sense for summaries. All from
hand-written run.json / metrics.json files (no training)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from sumtune import sweep
from sumtune.cli import main
from sumtune.config import load_config
from sumtune.modelcard import model_card
from sumtune.report import ReportError, write_report
from test_report import PNG_MAGIC, fake_run, table_rows

REPO = Path(__file__).resolve().parents[1]
TINY_BART = REPO / "config" / "model_configs" / "tiny_bart.yaml"
SPAM_DEV = "d" * 12 + "3" * 52
OTHER_DEV = "e" * 12 + "4" * 52
CLASSIFICATION_HEADER = ["group", "rank", "run", "name", "architecture", "checkpoint", "backend", "trainable params",
                         "accuracy", "macro-F1", "majority macro-F1", "per-class F1", "examples", "eval file sha256",
                         "train time (s)", "wall time (s)", "status", "error"]
CLASSIFICATION_HEADLINE = ["rank", "run", "model", "method", "accuracy", "macro-F1", "majority macro-F1", "examples",
                           "train time (s)", "status"]


def classification_metrics(f1s: dict, accuracy: float, matrix, sha: str = SPAM_DEV, n: int = 100) -> dict:
    """metrics.json of a classification run as the design lays it out."""
    macro = sum(f1s.values()) / len(f1s)
    return {"task": "classification", "score": macro, "macro_f1": macro, "accuracy": accuracy,
            "majority_label": next(iter(f1s)), "majority_accuracy": 0.6, "majority_macro_f1": 0.375,
            "labels": list(f1s), "per_class": {label: {"precision": f, "recall": f, "f1": f, "support": n // len(f1s)}
                                               for label, f in f1s.items()},
            "confusion_matrix": matrix, "n_examples": n, "eval_file_sha256": sha}


def classification_run(root: Path, run_id: str, metrics: dict | None = None, only_in_metrics_json: bool = False,
                       **facts) -> Path:
    """A classification run's directories; ``only_in_metrics_json``: run.json names neither the task nor the
    metrics (metrics.json alone says it is a classification run)."""
    if only_in_metrics_json:
        fake_run(root, run_id, architecture="electra", **facts)
        (root / "outputs" / run_id / "results" / "metrics.json").write_text(json.dumps(metrics))
    else:
        fake_run(root, run_id, architecture="electra", task="classification",
                 **({"metrics": metrics} if metrics else {}), **facts)
    return root / "models" / run_id


@pytest.fixture
def mixed(tmp_path) -> list[Path]:
    """Two summarization runs and three classification runs (one failed), passed in a jumbled order."""
    root = tmp_path / "work"
    return [
        classification_run(root, "electra_20250101-000002",
                           classification_metrics({"ham": 0.95, "spam": 0.91}, 0.97, [[57, 3], [4, 36]])),
        root / "models" / fake_run(root, "bart_20250101-000001", scores=(0.30, 0.10, 0.25)),
        # higher macro-F1 but lower accuracy: ranked first, by macro-F1
        classification_run(root, "kcbert_20250101-000003",
                           classification_metrics({"ham": 0.97, "spam": 0.95}, 0.96, [[59, 1], [2, 38]]),
                           only_in_metrics_json=True),
        classification_run(root, "broken_20250101-000004", status="failed", error="ValueError: example 3: true label 'spma'"),
        root / "models" / fake_run(root, "t5_20250101-000005", scores=(0.40, 0.20, 0.35)),
    ]


def test_a_report_of_both_tasks_has_both_sections_and_their_files(mixed, tmp_path):
    out = write_report(mixed, tmp_path / "report")
    assert sorted(p.name for p in out.iterdir()) == [
        "comparison.csv", "comparison.html", "comparison.md", "comparison_classification.csv",
        "confusion_electra_20250101-000002.png", "confusion_kcbert_20250101-000003.png", "rouge.png"]
    markdown = (out / "comparison.md").read_text(encoding="utf-8")
    summarization, classification = markdown.split("## Classification runs")
    assert "## Summarization runs" in summarization and "![ROUGE per run](rouge.png)" in summarization
    header, *rows = table_rows(summarization)
    assert "ROUGE-1" in header and [row[header.index("run")] for row in rows] == ["t5_20250101-000005", "bart_20250101-000001"]

    table, failed = classification.split("## Failed runs")
    header, *rows = table_rows(table)
    assert header == CLASSIFICATION_HEADLINE and all(len(row) == len(header) for row in rows)
    cell = lambda row, column: row[header.index(column)]
    assert [(cell(r, "rank"), cell(r, "run")) for r in rows] == [
        ("1", "kcbert_20250101-000003"), ("2", "electra_20250101-000002"), ("", "broken_20250101-000004")]
    best = rows[0]
    assert (cell(best, "accuracy"), cell(best, "macro-F1"), cell(best, "majority macro-F1")) == ("0.9600", "0.9600", "0.3750")
    assert cell(best, "examples") == "100" and cell(rows[2], "status") == "failed"
    assert "true label 'spma'" in failed
    assert "Ranked by macro-F1 among runs scored on the same eval file (content hash), number of examples and labels" in table
    for run_id in ("kcbert_20250101-000003", "electra_20250101-000002"):
        assert f"![Confusion matrix of {run_id}](confusion_{run_id}.png)" in table
    assert "### broken_20250101-000004 (failed)" in failed

    summary_csv = list(csv.DictReader(io.StringIO((out / "comparison.csv").read_text(encoding="utf-8"))))
    assert [r["run"] for r in summary_csv] == ["t5_20250101-000005", "bart_20250101-000001"]
    classification_csv = list(csv.DictReader(io.StringIO((out / "comparison_classification.csv").read_text(encoding="utf-8"))))
    assert list(classification_csv[0]) == CLASSIFICATION_HEADER + ["log"]
    assert [r["run"] for r in classification_csv] == ["kcbert_20250101-000003", "electra_20250101-000002", "broken_20250101-000004"]
    assert classification_csv[0]["eval file sha256"] == SPAM_DEV and float(classification_csv[1]["macro-F1"]) == pytest.approx(0.93)
    assert classification_csv[2]["log"] == "logs/broken_20250101-000004.log"
    assert classification_csv[0]["per-class F1"] == "ham 0.9700 · spam 0.9500"
    assert [(r["group"], r["rank"]) for r in classification_csv] == [("1", "1"), ("1", "2"), ("", "")]

    page = (out / "comparison.html").read_text(encoding="utf-8")
    assert page.index("<h2>Summarization runs</h2>") < page.index("<h2>Classification runs</h2>") < page.index("<h2>Failed runs</h2>")
    assert page.count('src="data:image/png;base64,') == 3 and "<th>per-class F1</th>" in page
    assert 'alt="Confusion matrix of kcbert_20250101-000003"' in page and not re.search(r"https?://", page)
    for png in out.glob("*.png"):
        assert png.read_bytes().startswith(PNG_MAGIC)


def test_a_report_of_classification_runs_only_has_no_rouge_table_or_chart(mixed, tmp_path):
    out = write_report([mixed[0], mixed[2]], tmp_path / "report")
    assert sorted(p.name for p in out.iterdir()) == [
        "comparison.html", "comparison.md", "comparison_classification.csv",
        "confusion_electra_20250101-000002.png", "confusion_kcbert_20250101-000003.png"]
    markdown = (out / "comparison.md").read_text(encoding="utf-8")
    assert "ROUGE" not in markdown and "## " not in markdown  # one section: no section headings
    header, *rows = table_rows(markdown)
    assert header == CLASSIFICATION_HEADLINE and len(rows) == 2
    assert "Every column (17) is in [comparison_classification.csv]" in markdown  # no error column without an error


def test_classification_runs_rank_only_against_the_same_eval_file_examples_and_labels(tmp_path):
    root = tmp_path / "work"
    two = {"ham": 0.8, "spam": 0.7}
    runs = [
        classification_run(root, "a_20250101-000001", classification_metrics(two, 0.8, [[5, 1], [1, 3]])),
        classification_run(root, "b_20250101-000002", classification_metrics(two | {"ham": 0.9}, 0.9, [[6, 0], [1, 3]])),
        classification_run(root, "c_20250101-000003", classification_metrics(
            {"ham": 0.99, "spam": 0.99, "phishing": 0.99}, 0.99, [[3, 0, 0], [0, 3, 0], [0, 0, 3]])),  # other labels
        classification_run(root, "d_20250101-000004", classification_metrics(two, 0.95, [[6, 0], [0, 4]], sha=OTHER_DEV)),
        classification_run(root, "e_20250101-000005", classification_metrics({0: 0.5, 1: 0.5}, 0.5, [[1, 1], [1, 1]], n=4)),
    ]
    markdown = (write_report(runs, tmp_path / "report") / "comparison.md").read_text(encoding="utf-8")
    top = markdown.split("| rank")[0]
    assert "they fall in 4 groups with a different eval file, number of examples or labels" in top
    assert f"group 1: eval file sha256 {SPAM_DEV[:12]}, 100 examples, labels ham, spam (2 run(s))" in top
    assert "labels ham, spam, phishing (1 run(s))" in top and f"{OTHER_DEV[:12]}, 100 examples" in top
    assert "4 examples, labels 0, 1 (1 run(s))" in top  # integer labels
    header, *rows = table_rows(markdown)
    ranked = [(row[header.index("rank")], row[header.index("run")][0]) for row in rows]
    assert ranked[:2] == [("1.1", "b"), ("1.2", "a")]
    assert sorted(run for rank, run in ranked[2:] if rank.endswith(".1")) == ["c", "d", "e"]  # each alone in its group


def test_the_confusion_matrix_png_writes_counts_with_true_labels_as_rows(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    drawn = {}
    save = Figure.savefig

    def look_then_save(self, path, **kwargs):
        ax = self.axes[0]
        drawn[Path(path).name.split(".")[0]] = dict(
            cells=[t.get_text() for t in ax.texts], rows=[t.get_text() for t in ax.get_yticklabels()],
            columns=[t.get_text() for t in ax.get_xticklabels()], ylabel=ax.get_ylabel(), title=ax.get_title())
        return save(self, path, **kwargs)

    monkeypatch.setattr(Figure, "savefig", look_then_save)
    run = classification_run(tmp_path / "work", "spam_20250101-000001",
                             classification_metrics({"ham": 0.9, "spam": 0.8}, 0.93, [[57, 3], [4, 36]]))
    out = write_report([run], tmp_path / "report")
    assert (out / "confusion_spam_20250101-000001.png").read_bytes().startswith(PNG_MAGIC)
    [picture] = [d for d in drawn.values() if d["cells"]]
    assert picture["cells"] == ["57", "3", "4", "36"]  # row by row: true ham, then true spam
    assert picture["rows"] == picture["columns"] == ["ham", "spam"] and picture["ylabel"] == "True label"
    assert "spam_20250101-000001" in picture["title"] and "macro-F1 0.8500" in picture["title"]


def test_a_run_without_a_usable_confusion_matrix_is_listed_without_a_png(tmp_path):
    root = tmp_path / "work"
    broken = classification_metrics({"ham": 0.9, "spam": 0.8}, 0.9, [[1, 2], [3, 4], [5, 6]])  # 3 rows for 2 labels
    fine = classification_metrics({"ham": 0.7, "spam": 0.6}, 0.7, [[1, 2], [3, 4]])
    out = write_report([classification_run(root, "odd_20250101-000001", broken),
                        classification_run(root, "fine_20250101-000002", fine)], tmp_path / "report")
    assert [p.name for p in out.glob("confusion_*.png")] == ["confusion_fine_20250101-000002.png"]
    header, *rows = table_rows((out / "comparison.md").read_text(encoding="utf-8"))
    assert [row[header.index("run")] for row in rows] == ["odd_20250101-000001", "fine_20250101-000002"]


def test_a_task_this_sumtune_does_not_know_is_a_clear_error(tmp_path):
    run_id = fake_run(tmp_path, "future_20250101-000001", task="regression")
    with pytest.raises(ReportError, match=r"run.json: task 'regression' is not one this sumtune reports "
                                          r"\(summarization, classification\)"):
        write_report([tmp_path / "models" / run_id], tmp_path / "report")


# --- around the report -----------------------------------------------------------------------------


def test_the_sweep_prints_accuracy_and_macro_f1_for_a_classification_run(tmp_path, capsys):
    run = SimpleNamespace(run_id="spam_20250101-000001", model_dir=tmp_path, results_dir=tmp_path,
                          run_json=tmp_path / "run.json", log_path=tmp_path / "x.log")
    metrics = classification_metrics({"ham": 0.95, "spam": 0.91}, 0.93, [[57, 3], [4, 36]])
    sweep._print_run_summary(SimpleNamespace(run=run, status="completed", metrics=metrics))
    line = capsys.readouterr().out.splitlines()[2]
    assert line.split() == ["accuracy", "0.9300", "macro-F1", "0.9300", "(always", "'ham':", "macro-F1", "0.3750)"]
    rouge = dict(rouge1=0.3, rouge2=0.1, rougeL=0.2, score=0.6)  # summarization metrics (no task) as before
    sweep._print_run_summary(SimpleNamespace(run=run, status="completed", metrics=rouge))
    assert "ROUGE-1 0.3000  ROUGE-2 0.1000  ROUGE-L 0.2000  score 0.6000" in capsys.readouterr().out


def test_an_invalid_classification_config_in_a_sweep_is_reported_with_the_classification_runs(tmp_path, capsys):
    root = tmp_path / "work"
    typo = tmp_path / "spam_typo.yaml"
    typo.write_text(f"name: spam_typo\ntask: classification\ntrainig: {{}}\noutput: {{root: {root}}}\n", encoding="utf-8")
    garbled = tmp_path / "garbled.yaml"  # a task no sumtune knows: recorded without one, still reported
    garbled.write_text(f"name: garbled\ntask: clasification\noutput: {{root: {root}}}\n", encoding="utf-8")
    assert main(["sweep", str(typo), str(garbled), "--out", str(tmp_path / "report")]) == 1
    report = tmp_path / "report"
    with (report / "comparison_classification.csv").open(encoding="utf-8", newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["name"] == "spam_typo" and row["status"] == "failed" and "trainig" in row["error"]
    with (report / "comparison.csv").open(encoding="utf-8", newline="") as handle:
        assert [r["name"] for r in csv.DictReader(handle)] == ["garbled"]
    out = capsys.readouterr().out
    assert "(also comparison.csv, comparison.html, comparison_classification.csv, rouge.png)" in out


def test_the_model_card_of_a_classification_run_shows_its_scores_not_rouge():
    cfg = load_config(TINY_BART, check_files=False)
    metrics = classification_metrics({"ham": 0.9, "spam": 0.8}, 0.93, [[57, 3], [4, 36]])
    card = model_card(cfg, {"task": "classification", "metrics": metrics}, "spam_20250101-000001", "(loading)",
                      "(contents)", peft=True)
    assert "Text classification:" in card and "- classification" in card.split("---")[1] and "ROUGE" not in card
    assert "| 0.9300 | 0.8500 | 0.3750 |" in card and "| spam | 0.8000 | 0.8000 | 0.8000 | 50 |" in card
    summary = model_card(cfg, {"metrics": dict(rouge1=0.3, rouge2=0.1, rougeL=0.2, score=0.6, n_examples=3)},
                         "bart_20250101-000001", "(loading)", "(contents)", peft=True)
    assert "Dialogue summarization:" in summary and "| 0.3000 | 0.1000 | 0.2000 | 0.6000 |" in summary


def test_compare_refuses_a_classification_run_before_loading_any_model(tmp_path, monkeypatch):
    from sumtune import compare as compare_module

    monkeypatch.setattr(compare_module, "measure_in_own_process", lambda *a: pytest.fail("checked before measuring"))
    cfg = load_config(TINY_BART, [f"output.root={tmp_path}"], check_files=False)
    run_dir = tmp_path / "models" / f"{cfg.name}_20250101-000001"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    results = tmp_path / "outputs" / run_dir.name / "results"
    results.mkdir(parents=True)
    (results / "run.json").write_text(json.dumps({"status": "completed", "task": "classification"}))
    with pytest.raises(compare_module.CompareError, match="is a classification run: sumtune compare times generation"):
        compare_module.compare(run_dir)


def test_sumtune_score_on_classification_predictions_says_where_their_scores_are(tmp_path, capsys):
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("id,text,label,predicted_label,probability\nm1,hi,ham,ham,0.9\n", encoding="utf-8")
    assert main(["score", "--predictions", str(predictions)]) == 2
    err = capsys.readouterr().err
    assert "holds a classification run's predictions (column 'predicted_label')" in err and "metrics.json" in err
