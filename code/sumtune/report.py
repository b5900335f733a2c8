"""A comparison of many runs from their run.json files: Markdown, CSV, HTML, a ROUGE bar chart and
confusion matrices.

    sumtune report models/tiny_bart_20250101-120000 outputs/tiny_t5_20250101-120130
    sumtune report outputs/*/ --out reports/kobart-vs-t5

A run is named by its models/{run_id} or outputs/{run_id}[/results] directory (or its run.json).
Scores are compared only where they mean the same thing: scored runs are grouped by (eval file
content hash, number of examples, ROUGE tokenizer) and ranked by score (ROUGE-1 + ROUGE-2 + ROUGE-L)
within their group; the top of the report says when there is more than one group, and when runs
made before sumtune recorded `eval_file_sha256` share the "unknown eval file" grouping. Runs without
a score follow, failed runs last with their error, outside the ranking. Nothing is re-run.

    {out}/comparison.md     the headline table (``HEADLINE``: 12 columns, lines of at most 160 characters),
                            warnings, each run's summaries (``report_examples``), the errors of failed runs
    {out}/comparison.csv    every column (``COLUMNS``), full values
    {out}/comparison.html   self-contained (inline CSS, charts embedded as base64); every column in a
                            collapsed details table that scrolls inside itself
    {out}/rouge.png         ROUGE-1/2/L per run, grouped bars with their values, the base model's marked
    {out}/loss_{run_id}.png each run's training (and eval) loss by step, from its losses.csv

Classification runs (run.json ``"task": "classification"``) get their own section after the
summarization one, with their own headline (accuracy, macro-F1, the majority-class baseline; per-class F1
in the CSV and the details table), ranked by macro-F1 within groups of (eval file content hash, number of examples, labels):

    {out}/comparison_classification.csv    the classification table, full values
    {out}/confusion_{run_id}.png           each scored classification run's confusion matrix (counts;
                                           rows: true label), also embedded in the HTML

A report of classification runs only has no ROUGE table, rouge.png or comparison.csv.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Sequence

from .artifacts import TIMESTAMP_FORMAT, run_task
from .baseline import BELOW_BASE
from .records import atomic_path, read_records, write_csv_atomic, write_text_atomic
from .report_examples import excerpt, labelled, results_dir, run_examples, side_by_side

ROUGE_KEYS = (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"))
ERROR_CELL_CHARS = 160
HASH_CELL_CHARS = 12
UNKNOWN_EVAL_FILE = "unknown"


class ReportError(ValueError):
    """A path that is not a run, or a run.json that cannot be read."""


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[dict], Any]  # from a run's manifest (metrics merged in); CSV gets it in full
    fmt: Callable[[Any], str] = str  # Markdown and HTML cells
    numeric: bool = False  # right-aligned


class Comparable(NamedTuple):
    """What a score depends on besides the model: runs with equal keys can be ranked together."""

    eval_file_sha256: Optional[str]  # None: a run made before sumtune recorded it
    n_examples: Optional[int]
    tokenizer: Optional[str]  # the configured one: "auto(kiwi+english)" counts as "auto"

    def describe(self) -> str:
        sha = self.eval_file_sha256
        eval_file = f"eval file sha256 {sha[:HASH_CELL_CHARS]}" if sha else "unknown eval file"
        return f"{eval_file}, {self.n_examples} examples, ROUGE tokenizer {self.tokenizer}"


class ComparableLabels(NamedTuple):
    """What a classification score depends on besides the model."""

    eval_file_sha256: Optional[str]
    n_examples: Optional[int]
    labels: tuple[str, ...]

    def describe(self) -> str:
        sha = self.eval_file_sha256
        eval_file = f"eval file sha256 {sha[:HASH_CELL_CHARS]}" if sha else "unknown eval file"
        return f"{eval_file}, {self.n_examples} examples, labels {', '.join(self.labels)}"


def _metric(key: str) -> Callable[[dict], Any]:
    return lambda m: (m.get("metrics") or {}).get(key)


def _scored(m: dict) -> bool:
    return isinstance(_metric("score")(m), (int, float))


def _ranked(m: dict) -> bool:
    return _scored(m) and m.get("status") == "completed"


def comparable(m: dict) -> Comparable:
    sha = _metric("eval_file_sha256")(m) or m.get("eval_file_sha256")
    tokenizer = _metric("tokenizer")(m)
    return Comparable(sha, _metric("n_examples")(m), tokenizer.split("(")[0] if tokenizer else None)


def comparable_labels(m: dict) -> ComparableLabels:
    labels = _metric("labels")(m) or m.get("labels") or ()
    return ComparableLabels(comparable(m).eval_file_sha256, _metric("n_examples")(m), tuple(map(str, labels)))


def _eval_file(m: dict) -> Optional[str]:
    return comparable(m).eval_file_sha256 or (UNKNOWN_EVAL_FILE if _scored(m) else None)


def _backend(m: dict) -> Optional[str]:
    backend, reason = m.get("backend"), m.get("backend_reason")
    if backend and reason:
        return f"{backend}: {reason}"
    return backend


def _base_load_time(m: dict) -> Optional[float]:
    """Seconds the base model took to load (run.json ``load_time_s.base``); None for runs made before it was timed."""
    times = m.get("load_time_s")
    return times.get("base") if isinstance(times, dict) else None


def _base_metric(key: str) -> Callable[[dict], Any]:
    """A score of the run's base model before training (run.json ``baseline.metrics``); None when not scored."""
    return lambda m: ((m.get("baseline") or {}).get("metrics") or {}).get(key)


