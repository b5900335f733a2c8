"""Summaries (or labels) for a test file from a trained run: the submission CSV in input order.

    sumtune predict models/tiny_bart_20250101-120000 --input data/sample/ko_test.csv --output submission.csv
    sumtune predict config/model_configs/tiny_bart.yaml --input data/sample/ko_test.csv --output submission.csv --batch-size 32
    sumtune predict tiny_electra_spam --input data/sample/ko_spam_dev.csv --output labels.csv --probabilities

A summarization run writes ``{id column},summary``; a classification run writes ``{id column},label``
(and with ``--probabilities`` one ``probability_{label}`` column per label). A classification test file
without the id column gets its rows named row1, row2, ...

A run is a ``models/{name}_{ts}`` directory, a run id, or a config (path, or a stem of
config/model_configs/) or run name whose latest *completed* run is used (``trained.find_run_dir``). The run is rebuilt as it was trained
by ``sumtune.trained.load`` (base, quantization, adapter, tokenizer, prompt and generation settings);
the output path (never the input file, never a directory) and the input are checked before any model
is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .config import RunConfig
from .datafiles import check_data_file
from .metrics import empty_predictions_warning
from .records import write_csv_atomic
from .trained import RunError, find_run_dir, load_run_config
from .trained import load as load_trained

log = logging.getLogger("sumtune")

SUMMARY_COLUMN = "summary"
LABEL_COLUMN = "label"


class PredictError(ValueError):
    """The run cannot be found or loaded, or the input file cannot be used; the message says why."""


@dataclass(frozen=True)
class InputRows:
    ids: list[str]
    texts: list[str]  # dialogues to summarize, or texts to classify


def predict(target: str | Path, input_path: Path, output_path: Path, batch_size: Optional[int] = None,
            probabilities: bool = False) -> Path:
    """Write a row for every row of ``input_path``, in input order (see the module's docstring); return the path."""
    if batch_size is not None and batch_size < 1:
        raise PredictError(f"--batch-size must be at least 1 (got {batch_size})")
    check_output_path(Path(input_path), Path(output_path))  # before any run is looked up or model loaded
    try:
        run_dir = find_run_dir(target)
        cfg = load_run_config(run_dir)
        if probabilities and cfg.task != "classification":
            raise PredictError(f"--probabilities is for classification runs; {run_dir} is a {cfg.task} run")
        rows = read_test_rows(Path(input_path), cfg)  # before any model is loaded
        log.info("predicting %d rows of %s with %s", len(rows.ids), input_path, run_dir)
        trained = load_trained(run_dir)
    except RunError as exc:
        raise PredictError(str(exc)) from None
    options = {"batch_size": batch_size} if batch_size is not None else {}
    if cfg.task == "classification":
        return write_labels(trained, rows, output_path, cfg.data.id_column, probabilities, options)
    return write_summaries(trained, rows, output_path, cfg.data.id_column, options)


def write_summaries(trained, rows: InputRows, output_path: Path, id_column: str, options: dict) -> Path:
    summaries = trained.summarize(rows.texts, progress=True, **options)
    records = [{id_column: i, SUMMARY_COLUMN: s} for i, s in zip(rows.ids, summaries)]
    written = write_csv_atomic(output_path, records, [id_column, SUMMARY_COLUMN])
    warning = empty_predictions_warning(sum(not s.strip() for s in summaries), len(summaries))
    if warning:
        log.warning("%s: %s", written, warning)
    return written


def write_labels(trained, rows: InputRows, output_path: Path, id_column: str, probabilities: bool, options: dict) -> Path:
    scored = trained.classify(rows.texts, probabilities=True, **options)
    records = [{id_column: i, LABEL_COLUMN: s.label} for i, s in zip(rows.ids, scored)]
    columns = [id_column, LABEL_COLUMN]
    if probabilities:
        names = list(scored[0].probabilities) if scored else []
        columns += [f"probability_{name}" for name in names]
        for record, s in zip(records, scored):
            record.update({f"probability_{name}": round(p, 6) for name, p in s.probabilities.items()})
    return write_csv_atomic(output_path, records, columns)


def check_output_path(input_path: Path, output_path: Path) -> None:
    """Refuse an ``--output`` that would replace the input file, is a directory, or lies under a file."""
    if output_path.is_dir():
        raise PredictError(f"--output {output_path} is a directory; name the CSV file to write, e.g. "
                           f"--output {output_path / 'submission.csv'}")
    same_file = output_path.resolve() == input_path.resolve() or (
        output_path.exists() and input_path.exists() and output_path.samefile(input_path))  # a hard link too
    if same_file:
        raise PredictError(f"--output {output_path} is the --input file: the predictions would replace it; "
                           "write them to another file, e.g. --output submission.csv")
    parent = next((p for p in output_path.resolve().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise PredictError(f"--output {output_path}: {parent} is a file, not a directory; choose a path in a directory")


# --- input -----------------------------------------------------------------------------------------


def read_test_rows(path: Path, cfg: RunConfig) -> InputRows:
    """Ids and texts in file order, checked as a test file (``datafiles``: every row needs its own id and a
    dialogue, or for classification a text), read with the run's ``data.encoding``."""
    checked = check_data_file(path, cfg.data, "test_file", cfg.task)
    if checked.problems:
        raise PredictError("\n".join(checked.problems))
    checked.log_findings(log)
    texts = [e.text if cfg.task == "classification" else e.dialogue for e in checked.examples]
    return InputRows([e.id for e in checked.examples], texts)
