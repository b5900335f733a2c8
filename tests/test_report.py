"""`sumtune report` from hand-written run.json files laid out like real runs (no training)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from sumtune.cli import main
from sumtune.report import COLUMNS, ReportError, find_run_json, headline_line, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_run(root: Path, run_id: str, status: str = "completed", scores=None, in_metrics_json=False,
             scored_on: dict | None = None, **facts) -> str:
    """models/{run_id}/ and outputs/{run_id}/results/run.json (+ metrics.json) as train() leaves them.

    ``scored_on`` overrides the metrics' n_examples / tokenizer and adds eval_file_sha256 (older runs lack it)."""
    (root / "models" / run_id).mkdir(parents=True)
    results = root / "outputs" / run_id / "results"
    results.mkdir(parents=True)
    manifest = dict(name=run_id.rsplit("_", 1)[0], run_id=run_id, architecture="bart", checkpoint="scratch:tiny",
                    backend="peft", backend_reason="LoRA via PEFT (qlora.use_unsloth is false)", quantization=None,
                    trainable_params=37440, total_params=465472, train_time_s=16.5, wall_time_s=29.6,
                    train_tokens_per_s=226.8, peak_memory_mb=1126.3, status=status, log=f"logs/{run_id}.log")
    manifest.update(facts)
    if scores is not None:
        metrics = dict(zip(("rouge1", "rouge2", "rougeL"), scores), score=sum(scores), n_examples=3, tokenizer="kiwi")
        metrics.update(scored_on or {})
        (results / "metrics.json").write_text(json.dumps(metrics))
        if not in_metrics_json:
            manifest["metrics"] = metrics
    (results / "run.json").write_text(json.dumps(manifest))
    return run_id


@pytest.fixture
def run_dirs(tmp_path) -> list[Path]:
    root = tmp_path / "work"
    ids = [
        fake_run(root, "middle_20250101-000001", scores=(0.30, 0.10, 0.25)),
        fake_run(root, "broken_20250101-000002", status="failed", scores=None, architecture="t5",
                 error="ConfigError: data.train_file: file not found: a|b.csv\nsecond line"),
        fake_run(root, "best_20250101-000003", scores=(0.40, 0.20, 0.35), in_metrics_json=True,
                 backend_reason="reason with | a pipe"),
        fake_run(root, "worst_20250101-000004", scores=(0.10, 0.00, 0.05)),
    ]
    # models/ and outputs/ (and outputs/.../results) directories are all accepted
    return [root / "models" / ids[0], root / "outputs" / ids[1], root / "outputs" / ids[2] / "results",
            root / "models" / ids[3]]


HEADLINE = ["rank", "run", "model", "method", "ROUGE-1", "ROUGE-2", "ROUGE-L", "gain over base", "examples",
            "train time (s)", "peak memory (MB)", "status"]


def csv_table(out: Path, name: str = "comparison.csv") -> list[dict]:
    return list(csv.DictReader(io.StringIO((out / name).read_text(encoding="utf-8"))))


def table_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def test_markdown_is_sorted_by_score_with_the_failed_run_last(run_dirs, tmp_path):
    out = write_report(run_dirs, tmp_path / "report")
    markdown = (out / "comparison.md").read_text(encoding="utf-8")
    header, *rows = table_rows(markdown)
    assert header == HEADLINE and all(len(row) == len(header) for row in rows), "an unescaped | would add a column"
    runs = [row[header.index("run")] for row in rows]
    assert runs == ["best_20250101-000003", "middle_20250101-000001", "worst_20250101-000004", "broken_20250101-000002"]
    assert rows[0][header.index("ROUGE-1")] == "0.4000"  # from metrics.json when run.json has none
    assert [row[header.index("rank")] for row in rows] == ["1", "2", "3", ""]
    assert rows[0][header.index("method")] == "LoRA (peft)" and rows[0][header.index("model")] == "bart scratch:tiny"
    failed = rows[-1]
    assert failed[header.index("status")] == "failed"
    assert "## Failed runs" in markdown and "logs/broken_20250101-000002.log" in markdown
    assert "file not found: a|b.csv\nsecond line" in markdown.split("## Failed runs")[1]
    assert f"Every column ({len(COLUMNS)}) is in [comparison.csv](comparison.csv)." in markdown  # an error: all of them
    assert all(len(line) <= 160 for line in markdown.splitlines() if line.startswith("|"))