def _gain_over_base(m: dict) -> Optional[float]:
    """The fine-tuned score minus the base model's (run.json ``base_vs_fine_tuned.score.gain``)."""
    return ((m.get("base_vs_fine_tuned") or {}).get("score") or {}).get("gain")


def _signed(digits: int) -> Callable[[Any], str]:
    return lambda v: f"{v:+.{digits}f}" if isinstance(v, (int, float)) else ""


def _number(digits: int) -> Callable[[Any], str]:
    return lambda v: f"{v:,.{digits}f}" if isinstance(v, (int, float)) else ""


def _count(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else ""


def _per_class_f1(m: dict) -> Optional[str]:
    """``ham 0.9500 · spam 0.9100``: each class's F1 in label order."""
    per_class = _metric("per_class")(m)
    if not isinstance(per_class, dict):
        return None
    return " · ".join(f"{label} {scores.get('f1', 0):.4f}" for label, scores in per_class.items())


COLUMNS = (
    Column("group", lambda m: m.get("report_group"), _count, numeric=True),
    Column("rank", lambda m: m.get("report_rank"), _count, numeric=True),
    Column("run", lambda m: m.get("run_id")),
    Column("name", lambda m: m.get("name")),
    Column("architecture", lambda m: m.get("architecture")),
    Column("checkpoint", lambda m: m.get("checkpoint")),
    Column("backend", _backend),
    Column("quantization", lambda m: m.get("quantization") or ("none" if m.get("backend") else None)),
    Column("trainable params", lambda m: m.get("trainable_params"), _count, numeric=True),
    Column("ROUGE-1", _metric("rouge1"), _number(4), numeric=True),
    Column("ROUGE-2", _metric("rouge2"), _number(4), numeric=True),
    Column("ROUGE-L", _metric("rougeL"), _number(4), numeric=True),
    Column("score", _metric("score"), _number(4), numeric=True),
    Column("base ROUGE-1", _base_metric("rouge1"), _number(4), numeric=True),
    Column("base ROUGE-2", _base_metric("rouge2"), _number(4), numeric=True),
    Column("base ROUGE-L", _base_metric("rougeL"), _number(4), numeric=True),
    Column("gain over base", _gain_over_base, _signed(4), numeric=True),
    Column("eval file sha256", _eval_file, lambda v: v[:HASH_CELL_CHARS]),
    Column("examples", _metric("n_examples"), _count, numeric=True),
    Column("empty predictions", _metric("n_empty_predictions"), _count, numeric=True),
    Column("cut at max_new_tokens", _metric("n_cut_at_max_new_tokens"), _count, numeric=True),
    Column("repeating predictions", _metric("n_repeating_predictions"), _count, numeric=True),
    Column("ROUGE tokenizer", _metric("tokenizer")),
    Column("train time (s)", lambda m: m.get("train_time_s"), _number(1), numeric=True),
    Column("wall time (s)", lambda m: m.get("wall_time_s"), _number(1), numeric=True),
    Column("train tokens/s", lambda m: m.get("train_tokens_per_s"), _number(1), numeric=True),
    Column("load time (s)", _base_load_time, _number(2), numeric=True),
    Column("load peak memory (MB)", lambda m: m.get("load_peak_memory_mb"), _number(0), numeric=True),
    Column("peak memory (MB)", lambda m: m.get("peak_memory_mb"), _number(0), numeric=True),
    Column("status", lambda m: m.get("status")),
    Column("error", lambda m: m.get("error")),
)


CLASSIFICATION_COLUMNS = (
    Column("group", lambda m: m.get("report_group"), _count, numeric=True),
    Column("rank", lambda m: m.get("report_rank"), _count, numeric=True),
    Column("run", lambda m: m.get("run_id")),
    Column("name", lambda m: m.get("name")),
    Column("architecture", lambda m: m.get("architecture")),
    Column("checkpoint", lambda m: m.get("checkpoint")),
    Column("backend", _backend),
    Column("trainable params", lambda m: m.get("trainable_params"), _count, numeric=True),
    Column("accuracy", _metric("accuracy"), _number(4), numeric=True),
    Column("macro-F1", _metric("macro_f1"), _number(4), numeric=True),
    Column("majority macro-F1", _metric("majority_macro_f1"), _number(4), numeric=True),
    Column("per-class F1", _per_class_f1),
    Column("examples", _metric("n_examples"), _count, numeric=True),
    Column("eval file sha256", _eval_file, lambda v: v[:HASH_CELL_CHARS]),
    Column("train time (s)", lambda m: m.get("train_time_s"), _number(1), numeric=True),
    Column("wall time (s)", lambda m: m.get("wall_time_s"), _number(1), numeric=True),
    Column("status", lambda m: m.get("status")),
    Column("error", lambda m: m.get("error")),
)


def _rank(m: dict) -> Optional[str]:
    """``1``, or ``2.1`` (group 2, rank 1) when the report ranks several groups (``report_groups``)."""
    rank = m.get("report_rank")
    if rank is None:
        return None
    return f"{m['report_group']}.{rank}" if m.get("report_groups", 1) > 1 else str(rank)


def _model(m: dict) -> Optional[str]:
    """The base model, short: a scratch preset, a fetched name, a local directory's name, or the hub id."""
    checkpoint = m.get("checkpoint") or ""
    if checkpoint.startswith("scratch:"):
        return f"{m.get('architecture')} {checkpoint}"
    if checkpoint.startswith("fetched:"):
        return checkpoint.removeprefix("fetched:")
    if checkpoint.startswith(("/", ".", "~")) or checkpoint.count("/") > 1:  # a local directory or file
        return Path(checkpoint).name or checkpoint
    return checkpoint or m.get("architecture")


def _method(m: dict) -> Optional[str]:
    """How it trained: full, LoRA or QLoRA (4-bit), and through which backend."""
    backend = m.get("backend")
    if backend is None:
        return None
    if backend == "full":
        return "full"
    return f"{'QLoRA' if m.get('quantization') else 'LoRA'} ({backend})"


HEADLINE_LINE_CHARS = 160  # no Markdown line of a headline table is longer (a terminal, a pull request)
SHRINKABLE = ("run", "model", "method")  # headline cells shortened, with an ellipsis, to keep that width
HEADLINE_CELL_MIN = 10
RUN_ID_TAIL = len("_20250101-120000")  # a shortened run id keeps its timestamp

HEADLINE = (  # one line per run, at most 12 columns: what a person compares first
    Column("rank", _rank, numeric=True),
    Column("run", lambda m: m.get("run_id")),
    Column("model", _model),
    Column("method", _method),
    Column("ROUGE-1", _metric("rouge1"), _number(4), numeric=True),
    Column("ROUGE-2", _metric("rouge2"), _number(4), numeric=True),
    Column("ROUGE-L", _metric("rougeL"), _number(4), numeric=True),
    Column("gain over base", _gain_over_base, _signed(4), numeric=True),
    Column("examples", _metric("n_examples"), _count, numeric=True),
    Column("train time (s)", lambda m: m.get("train_time_s"), _number(1), numeric=True),
    Column("peak memory (MB)", lambda m: m.get("peak_memory_mb"), _number(0), numeric=True),
    Column("status", lambda m: m.get("status")),
)

CLASSIFICATION_HEADLINE = (
    Column("rank", _rank, numeric=True),
    Column("run", lambda m: m.get("run_id")),
    Column("model", _model),
    Column("method", _method),
    Column("accuracy", _metric("accuracy"), _number(4), numeric=True),
    Column("macro-F1", _metric("macro_f1"), _number(4), numeric=True),
    Column("majority macro-F1", _metric("majority_macro_f1"), _number(4), numeric=True),
    Column("examples", _metric("n_examples"), _count, numeric=True),
    Column("train time (s)", lambda m: m.get("train_time_s"), _number(1), numeric=True),
    Column("status", lambda m: m.get("status")),
)


Chart = tuple[str, Path]  # (alt text, PNG file in the report folder)


def _rouge_charts(runs: list[dict], out: Path) -> list[Chart]:
    return [("ROUGE per run", draw_rouge_chart(runs, out / "rouge.png"))]


def _confusion_charts(runs: list[dict], out: Path) -> list[Chart]:
    return [(f"Confusion matrix of {m.get('run_id')}", draw_confusion_matrix(m, out / confusion_file(m)))
            for m in runs if _confusion(m)]


@dataclass(frozen=True)
class Section:
    """One task's part of the report: its table, how its runs are grouped and ranked, its CSV and charts."""

    heading: str  # shown when the report has more than one section
    headline: Sequence[Column]  # the table people read (Markdown, HTML); at most 12 columns
    columns: Sequence[Column]  # every fact: the CSV and the HTML's collapsed details table
    comparable: Callable[[dict], Any]  # runs with equal keys are ranked together
    score: str  # what the ranking compares
    also_same: str  # what runs must share besides the eval file and the number of examples
    csv_name: str
    draw: Callable[[list[dict], Path], list[Chart]]  # writes the section's PNGs into the report folder
    charts_below: bool  # its charts follow the table (one per run) rather than precede it (one for all)


SECTIONS = {  # run.json "task" -> its section, in report order
    "summarization": Section("Summarization runs", HEADLINE, COLUMNS, comparable, "score (ROUGE-1 + ROUGE-2 + ROUGE-L F1)",
                             "ROUGE tokenizer", "comparison.csv", _rouge_charts, charts_below=False),
    "classification": Section("Classification runs", CLASSIFICATION_HEADLINE, CLASSIFICATION_COLUMNS, comparable_labels, "macro-F1", "labels",
                              "comparison_classification.csv", _confusion_charts, charts_below=True),
}


def write_report(paths: Sequence[str | Path], out_dir: Optional[Path] = None) -> Path:
    """Read every run, write the report files into ``out_dir`` (default reports/{timestamp}); return it."""
    parts = split_by_task([read_run(path) for path in paths])
    out = Path(out_dir) if out_dir is not None else _fresh_dir(Path("reports"))
    out.mkdir(parents=True, exist_ok=True)
    charts = {task: SECTIONS[task].draw(runs, out) for task, runs in parts.items()}
    summaries = summaries_of(parts.get("summarization", []), out)
    write_text_atomic(out / "comparison.md", to_markdown(parts, charts, summaries))
    for task, runs in parts.items():
        section = SECTIONS[task]
        write_csv_atomic(out / section.csv_name, [_raw_row(m, section.columns) for m in runs],
                         [c.header for c in section.columns] + ["log"])
    write_text_atomic(out / "comparison.html", to_html(parts, charts, summaries))
    return out


@dataclass
class Summaries:
    """The summaries part of a report: each completed run's examples and loss curve, and the dialogues
    that runs on the same eval file are shown side by side for."""

    runs: list[tuple[dict, Any, Optional[Path]]]  # (manifest, report_examples.RunExamples, loss curve PNG or None)
    side_by_side: list[tuple[int, list[Any], list[str]]]  # (group, its RunExamples, dialogue ids)


def summaries_of(runs: list[dict], out: Path) -> Summaries:
    shown = [m for m in runs if m.get("status") == "completed" and _scored(m)]
    found = [(m, run_examples(m), draw_loss_curve(m, out / loss_file(m))) for m in shown]
    groups: dict[int, list[Any]] = {}
    for m, examples, _ in found:
        if m.get("report_group") and examples.examples:
            groups.setdefault(m["report_group"], []).append(examples)
    pairs = [(number, members, side_by_side(members)) for number, members in groups.items()]
    return Summaries(found, [(number, members, ids) for number, members, ids in pairs if ids])


def split_by_task(runs: list[dict]) -> dict[str, list[dict]]:
    """The runs of each task, ranked (``rank_runs``), in SECTIONS order; summarization alone when no run has a
    task (and for no runs at all)."""
    parts = {task: rank_runs([m for m in runs if run_task(m) == task], section.comparable)
             for task, section in SECTIONS.items()}
    present = {task: members for task, members in parts.items() if members}
    return present or {"summarization": []}


# --- reading ---------------------------------------------------------------------------------------


def find_run_json(path: str | Path) -> Path:
    """run.json of a run from models/{run_id}, outputs/{run_id}, outputs/{run_id}/results or the file itself."""
    path = Path(path)
    candidates = [path] if path.is_file() else [
        path / "run.json",
        path / "results" / "run.json",
        path.parent.parent / "outputs" / path.name / "results" / "run.json",  # models/{run_id}
    ]
    for candidate in candidates:
        if candidate.name == "run.json" and candidate.is_file():
            return candidate
    raise ReportError(
        f"{path}: no run.json found (looked in {', '.join(str(c) for c in candidates)}); pass a models/{{run_id}} "
        "or outputs/{run_id} directory"
    )


def read_run(path: str | Path) -> dict:
    """A run's manifest, with metrics from metrics.json when run.json has none."""
    run_json = find_run_json(path)
    try:
        manifest = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{run_json}: cannot read ({exc})") from None
    metrics_json = run_json.parent / "metrics.json"
    if not manifest.get("metrics") and metrics_json.is_file():
        manifest["metrics"] = json.loads(metrics_json.read_text(encoding="utf-8"))
    manifest["report_results_dir"] = str(run_json.parent)  # the run's files, wherever the run now lies
    manifest.setdefault("run_id", run_json.parent.parent.name)
    manifest.setdefault("name", manifest["run_id"])
    manifest.setdefault("status", "unknown")
    if run_task(manifest) not in SECTIONS:
        raise ReportError(f"{run_json}: task {run_task(manifest)!r} is not one this sumtune reports "
                          f"({', '.join(SECTIONS)}); report it with the sumtune version that trained it")
    return manifest


def rank_runs(runs: list[dict], key: Callable[[dict], Any] = comparable) -> list[dict]:
    """Copies of the runs in report order; ranked runs carry ``report_group`` (1, 2, ...) and ``report_rank``.

    Completed, scored runs are grouped by ``key`` (`comparable` for summarization; the biggest group
    first, runs with a known eval file before the others) and ranked best score first within their
    group. Completed runs without a score follow, then failed and unfinished runs; these have no group
    or rank.
    """
    by_key: dict[Any, list[dict]] = {}
    for m in sorted((m for m in runs if _ranked(m)), key=lambda m: (-_metric("score")(m), m.get("run_id", ""))):
        by_key.setdefault(key(m), []).append(m)
    groups = sorted(by_key.items(), key=lambda item: (item[0].eval_file_sha256 is None, -len(item[1]), str(item[0])))
    ordered = [dict(m, report_group=number, report_rank=rank, report_groups=len(groups))
               for number, (_, members) in enumerate(groups, start=1) for rank, m in enumerate(members, start=1)]
    rest = sorted((m for m in runs if not _ranked(m)),
                  key=lambda m: (m.get("status") != "completed", m.get("run_id", "")))
    return ordered + [dict(m, report_group=None, report_rank=None) for m in rest]


def _raw_row(m: dict, columns: Sequence[Column]) -> dict:
    row = {c.header: c.value(m) for c in columns}
    row["log"] = m.get("log") if m.get("status") != "completed" else None
    return {k: "" if v is None else v for k, v in row.items()}


def _table_columns(runs: list[dict], columns: Sequence[Column]) -> list[Column]:
    """All columns, less the error column when no run has an error."""
    return [c for c in columns if c.header != "error" or any(m.get("error") for m in runs)]


def _cells(m: dict, columns: Sequence[Column]) -> list[str]:
    cells = []
    for column in columns:
        value = column.value(m)
        text = "" if value is None else column.fmt(value)
        if column.header == "error" and len(text) > ERROR_CELL_CHARS:
            text = text[: ERROR_CELL_CHARS - 1] + "…"
        cells.append(" ".join(text.split()))  # one line per cell
    return cells


def _is_below_base(warning: str) -> bool:
    return warning.startswith(BELOW_BASE)  # shown in bold (red in the HTML)


def _failed(runs: list[dict]) -> list[dict]:
    return [m for m in runs if m.get("status") != "completed"]


def _summary(runs: list[dict], section: Section) -> str:
    done = sum(m.get("status") == "completed" for m in runs)
    return (f"{len(runs)} run(s): {done} completed, {len(runs) - done} failed or unfinished. Ranked by "
            f"{section.score} among runs scored on the same eval file (content hash), number of examples and "
            f"{section.also_same}.")


def _groups(runs: list[dict], section: Section) -> list[tuple[int, Any, int]]:
    """(group number, what its runs share, how many runs) for each group, in report order."""
    members: dict[int, list[dict]] = {}
    for m in runs:
        if m.get("report_group"):
            members.setdefault(m["report_group"], []).append(m)
    return [(number, section.comparable(group[0]), len(group)) for number, group in members.items()]


def _comparability_notes(runs: list[dict], section: Section) -> list[tuple[str, list[str]]]:
    """(sentence, its list items): what the top of a section must say before any score is read."""
    groups = _groups(runs, section)
    notes = []
    if len(groups) > 1:
        notes.append((f"These runs are not all comparable: they fall in {len(groups)} groups with a different eval "
                      f"file, number of examples or {section.also_same}, and each group is ranked on its own. "
                      "Compare scores only within a group.",
                      [f"group {number}: {key.describe()} ({count} run(s))" for number, key, count in groups]))
    unknown = sum(count for _, key, count in groups if key.eval_file_sha256 is None)
    if unknown:
        notes.append((f"{unknown} scored run(s) recorded no eval file hash (made before sumtune recorded "
                      "eval_file_sha256); they are grouped as 'unknown eval file', whose scores may come from "
                      "different dev data.", []))
    return notes


# --- Markdown --------------------------------------------------------------------------------------


def markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def to_markdown(parts: dict[str, list[dict]], charts: Optional[dict[str, list[Chart]]] = None,
                summaries: Optional[Summaries] = None) -> str:
    """The report: one section per task in ``parts`` (headed when there are several), warnings, the
    summaries, then failed runs."""
    lines = ["# Run comparison", ""]
    for index, (task, runs) in enumerate(parts.items()):
        section = SECTIONS[task]
        lines += ([""] if index else []) + ([f"## {section.heading}", ""] if len(parts) > 1 else [])
        lines += _markdown_section(runs, section, (charts or {}).get(task, []))
    warned = [m for runs in parts.values() for m in runs if m.get("warnings")]
    if warned:
        lines += ["", "## Warnings", ""]
        for m in warned:
            lines += [f"- **{m.get('run_id')}**: " + " ".join(f"**{markdown_cell(w)}**" if _is_below_base(w) else markdown_cell(w)
                                                            for w in m["warnings"])]
    if summaries is not None and summaries.runs:
        lines += _markdown_summaries(summaries)
    failed = [m for runs in parts.values() for m in _failed(runs)]
    if failed:
        lines += ["", "## Failed runs", ""]
        for m in failed:
            lines += [f"### {m.get('run_id')} ({m.get('status')})", "", "```", m.get("error") or "(no error recorded)", "```", ""]
            if m.get("log"):
                lines += [f"Log: `{m['log']}`", ""]
    return "\n".join(lines).rstrip() + "\n"


def _markdown_section(runs: list[dict], section: Section, charts: list[Chart]) -> list[str]:
    lines = []
    for sentence, items in _comparability_notes(runs, section):
        lines += [f"**{sentence}**", ""] + [f"- {item}" for item in items] + ([""] if items else [])
    images = [f"![{alt}]({path.name})" for alt, path in charts]
    lines += [_summary(runs, section), ""]
    if not section.charts_below:
        lines += [line for image in images for line in (image, "")]
    columns = list(section.headline)
    lines.append("| " + " | ".join(c.header for c in columns) + " |")
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in columns) + "|")
    for m in runs:
        lines.append(headline_line(_cells(m, columns), columns))
    if _several_groups(runs):
        lines += ["", "rank 2.1: group 2, rank 1."]
    lines += ["", f"Every column ({len(_table_columns(runs, section.columns))}) is in [{section.csv_name}]({section.csv_name})."]
    if section.charts_below:
        lines += [line for image in images for line in ("", image)]
    return lines


