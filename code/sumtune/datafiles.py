"""Data files read and checked row by row, with the standard library only and no tokenizer.

One set of rules for ``sumtune validate`` (``config.check_data_files``), training (``data.read_splits``,
before any run directory exists) and ``sumtune predict`` (the test file), so they cannot drift apart:

    checked = check_data_file(Path("data/sample/ko_train.csv"), cfg.data, "train_file")
    checked.problems    # [] when the file can be used; else one line per fault: file, rows, fix
    checked.warnings    # usable, but look (dropped rows, duplicate ids)
    checked.examples    # the rows as Examples, rows with an empty field dropped (data.clean)

| fault                                         | train_file / eval_file                 | test_file |
|-----------------------------------------------|----------------------------------------|-----------|
| undecodable bytes, broken CSV or JSON, ragged | error                                  | error     |
| a column missing, no rows (header only)       | error                                  | error     |
| empty dialogue or summary                     | dropped, counted (data.clean) or error | error (empty dialogue) |
| every row dropped                             | error                                  | -         |
| duplicate ids                                 | warning                                | error     |
| empty id                                      | -  (the row is named by its number)    | error     |

Every value is put in one Unicode form first (``normalization``: NFC, no zero-width characters), so an id
made only of a zero-width space is empty, and NFD text from a Mac trains and scores like its NFC twin.

A test file's rows become a submission: each needs its own id and a dialogue, and none may be dropped.

``task: classification`` reads ``text_column`` and ``label_column`` in place of dialogue and summary,
by the same rules (a test file needs no labels), into ``LabeledText``; ``check_labels`` then compares the
label sets of the files: a training file with one class, a dev label the training file never shows, and a
label outside ``data.labels`` are errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .normalization import normalize_text
from .records import Table, read_table, some_of

if TYPE_CHECKING:
    from .config import DataConfig


@dataclass(frozen=True)
class Example:
    id: str
    dialogue: str
    summary: Optional[str] = None  # the target (with data.reference_columns: the first reference)
    references: tuple[str, ...] = ()  # every reference of an eval row under data.reference_columns

    @property
    def scored_against(self) -> tuple[str, ...]:
        """The references a prediction for this example is scored against."""
        return self.references or ((self.summary,) if self.summary is not None else ())


@dataclass(frozen=True)
class LabeledText:
    id: str
    text: str
    label: Optional[str] = None


@dataclass(frozen=True)
class Fields:
    """The two columns a task reads from a row: what the model reads, and what it learns to give."""

    source_key: str  # DataConfig key naming the column, e.g. "dialogue_column"
    target_key: str
    make: type  # row class, built as make(id, source, target)
    clean_target: bool  # whether data.clean normalises the target's whitespace too
    test_ids_required: bool  # a test file must have the id column (else its rows are named row1, row2, ...)


TASK_FIELDS = {
    "summarization": Fields("dialogue_column", "summary_column", Example, clean_target=True, test_ids_required=True),
    "classification": Fields("text_column", "label_column", LabeledText, clean_target=False, test_ids_required=False),
}


@dataclass(frozen=True)
class Role:
    """What a data file is for: whether it needs summaries, and whether its rows become a submission."""

    needs_summary: bool
    submission: bool
    scored: bool = False  # its rows are scored after training: data.reference_columns apply


ROLES = {
    "train_file": Role(needs_summary=True, submission=False),
    "eval_file": Role(needs_summary=True, submission=False, scored=True),
    "test_file": Role(needs_summary=False, submission=True),
}


@dataclass
class CheckedFile:
    path: Path
    role: str
    examples: list[Example] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    encoding: Optional[str] = None

    def log_findings(self, log, prefix: str = "") -> None:
        """Warnings as warnings; a file that was not UTF-8 as one info line naming its encoding."""
        if self.encoding not in (None, "utf-8"):
            log.info("%s%s: read as %s", prefix, self.path, self.encoding)
        for line in self.warnings:
            log.warning("%s%s", prefix, line)


def check_data_file(path: Path, data: DataConfig, role: str, task: str = "summarization") -> CheckedFile:
    """Read every row of ``path`` as ``role`` (a key of ROLES) for ``task`` and check it against the rules above."""
    checked = CheckedFile(Path(path), role)
    if not checked.path.is_file():
        checked.problems.append(f"file not found: {path} (relative paths resolve from {Path.cwd()})")
        return checked
    try:
        table = read_table(checked.path, data.encoding)
    except ValueError as exc:
        checked.problems.append(str(exc))
        return checked
    checked.encoding = table.encoding
    if not table.rows:
        what = "a header but no rows" if table.columns else "no rows (the file is empty)"
        checked.problems.append(f"{path}: {what}; a data file needs at least one row")
        return checked
    fields = TASK_FIELDS[task]
    missing = _missing_columns(table, data, ROLES[role], fields)
    if missing:
        checked.problems.append(f"{path} has no column {', '.join(missing)}; it has {', '.join(table.columns)} "
                                "(set that key to the name the file uses)")
        return checked
    _check_rows(checked, table, data, ROLES[role], fields)
    return checked


def _missing_columns(table: Table, data: DataConfig, role: Role, fields: Fields) -> list[str]:
    """``'summary' (data.summary_column)`` for each column the role needs and the file lacks."""
    needed = [(fields.source_key, getattr(data, fields.source_key))]
    if role.needs_summary and role.scored and data.reference_columns:
        needed += [("reference_columns", column) for column in data.reference_columns]
    elif role.needs_summary:
        needed.append((fields.target_key, getattr(data, fields.target_key)))
    if role.submission and fields.test_ids_required:
        needed.append(("id_column", data.id_column))
    return [f"{column!r} (data.{key})" for key, column in needed if column not in table.columns]


def _check_rows(checked: CheckedFile, table: Table, data: DataConfig, role: Role, fields: Fields) -> None:
    source_column, target_column = getattr(data, fields.source_key), getattr(data, fields.target_key)
    extra_references = ()
    if role.scored and data.reference_columns:  # the first reference is the target (eval loss), all are scored
        target_column, extra_references = data.reference_columns[0], data.reference_columns[1:]
    empty: dict[str, list[str]] = {data.id_column: [], source_column: [], target_column: []}
    rows_of_id: dict[str, list[int]] = {}
    for number, (row, place) in enumerate(zip(table.rows, table.places), start=1):
        row = {column: normalize_text(value) for column, value in row.items()}  # one Unicode form (NFC) everywhere
        row_id = row.get(data.id_column, "").strip()
        source, target = row[source_column], row.get(target_column)
        if data.clean:
            source = clean_text(source)
            target = target and (clean_text(target) if fields.clean_target else target.strip())
        label = f"{row_id or '(no id)'} ({place})"
        rows_of_id.setdefault(row_id, []).append(number)
        if role.submission and not row_id and data.id_column in table.columns:
            empty[data.id_column].append(label)
        if not source.strip():
            empty[source_column].append(label)
        elif role.needs_summary and not (target or "").strip():
            empty[target_column].append(label)
        elif extra_references:
            references = [target] + [clean_text(row[column]) if data.clean else row[column].strip() for column in extra_references]
            checked.examples.append(fields.make(row_id or f"row{number}", source, target,
                                                tuple(text for text in references if text.strip())))
        else:
            checked.examples.append(fields.make(row_id or f"row{number}", source, target if role.needs_summary else None))
    rows_of_id.pop("", None)
    _judge_empty_fields(checked, empty, data, role)
    _judge_duplicate_ids(checked, rows_of_id, data, role)
    if not checked.examples and data.clean and not role.submission:
        checked.problems.append(
            f"{checked.path}: all {len(table.rows)} rows have an empty {source_column} or {target_column}, so none "
            f"is left to train on; check that data.{fields.source_key} and data.{fields.target_key} name the right columns"
        )


def _judge_empty_fields(checked: CheckedFile, empty: dict[str, list[str]], data: DataConfig, role: Role) -> None:
    for column, labels in empty.items():
        if not labels:
            continue
        rows = f"{len(labels)} row(s) with an empty {column}: {some_of(labels)}"
        if role.submission:
            checked.problems.append(f"{checked.path}: {rows}; every test row needs an id and a dialogue "
                                    "(the submission has one row for each)")
        elif data.clean:
            checked.warnings.append(f"{checked.path}: dropped {rows} (data.clean: true drops such rows)")
        else:
            checked.problems.append(f"{checked.path}: {rows}; fill them in, or set data.clean: true to drop such rows")


def _judge_duplicate_ids(checked: CheckedFile, rows_of_id: dict[str, list[int]], data: DataConfig, role: Role) -> None:
    repeated = [f"{row_id} (rows {some_of([str(n) for n in rows], 3)})"
                for row_id, rows in rows_of_id.items() if len(rows) > 1]
    if not repeated:
        return
    found = (f"{checked.path}: {len(repeated)} id(s) in column {data.id_column!r} appear more than once: "
             f"{some_of(repeated, 5)}")
    if role.submission:
        checked.problems.append(f"{found}; the submission needs one row per id: make the ids unique "
                                "(or set data.id_column to the column that holds them)")
    else:
        checked.warnings.append(f"{found}; predictions and scores are matched by id, so give each row its own "
                                "(or set data.id_column to the column that holds them)")


def rows_slice(rows: Optional[str]) -> slice:
    """``data.train_rows`` / ``eval_rows`` ('0:399', ':100', '400:') as a slice; None: every row."""
    if rows is None:
        return slice(None)
    start, end = rows.split(":")
    return slice(int(start) if start else None, int(end) if end else None)


SOURCE_ATTRIBUTE = {Example: "dialogue", LabeledText: "text"}  # what the model reads, by row class


def check_overlap(train: CheckedFile, eval_: Optional[CheckedFile], data: DataConfig) -> None:
    """Warn (on the eval file) when dev rows, after data.train_rows / eval_rows, are also training rows: the
    same file, or the same dialogue (text) in both. Dev scores on such rows measure memorisation."""
    if eval_ is None or train.problems or eval_.problems:
        return
    trained_on = {getattr(e, SOURCE_ATTRIBUTE[type(e)]) for e in train.examples[rows_slice(data.train_rows)]}
    dev = eval_.examples[rows_slice(data.eval_rows)]
    shared = [e.id for e in dev if getattr(e, SOURCE_ATTRIBUTE[type(e)]) in trained_on]
    if not shared:
        return
    same = " (the same file)" if train.path.resolve() == eval_.path.resolve() else ""
    eval_.warnings.append(
        f"{eval_.path}: {len(shared)} of {len(dev)} dev rows have the {SOURCE_ATTRIBUTE[type(dev[0])]} of a row of "
        f"data.train_file {train.path}{same}: {some_of(shared, 5)}; dev scores on them measure memorisation. "
        "Remove them from one file, or split one file with data.train_rows and data.eval_rows"
    )


def clean_text(text: str) -> str:
    """Unify line breaks (also literal '\\n'), trim each line, collapse runs of spaces, drop blank lines."""
    text = text.replace("\r\n", "\n").replace("\\n", "\n")
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


# --- label sets (task: classification) -------------------------------------------------------------

INTEGER = re.compile(r"^-?\d+$")


def label_set(labels) -> list:
    """Labels in id order: integers (every label an integer) sorted by value, else strings sorted."""
    distinct = sorted({str(label) for label in labels})
    if distinct and all(INTEGER.match(label) for label in distinct):
        return sorted(int(label) for label in distinct)
    return distinct


def label_ids(labels: list) -> dict[str, int]:
    """``{label: id}``: an integer label is its own id; string labels are numbered in list order."""
    if all(isinstance(label, int) for label in labels):
        return {str(label): label for label in labels}
    return {str(label): index for index, label in enumerate(labels)}


def check_labels(train: Optional[CheckedFile], eval_: Optional[CheckedFile], data: DataConfig) -> None:
    """Add to the files' problems what makes their labels unusable together (see the module's docstring)."""
    if train is None or train.problems:
        return
    declared = [str(label) for label in data.labels] if data.labels is not None else None
    for found in (train, eval_):
        if found is None or found.problems or declared is None:
            continue
        outside = _rows_by_label(found, exclude=declared)
        if outside:
            found.problems.append(f"{found.path}: {outside} not in data.labels ({', '.join(declared)}); "
                                  "add them to data.labels or fix the rows")
    if train.problems:
        return
    seen = sorted({example.label for example in train.examples})
    if len(seen) < 2:
        train.problems.append(f"{train.path}: every row has the label {seen[0]!r} (data.label_column "
                              f"{data.label_column!r}); a classifier needs rows of at least two labels")
    if eval_ is not None and not eval_.problems:
        unseen = _rows_by_label(eval_, exclude=seen)
        if unseen:
            eval_.problems.append(f"{eval_.path}: {unseen} never appear in {train.path} (labels there: "
                                  f"{', '.join(seen)}), so the model cannot learn them; fix the labels or add training rows")


def _rows_by_label(found: CheckedFile, exclude: list[str]) -> str:
    """``label 'x' (rows a, b), label 'y' (rows c)`` for the examples whose label is not in ``exclude``."""
    rows: dict[str, list[str]] = {}
    for example in found.examples:
        if example.label not in exclude:
            rows.setdefault(example.label, []).append(example.id)
    return ", ".join(f"label {label!r} (rows {some_of(ids, 3)})" for label, ids in rows.items())