def test_csv_parses_back_with_full_values(run_dirs, tmp_path):
    out = write_report(run_dirs, tmp_path / "report")
    rows = list(csv.DictReader(io.StringIO((out / "comparison.csv").read_text(encoding="utf-8"))))
    assert [r["run"] for r in rows][0] == "best_20250101-000003" and rows[-1]["status"] == "failed"
    assert float(rows[1]["ROUGE-1"]) == pytest.approx(0.30)
    assert rows[-1]["error"] == "ConfigError: data.train_file: file not found: a|b.csv\nsecond line"
    assert rows[0]["trainable params"] == "37440"


def test_html_is_self_contained_and_the_chart_is_a_png(run_dirs, tmp_path):
    out = write_report(run_dirs, tmp_path / "report")
    page = (out / "comparison.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://", page)
    assert "<style>" in page and 'src="data:image/png;base64,' in page
    assert "a|b.csv" in page and "<script" not in page
    png = (out / "rouge.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and b"http" not in png  # not even in the PNG's metadata
    assert sorted(p.name for p in out.iterdir()) == ["comparison.csv", "comparison.html", "comparison.md", "rouge.png"]


def test_no_scored_run_still_gives_a_chart(tmp_path):
    run_id = fake_run(tmp_path, "only_20250101-000000", status="failed", error="boom")
    out = write_report([tmp_path / "models" / run_id], tmp_path / "report")
    assert (out / "rouge.png").read_bytes().startswith(PNG_MAGIC)


def test_a_directory_without_run_json_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="no run.json found"):
        find_run_json(tmp_path)


def test_cli_writes_to_reports_timestamp_by_default(run_dirs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", *map(str, run_dirs)]) == 0
    [directory] = (tmp_path / "reports").iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}", directory.name)
    assert f"reports/{directory.name}/comparison.md" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing")]) == 2


SHA_DEV = "a" * 12 + "1" * 52
SHA_OTHER = "b" * 12 + "2" * 52


def test_runs_scored_on_different_data_are_ranked_only_within_their_group(tmp_path):
    root = tmp_path / "work"
    on = lambda sha, n=40, tokenizer="kiwi": dict(eval_file_sha256=sha, n_examples=n, tokenizer=tokenizer,
                                                  n_empty_predictions=0)
    ids = [
        fake_run(root, "a_20250101-000001", scores=(0.3, 0.1, 0.2), scored_on=on(SHA_DEV, tokenizer="auto(english)")),
        fake_run(root, "b_20250101-000002", scores=(0.2, 0.1, 0.1), scored_on=on(SHA_DEV, tokenizer="auto(kiwi)")),
        fake_run(root, "c_20250101-000003", scores=(0.5, 0.3, 0.4), scored_on=on(SHA_OTHER)),  # best, other file
        fake_run(root, "d_20250101-000004", scores=(0.4, 0.2, 0.3), scored_on=on(SHA_DEV, tokenizer="english")),
        fake_run(root, "e_20250101-000005", scores=(0.6, 0.4, 0.5), scored_on=on(SHA_DEV, n=20)),
        fake_run(root, "f_20250101-000006", scores=(0.1, 0.0, 0.1),
                 scored_on=on(SHA_DEV, tokenizer="auto(kiwi+english)") | dict(n_empty_predictions=31)),
        fake_run(root, "g_20250101-000007", status="failed", error="RuntimeError: boom"),
    ]
    out = write_report([root / "models" / run_id for run_id in ids], tmp_path / "report")

    markdown = (out / "comparison.md").read_text(encoding="utf-8")
    top = markdown.split("| rank")[0]
    assert "not all comparable" in top and "4 groups" in top
    assert f"group 1: eval file sha256 {SHA_DEV[:12]}, 40 examples, ROUGE tokenizer auto (3 run(s))" in top
    for line in (f"{SHA_OTHER[:12]}, 40 examples, ROUGE tokenizer kiwi",
                 f"{SHA_DEV[:12]}, 20 examples, ROUGE tokenizer kiwi",
                 f"{SHA_DEV[:12]}, 40 examples, ROUGE tokenizer english"):
        assert line in top
    header, *rows = table_rows(markdown)
    ranked = [(row[header.index("rank")], row[header.index("run")][0]) for row in rows]  # rank: group.rank
    assert ranked[:3] == [("1.1", "a"), ("1.2", "b"), ("1.3", "f")]  # all three: tokenizer auto
    assert sorted(ranked[3:6], key=lambda r: r[1]) == [("2.1", "c"), ("3.1", "d"), ("4.1", "e")] or \
        sorted(rank.split(".")[1] for rank, _ in ranked[3:6]) == ["1", "1", "1"]  # each alone
    assert {rank.split(".")[0] for rank, _ in ranked[3:6]} == {"2", "3", "4"}
    assert ranked[6] == ("", "g")  # the failed run is shown, outside the ranking
    assert "rank 2.1: group 2, rank 1." in markdown

    table = csv_table(out)
    f_row = table[2]
    assert f_row["eval file sha256"] == SHA_DEV and f_row["examples"] == "40"
    assert f_row["empty predictions"] == "31" and f_row["ROUGE tokenizer"] == "auto(kiwi+english)"
    assert {r["eval file sha256"] for r in table[:6]} == {SHA_DEV, SHA_OTHER}  # in full
    assert [(r["group"], r["rank"]) for r in table[:3]] == [("1", "1"), ("1", "2"), ("1", "3")]
    assert table[-1]["group"] == "" and table[-1]["status"] == "failed"
    page = (out / "comparison.html").read_text(encoding="utf-8")
    assert "not all comparable" in page.split("<table")[0] and "<th>eval file sha256</th>" in page


