"""The summaries themselves, for the report: per run a few examples (its best, its worst and some at random
by ROUGE-L) with the reference, the prediction, the base model's prediction where the run scored its base,
and a dialogue excerpt; and, for runs scored on the same eval file, their predictions for the same
dialogues side by side.

Everything is read from the run's results (predictions.csv, base_predictions.csv, losses.csv) and, for the
dialogue excerpt, from the eval file its config.yaml names (when it is still there). Per-example ROUGE-L
is computed here from predictions.csv (``metrics.example_scores``), so runs made before sumtune wrote
anything else still show their examples. Nothing is generated again.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from .records import read_records

EXAMPLES_AT_RANDOM = 2
DIALOGUE_EXCERPT_CHARS = 280
SIDE_BY_SIDE_DIALOGUES = 3


@dataclass(frozen=True)
class Example:
    id: str
    why: str  # best, worst, at random
    rouge_l: Optional[float]
    references: tuple[str, ...]  # every reference column of predictions.csv (reference, reference2, ...)
    prediction: str
    base_prediction: Optional[str]  # None: the run did not score its base
    dialogue: Optional[str]  # an excerpt; None when the eval file is not found


@dataclass
class RunExamples:
    """What the report shows of one run's summaries."""

    run_id: str
    examples: list[Example] = field(default_factory=list)
    counts: str = ""  # "60 examples: 0 empty, 3 cut at max_new_tokens, 42 repeating a phrase"
    missing: Optional[str] = None  # why there are no examples (no predictions.csv)
    predictions: dict[str, tuple[str, Optional[float]]] = field(default_factory=dict)  # id -> (prediction, ROUGE-L)
    references: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dialogues: dict[str, str] = field(default_factory=dict)


def results_dir(m: dict) -> Path:
    return Path(m.get("report_results_dir") or m.get("results_dir") or ".")


def run_examples(m: dict) -> RunExamples:
    """A completed summarization run's examples, picked by ROUGE-L (at random: seeded by the run id)."""
    from .metrics import example_scores

    found = RunExamples(str(m.get("run_id")))
    predictions_csv = results_dir(m) / "predictions.csv"
    if not predictions_csv.is_file():
        found.missing = f"no predictions.csv in {results_dir(m)}"
        return found
    try:
        rows = read_records(predictions_csv)
    except (OSError, ValueError) as exc:
        found.missing = f"{predictions_csv} cannot be read ({exc})"
        return found
    if rows and not {"id", "prediction"} <= set(rows[0]):
        found.missing = f"{predictions_csv} has no id and prediction columns (columns: {', '.join(rows[0])})"
        return found
    reference_columns = [c for c in (rows[0] if rows else {}) if re.fullmatch(r"reference\d*", c)]
    references = [[row.get(c, "") for c in reference_columns] for row in rows]
    tokenizer = ((m.get("metrics") or {}).get("tokenizer") or "auto").split("(")[0]
    scores = example_scores([row["prediction"] for row in rows], references, tokenizer=tokenizer) if rows else []
    base = _base_predictions(m)
    dialogues = _dialogues(m)
    found.counts = _counts(m)
    found.predictions = {row["id"]: (row["prediction"], score) for row, score in zip(rows, scores)}
    found.references = {row["id"]: tuple(refs) for row, refs in zip(rows, references)}
    found.dialogues = dialogues
    scored = sorted((i for i, score in enumerate(scores) if score is not None), key=lambda i: (-scores[i], i))
    picks = [(scored[0], "best"), (scored[-1], "worst")] if len(scored) > 1 else [(i, "best") for i in scored]
    rest = [i for i in scored[1:-1]]
    picks += [(i, "at random") for i in sorted(random.Random(found.run_id).sample(rest, min(EXAMPLES_AT_RANDOM, len(rest))))]
    for index, why in picks:
        row = rows[index]
        found.examples.append(Example(row["id"], why, scores[index], tuple(references[index]), row["prediction"],
                                      base.get(row["id"]) if base is not None else None,
                                      excerpt(dialogues.get(row["id"]))))
    return found


def labelled(references: tuple[str, ...]) -> list[tuple[str, str]]:
    """("reference", text) for one reference; ("reference 1", ...), ("reference 2", ...) for several."""
    shown = [text for text in references if text]
    return [("reference" if len(shown) == 1 else f"reference {n}", text) for n, text in enumerate(shown, start=1)]


def excerpt(text: Optional[str], limit: int = DIALOGUE_EXCERPT_CHARS) -> Optional[str]:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _counts(m: dict) -> str:
    metrics = m.get("metrics") or {}
    parts = [f"{metrics.get('n_empty_predictions', '?')} empty"]
    if metrics.get("n_cut_at_max_new_tokens") is not None:
        parts.append(f"{metrics['n_cut_at_max_new_tokens']} cut at max_new_tokens")
    if metrics.get("n_repeating_predictions") is not None:
        parts.append(f"{metrics['n_repeating_predictions']} repeating a phrase")
    return f"{metrics.get('n_examples', '?')} examples: " + ", ".join(parts)


def _base_predictions(m: dict) -> Optional[dict[str, str]]:
    path = results_dir(m) / "base_predictions.csv"
    return {row["id"]: row["prediction"] for row in read_records(path)} if path.is_file() else None


def _dialogues(m: dict) -> dict[str, str]:
    """id -> dialogue from the eval file the run's config.yaml names; empty when it cannot be read."""
    beside = results_dir(m).parent.parent.parent / "models" / str(m.get("run_id")) / "config.yaml"  # {root}/models/RUN
    recorded = Path(m["model_dir"]) / "config.yaml" if m.get("model_dir") else None
    config = beside if beside.is_file() or recorded is None else recorded
    try:
        data = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("data") or {}
        rows = read_records(data["eval_file"], data.get("encoding", "auto"))
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return {}
    id_column, dialogue_column = data.get("id_column", "fname"), data.get("dialogue_column", "dialogue")
    return {row.get(id_column, ""): row.get(dialogue_column, "") for row in rows}


def side_by_side(group: list[RunExamples]) -> list[str]:
    """The dialogue ids to show for runs sharing an eval file: the first run's picks that every run predicted."""
    if len(group) < 2 or not group[0].examples:
        return []
    shared = set.intersection(*(set(r.predictions) for r in group))
    return [e.id for e in group[0].examples if e.id in shared][:SIDE_BY_SIDE_DIALOGUES]