def headline_line(cells: list[str], columns: Sequence[Column], limit: int = HEADLINE_LINE_CHARS) -> str:
    """A Markdown table row of at most ``limit`` characters: the longest of the run, model and method cells
    loses a character at a time (a run id in the middle, keeping its timestamp; the others at the end, with
    an ellipsis) until the row fits, or every one of them is down to HEADLINE_CELL_MIN characters."""
    widths = {i: len(cells[i]) for i, c in enumerate(columns) if c.header in SHRINKABLE}

    def shortened(i: int, text: str) -> str:
        keep = widths.get(i, len(text))
        if keep >= len(text):
            return text
        if columns[i].header == "run":  # {name}_{YYYYmmdd-HHMMSS}: keep the timestamp whole while there is room
            tail = min(RUN_ID_TAIL, keep - 2)
            return text[: keep - 1 - tail] + "…" + text[len(text) - tail:]
        return text[: keep - 1] + "…"

    while True:
        line = "| " + " | ".join(markdown_cell(shortened(i, cell)) for i, cell in enumerate(cells)) + " |"
        longest = max(widths, key=lambda i: widths[i], default=None)
        if len(line) <= limit or longest is None or widths[longest] <= HEADLINE_CELL_MIN:
            return line
        widths[longest] -= 1