def test_runs_without_an_eval_hash_are_grouped_as_unknown_and_the_report_says_so(run_dirs, tmp_path):
    markdown = (write_report(run_dirs, tmp_path / "alone") / "comparison.md").read_text(encoding="utf-8")
    top = markdown.split("| rank")[0]
    assert "3 scored run(s) recorded no eval file hash" in top and "not all comparable" not in top  # one group
    assert [row["eval file sha256"] for row in csv_table(tmp_path / "alone")] == ["unknown"] * 3 + [""]

    newer = fake_run(tmp_path / "work", "newer_20250102-000000", scores=(0.1, 0.1, 0.1),
                     scored_on=dict(eval_file_sha256=SHA_DEV))
    markdown = (write_report([*run_dirs, tmp_path / "work" / "models" / newer], tmp_path / "mixed")
                / "comparison.md").read_text(encoding="utf-8")
    top = markdown.split("| rank")[0]
    assert "2 groups" in top and "unknown eval file, 3 examples, ROUGE tokenizer kiwi (3 run(s))" in top
    header, *rows = table_rows(markdown)
    assert rows[0][header.index("run")] == "newer_20250102-000000"  # a known eval file first, ranked 1 alone
    assert rows[0][header.index("rank")] == "1.1" and rows[1][header.index("rank")] == "2.1"


def test_a_chart_that_fails_to_save_leaves_the_previous_chart_whole(run_dirs, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    out = write_report(run_dirs, tmp_path / "report")
    before = (out / "rouge.png").read_bytes()

    def save_half_then_fail(self, path, **kwargs):
        Path(path).write_bytes(PNG_MAGIC + b"half a chart")
        raise OSError("No space left on device")

    monkeypatch.setattr(Figure, "savefig", save_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_report(run_dirs, out)
    assert (out / "rouge.png").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["comparison.csv", "comparison.html", "comparison.md", "rouge.png"]


def test_base_scores_gain_degenerate_counts_and_warnings_are_in_the_report(tmp_path):
    root = tmp_path / "work"
    below = "training did not pay: the fine-tuned model scores below its base model on the same dev examples (...)"
    loops = "3 of 3 predictions (100%) are degenerate: 3 repeat a phrase (a word 3-gram 3 times or more). ..."
    base = dict(rouge1=0.5, rouge2=0.2, rougeL=0.4, score=1.1, n_examples=3)
    gain = {"score": {"base": 1.1, "fine_tuned": 0.45, "gain": -0.65}}
    ids = [fake_run(root, "worse_20250101-000001", scores=(0.2, 0.05, 0.2), baseline={"status": "scored", "metrics": base},
                    base_vs_fine_tuned=gain, below_base=True, warnings=[loops, below]),
           fake_run(root, "scratch_20250101-000002", scores=(0.1, 0.0, 0.1), baseline={"status": "skipped", "reason": "x"})]
    ids_paths = [root / "models" / run_id for run_id in ids]
    for run_id in ids:  # the degenerate counts the run recorded
        run_json = root / "outputs" / run_id / "results" / "run.json"
        manifest = json.loads(run_json.read_text())
        manifest["metrics"].update(n_cut_at_max_new_tokens=1, n_repeating_predictions=3, n_degenerate_predictions=3)
        run_json.write_text(json.dumps(manifest))
    out = write_report(ids_paths, tmp_path / "report")
    markdown = (out / "comparison.md").read_text(encoding="utf-8")
    header, *rows = table_rows(markdown)
    worse, scratch = ({h: cell for h, cell in zip(header, row)} for row in rows)
    assert (worse["gain over base"], scratch["gain over base"]) == ("-0.6500", "")
    worse, scratch = csv_table(out)
    assert (float(worse["base ROUGE-1"]), float(worse["base ROUGE-L"]), scratch["base ROUGE-1"]) == (0.5, 0.4, "")
    assert (worse["cut at max_new_tokens"], worse["repeating predictions"]) == ("1", "3")
    warnings = markdown.split("## Warnings", 1)[1].split("## Summaries")[0]
    assert f"**worse_20250101-000001**: {loops} **{below}**" in warnings and "scratch_" not in warnings
    page = (out / "comparison.html").read_text(encoding="utf-8")
    assert f'<strong class="below-base">{below}</strong>' in page
    assert (float(worse["base ROUGE-2"]), float(worse["gain over base"])) == (0.2, -0.65)


def test_a_headline_line_shortens_long_run_and_model_names_to_160_characters():
    from sumtune.report import HEADLINE as COLUMNS_SHOWN

    cells = ["10.12", "llama_3.2_korean_3b_with_a_much_longer_experiment_name_20250101-120000",
             "Bllossom/llama-3.2-Korean-Bllossom-3B-and-more", "QLoRA (unsloth)", "0.3450", "0.1010", "0.2850",
             "+0.1800", "12,345", "12,345.6", "123,456", "completed"]
    line = headline_line(cells, COLUMNS_SHOWN)
    assert len(line) <= 160 and len(COLUMNS_SHOWN) <= 12
    run, model = line.split(" | ")[1:3]
    assert run.startswith("llama_3") and run.endswith("_20250101-120000") and "…" in run  # the timestamp stays
    assert model.startswith("Bllossom/") and model.endswith("…")
    assert headline_line(["1", "tiny_bart_20250101-000000"] + cells[2:], COLUMNS_SHOWN).count("…") <= 1


def test_the_report_shows_summaries_side_by_side_and_loss_curves_of_tiny_runs(tiny_trained_runs, tmp_path):
    old = fake_run(tmp_path, "old_20250101-000000", scores=(0.1, 0.0, 0.1))  # no predictions.csv, no losses.csv
    runs = [tiny_trained_runs["bart"], tiny_trained_runs["llama"]]
    out = write_report([run.model_dir for run in runs] + [tmp_path / "models" / old], tmp_path / "report")
    markdown = (out / "comparison.md").read_text(encoding="utf-8")
    headline = markdown.split("## Warnings")[0].split("## Summaries")[0]
    header, *rows = table_rows(headline)
    assert header == HEADLINE and len(rows) == 3
    assert all(len(line) <= 160 for line in headline.splitlines() if line.startswith("|"))
    page = (out / "comparison.html").read_text(encoding="utf-8")
    summaries = page.split("<h2>Summaries</h2>")[1]
    for run in runs:
        mine = summaries.split(f"<h3>{run.run_id}</h3>")[1].split("<h3>")[0]
        assert mine.count('<table class="example">') >= 3  # best, worst, at random: 3 dev examples
        assert mine.count("<th>reference</th>") == mine.count("<th>prediction</th>") >= 3
        assert (out / f"loss_{run.run_id}.png").read_bytes().startswith(PNG_MAGIC)
        assert f"![Training loss of {run.run_id}](loss_{run.run_id}.png)" in markdown
        losses = csv_table(run.results_dir, "losses.csv")
        assert [int(row["step"]) for row in losses] == [2, 4] and all(float(row["loss"]) > 0 for row in losses)
    old_part = markdown.split(f"### {old}")[1]
    assert "no predictions.csv" in old_part and "No loss curve: the run has no losses.csv" in old_part
    side = markdown.split("## The same dialogues, side by side (group 1)")[1]
    assert side.count("| run | ROUGE-L | prediction |") >= 1
    assert all(f"| {run.run_id} |" in side for run in runs)  # each run's prediction for the same dialogue
    assert "cut at max_new_tokens" in markdown and "repeating a phrase" in markdown


def test_an_example_with_several_references_shows_each_numbered():
    from sumtune.report_examples import labelled

    assert labelled(("one", "two", "three")) == [("reference 1", "one"), ("reference 2", "two"), ("reference 3", "three")]
    assert labelled(("only", "")) == [("reference", "only")]  # predictions.csv leaves missing references empty


def test_a_run_whose_predictions_file_is_not_sumtunes_is_listed_without_examples(tmp_path):
    run_id = fake_run(tmp_path, "odd_20250101-000000", scores=(0.1, 0.0, 0.1))
    (tmp_path / "outputs" / run_id / "results" / "predictions.csv").write_text("fname,summary\na,b\n", encoding="utf-8")
    markdown = (write_report([tmp_path / "models" / run_id], tmp_path / "report") / "comparison.md").read_text()
    assert "predictions.csv has no id and prediction columns (columns: fname, summary)." in markdown.split("### odd_")[1]