def _several_groups(runs: list[dict]) -> bool:
    return any(m.get("report_groups", 1) > 1 for m in runs)


def _one_line(text: Optional[str]) -> str:
    return " ".join((text or "").split())


def _markdown_summaries(summaries: Summaries) -> list[str]:
    lines = ["", "## Summaries", "", "Per run: its best and worst dev example by ROUGE-L and some at random, with the "
             "reference, the prediction and, where the run scored its base model, the base's."]
    for m, found, curve in summaries.runs:
        lines += ["", f"### {found.run_id}", "", (found.missing or found.counts) + "."]
        lines += ["", f"![Training loss of {found.run_id}]({curve.name})" if curve else f"No loss curve: {NO_LOSSES}."]
        for e in found.examples:
            score = f"ROUGE-L {e.rouge_l:.4f}" if e.rouge_l is not None else "no reference"
            lines += ["", f"**{e.why}** · `{e.id}` · {score}", ""]
            if e.dialogue:
                lines += [f"> {_one_line(e.dialogue)}", ""]
            lines += [f"- {label}: {_one_line(text)}" for label, text in labelled(e.references)]
            lines.append(f"- prediction: {_one_line(e.prediction) or '(empty)'}")
            if e.base_prediction is not None:
                lines.append(f"- base model: {_one_line(e.base_prediction) or '(empty)'}")
    for number, members, ids in summaries.side_by_side:
        lines += ["", f"## The same dialogues, side by side (group {number})"]
        for example_id in ids:
            first = members[0]
            lines += ["", f"### `{example_id}`", ""]
            if first.dialogues.get(example_id):
                lines += [f"> {_one_line(excerpt(first.dialogues[example_id]))}", ""]
            lines += [f"{label}: {_one_line(text)}" for label, text in labelled(first.references.get(example_id, ()))]
            lines += ["", "| run | ROUGE-L | prediction |", "|---|---:|---|"]
            for found in members:
                prediction, score = found.predictions[example_id]
                lines.append(f"| {markdown_cell(found.run_id)} | {_number(4)(score)} | "
                             f"{markdown_cell(_one_line(prediction)) or '(empty)'} |")
    return lines


# --- HTML ------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans KR", sans-serif; margin: 2rem; color: #1f2328; }
table { border-collapse: collapse; font-size: 0.85rem; }
table.headline { max-width: 100%; }
table.headline td.long { overflow-wrap: anywhere; min-width: 6rem; }
table.headline td.text { white-space: nowrap; }
div.wide { overflow-x: auto; max-width: 100%; }
details { margin: 0.8rem 0; }
summary { cursor: pointer; color: #0969da; }
table.example { width: 100%; max-width: 72rem; table-layout: fixed; margin: 0.6rem 0 1rem; }
table.example caption { text-align: left; padding: 0.2rem 0; }
table.example th { width: 8rem; }
table.example td { white-space: pre-wrap; overflow-wrap: anywhere; }
p.dialogue { white-space: pre-wrap; color: #57606a; }
p.muted { color: #57606a; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.5rem; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.failed td { background: #fff1f0; }
pre { background: #f6f8fa; padding: 0.6rem; overflow-x: auto; white-space: pre-wrap; }
img { max-width: 100%; }
p.note { font-weight: 600; color: #9a6700; }
ul.warnings li { margin-bottom: 0.4rem; }
.below-base { color: #b42318; }
"""


def to_html(parts: dict[str, list[dict]], charts: Optional[dict[str, list[Chart]]] = None,
            summaries: Optional[Summaries] = None) -> str:
    """Self-contained HTML of the same report; charts are embedded as base64 PNG."""
    esc = html.escape
    sections = "".join(
        (f"<h2>{esc(SECTIONS[task].heading)}</h2>\n" if len(parts) > 1 else "")
        + _html_section(runs, SECTIONS[task], (charts or {}).get(task, []))
        for task, runs in parts.items()
    )
    warnings = "".join(
        f"<li><strong>{esc(str(m.get('run_id')))}</strong>: "
        + " ".join(f'<strong class="below-base">{esc(w)}</strong>' if _is_below_base(w) else esc(w) for w in m["warnings"])
        + "</li>"
        for runs in parts.values() for m in runs if m.get("warnings")
    )
    errors = "".join(
        f"<h3>{esc(str(m.get('run_id')))} ({esc(str(m.get('status')))})</h3><pre>{esc(m.get('error') or '(no error recorded)')}</pre>"
        + (f"<p>Log: <code>{esc(m['log'])}</code></p>" if m.get("log") else "")
        for runs in parts.values() for m in _failed(runs)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Run comparison</title>'
        f"<style>{CSS}</style></head><body>\n<h1>Run comparison</h1>\n{sections}"
        + (f'<h2>Warnings</h2><ul class="warnings">{warnings}</ul>\n' if warnings else "")
        + (_html_summaries(summaries) if summaries is not None and summaries.runs else "")
        + (f"<h2>Failed runs</h2>{errors}\n" if errors else "")
        + "</body></html>\n"
    )


def _html_table(runs: list[dict], columns: Sequence[Column], css_class: str) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c.header)}</th>" for c in columns)
    body = []
    for m in runs:
        cells = "".join(
            f'<td class="{_css_class(c)}">{esc(cell)}</td>' for c, cell in zip(columns, _cells(m, columns))
        )
        row_class = ' class="failed"' if m.get("status") != "completed" else ""
        body.append(f"<tr{row_class}>{cells}</tr>")
    return (f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(body)
            + "\n</tbody></table>\n")


def _css_class(column: Column) -> str:
    """num: right-aligned, never wrapped; long: may wrap anywhere (run ids, models); text: wraps at spaces."""
    return "num" if column.numeric else "long" if column.header in SHRINKABLE else "text"


def _html_section(runs: list[dict], section: Section, charts: list[Chart]) -> str:
    esc = html.escape
    images = "\n".join(_html_image(alt, path) for alt, path in charts if path.is_file())
    headline = _html_table(runs, section.headline, "headline")
    if _several_groups(runs):
        headline += "<p>rank 2.1: group 2, rank 1.</p>\n"
    every = _table_columns(runs, section.columns)
    details = (f"<details><summary>Every column ({len(every)}; also in {esc(section.csv_name)})</summary>"
               f'<div class="wide">{_html_table(runs, every, "details")}</div></details>\n')
    above, below = ("", images + "\n") if section.charts_below else (images, "")
    return f"{_html_notes(runs, section)}\n<p>{esc(_summary(runs, section))}</p>\n{above}\n{headline}{details}{below}"


def _html_summaries(summaries: Summaries) -> str:
    esc = html.escape
    parts = ["<h2>Summaries</h2><p>Per run: its best and worst dev example by ROUGE-L and some at random, with the "
             "reference, the prediction and, where the run scored its base model, the base's.</p>"]
    for m, found, curve in summaries.runs:
        parts.append(f"<h3>{esc(found.run_id)}</h3><p>{esc(found.missing or found.counts)}.</p>")
        parts.append(_html_image(f"Training loss of {found.run_id}", curve) if curve
                     else f'<p class="muted">No loss curve: {esc(NO_LOSSES)}.</p>')
        for e in found.examples:
            score = f"ROUGE-L {e.rouge_l:.4f}" if e.rouge_l is not None else "no reference"
            rows = [("dialogue", e.dialogue), *labelled(e.references), ("prediction", e.prediction or "(empty)")]
            if e.base_prediction is not None:
                rows.append(("base model", e.base_prediction or "(empty)"))
            body = "".join(f"<tr><th>{esc(label)}</th><td>{esc(text)}</td></tr>" for label, text in rows if text)
            parts.append(f'<table class="example"><caption><strong>{esc(e.why)}</strong> · <code>{esc(e.id)}</code> · '
                         f"{esc(score)}</caption>{body}</table>")
    for number, members, ids in summaries.side_by_side:
        parts.append(f"<h2>The same dialogues, side by side (group {number})</h2>")
        for example_id in ids:
            first = members[0]
            rows = "".join(
                f"<tr><td>{esc(found.run_id)}</td><td class=\"num\">{esc(_number(4)(found.predictions[example_id][1]))}</td>"
                f"<td>{esc(found.predictions[example_id][0] or '(empty)')}</td></tr>" for found in members)
            dialogue = first.dialogues.get(example_id)
            parts.append(f"<h3><code>{esc(example_id)}</code></h3>"
                         + (f'<p class="dialogue">{esc(excerpt(dialogue))}</p>' if dialogue else "")
                         + "".join(f"<p>{esc(label)}: {esc(text)}</p>"
                                   for label, text in labelled(first.references.get(example_id, ())))
                         + '<table class="example"><thead><tr><th>run</th><th>ROUGE-L</th><th>prediction</th></tr></thead>'
                         + f"<tbody>{rows}</tbody></table>")
    return "\n".join(parts) + "\n"


def _html_image(alt: str, path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'



def _html_notes(runs: list[dict], section: Section) -> str:
    parts = []
    for sentence, items in _comparability_notes(runs, section):
        parts.append(f'<p class="note">{html.escape(sentence)}</p>')
        if items:
            parts.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>")
    return "".join(parts)


# --- chart -----------------------------------------------------------------------------------------


def draw_rouge_chart(runs: list[dict], path: Path) -> Path:
    """Grouped bars of ROUGE-1/2/L per ranked run (in report order), each bar labelled with its value;
    written through a temporary file, so a failed save leaves the previous chart whole."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [m for m in runs if m.get("report_rank")]
    several_groups = len({m["report_group"] for m in scored}) > 1
    labels = [f"{label}\n(group {m['report_group']})" if several_groups else label
              for m, label in zip(scored, _chart_labels(scored))]
    width = max(6.0, 1.6 * len(scored) + 2.0)
    fig, ax = plt.subplots(figsize=(width, 4.8), dpi=120)
    try:
        if not scored:
            ax.text(0.5, 0.5, "no completed run has ROUGE scores", ha="center", va="center", fontsize=14,
                    transform=ax.transAxes)
            ax.set_axis_off()
        else:
            bar = 0.26
            top = max(max(_metric(k)(m), _base_metric(k)(m) or 0) for k, _ in ROUGE_KEYS for m in scored)
            for offset, (key, label) in enumerate(ROUGE_KEYS):
                xs = [i + (offset - 1) * bar for i in range(len(scored))]
                values = [_metric(key)(m) for m in scored]
                bars = ax.bar(xs, values, bar, label=label)
                ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=2, fontsize=8)
                based = [(x, _base_metric(key)(m)) for x, m in zip(xs, scored) if _base_metric(key)(m) is not None]
                if based:  # the base model's score before training, as a black line across its bar
                    ax.hlines([v for _, v in based], [x - bar / 2 for x, _ in based], [x + bar / 2 for x, _ in based],
                              colors="black", linewidth=2, label="base model" if offset == 0 else None)
            crowded = len(scored) > 4
            ax.set_xticks(range(len(scored)), labels, rotation=20 if crowded else 0, ha="right" if crowded else "center")
            ax.set_xlim(-0.6, len(scored) - 0.4)
            ax.set_ylabel("F1")
            ax.set_ylim(0, max(0.05, top) * 1.25)
            order = "best score first within each group" if several_groups else "best score first"
            ax.set_title(f"ROUGE F1 per run ({order})", pad=24)
            ax.legend(ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=9)
            ax.spines[["top", "right"]].set_visible(False)
        unscored = [m.get("name") or m.get("run_id") for m in runs if m not in scored]
        if unscored:
            fig.text(0.01, 0.01, "not shown (not ranked): " + ", ".join(unscored), fontsize=8, color="#b42318")
        fig.tight_layout(rect=(0, 0.04 if unscored else 0, 1, 1))
        with atomic_path(path) as temporary:
            fig.savefig(temporary, format="png", metadata={"Software": None})  # no URL inside the embedded image
    finally:
        plt.close(fig)
    return path


NO_LOSSES = "the run has no losses.csv (made before sumtune wrote one)"


def loss_file(m: dict) -> str:
    return f"loss_{re.sub(r'[^A-Za-z0-9._-]', '_', str(m.get('run_id')))}.png"


def draw_loss_curve(m: dict, path: Path) -> Optional[Path]:
    """The run's training loss (and eval loss) by step from its losses.csv; None when it has none."""
    losses = results_dir(m) / "losses.csv"
    if not losses.is_file():
        return None
    rows = read_records(losses)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.0), dpi=110)
    try:
        for key, label, style in (("loss", "training loss", "-"), ("eval_loss", "eval loss", "o--")):
            points = [(float(row["step"]), float(row[key])) for row in rows if row.get(key)]
            if points:
                ax.plot(*zip(*points), style, label=label, markersize=4)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(f"{m.get('run_id')}", fontsize=9)
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        with atomic_path(path) as temporary:
            fig.savefig(temporary, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return path


def draw_confusion_matrix(m: dict, path: Path) -> Path:
    """A classification run's confusion matrix: counts written in the cells, true labels as rows, predicted
    labels as columns (scikit-learn's ConfusionMatrixDisplay); written through a temporary file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = [str(label) for label in _metric("labels")(m)]
    side = max(3.6, 0.7 * len(labels) + 2.4)
    fig, ax = plt.subplots(figsize=(side, side), dpi=120)
    try:
        display = ConfusionMatrixDisplay(np.array(_confusion(m)), display_labels=labels)
        display.plot(ax=ax, values_format="d", cmap="Blues", colorbar=False,
                     xticks_rotation=45 if max(map(len, labels)) > 6 else "horizontal")
        scores = [f"{name} {value:.4f}" for name, value in (("macro-F1", _metric("macro_f1")(m)),
                                                             ("accuracy", _metric("accuracy")(m)))
                  if isinstance(value, (int, float))]
        ax.set_title("\n".join([str(m.get("run_id")), " · ".join(scores)]), fontsize=9)
        fig.tight_layout()
        with atomic_path(path) as temporary:
            fig.savefig(temporary, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return path


def _confusion(m: dict) -> Optional[list[list[int]]]:
    """The run's confusion matrix when it is square over its labels; None otherwise (nothing to draw)."""
    matrix, labels = _metric("confusion_matrix")(m), _metric("labels")(m)
    if not (isinstance(matrix, list) and isinstance(labels, list) and len(labels) == len(matrix) > 0):
        return None
    if not all(isinstance(row, list) and len(row) == len(labels) and all(isinstance(n, int) for n in row) for row in matrix):
        return None
    return matrix


def confusion_file(m: dict) -> str:
    """``confusion_{run_id}.png``, any character a file name should not hold replaced by ``_``."""
    return f"confusion_{re.sub(r'[^A-Za-z0-9._-]', '_', str(m.get('run_id')))}.png"


def _chart_labels(runs: list[dict]) -> list[str]:
    """Run names, or run ids where a name appears more than once."""
    names = [m.get("name") or m.get("run_id") for m in runs]
    return [m.get("run_id") if names.count(name) > 1 else name for m, name in zip(runs, names)]


def _fresh_dir(parent: Path) -> Path:
    stamp = datetime.now().strftime(TIMESTAMP_FORMAT)
    for attempt in range(1, 1000):
        candidate = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a report directory under {parent}")
