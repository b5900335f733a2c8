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

A test file's rows become a submission: each needs its own id and a dialogue, and none may be dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .records import Table, read_table, some_of

if TYPE_CHECKING:
    from .config import DataConfig


@dataclass(frozen=True)
class Example:
    id: str
    dialogue: str
    summary: Optional[str] = None


@dataclass(frozen=True)
class Role:
    """What a data file is for: whether it needs summaries, and whether its rows become a submission."""

    needs_summary: bool
    submission: bool


ROLES = {
    "train_file": Role(needs_summary=True, submission=False),
    "eval_file": Role(needs_summary=True, submission=False),
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


def check_data_file(path: Path, data: DataConfig, role: str) -> CheckedFile:
    """Read every row of ``path`` as ``role`` (a key of ROLES) and check it against the rules above."""
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
    missing = _missing_columns(table, data, ROLES[role])
    if missing:
        checked.problems.append(f"{path} has no column {', '.join(missing)}; it has {', '.join(table.columns)} "
                                "(set that key to the name the file uses)")
        return checked
    _check_rows(checked, table, data, ROLES[role])
    return checked


def _missing_columns(table: Table, data: DataConfig, role: Role) -> list[str]:
    """``'summary' (data.summary_column)`` for each column the role needs and the file lacks."""
    needed = {"dialogue_column": data.dialogue_column}
    if role.needs_summary:
        needed["summary_column"] = data.summary_column
    if role.submission:
        needed["id_column"] = data.id_column
    return [f"{column!r} (data.{key})" for key, column in needed.items() if column not in table.columns]


def _check_rows(checked: CheckedFile, table: Table, data: DataConfig, role: Role) -> None:
    empty: dict[str, list[str]] = {data.id_column: [], data.dialogue_column: [], data.summary_column: []}
    rows_of_id: dict[str, list[int]] = {}
    for number, (row, place) in enumerate(zip(table.rows, table.places), start=1):
        row_id = row.get(data.id_column, "").strip()
        dialogue, summary = row[data.dialogue_column], row.get(data.summary_column)
        if data.clean:
            dialogue, summary = clean_text(dialogue), summary and clean_text(summary)
        label = f"{row_id or '(no id)'} ({place})"
        rows_of_id.setdefault(row_id, []).append(number)
        if role.submission and not row_id:
            empty[data.id_column].append(label)
        if not dialogue.strip():
            empty[data.dialogue_column].append(label)
        elif role.needs_summary and not (summary or "").strip():
            empty[data.summary_column].append(label)
        else:
            checked.examples.append(Example(row_id or f"row{number}", dialogue, summary))
    rows_of_id.pop("", None)
    _judge_empty_fields(checked, empty, data, role)
    _judge_duplicate_ids(checked, rows_of_id, data, role)
    if not checked.examples and data.clean and not role.submission:
        checked.problems.append(
            f"{checked.path}: all {len(table.rows)} rows have an empty {data.dialogue_column} or "
            f"{data.summary_column}, so none is left to train on; check that data.dialogue_column and "
            "data.summary_column name the right columns"
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


def clean_text(text: str) -> str:
    """Unify line breaks (also literal '\\n'), trim each line, collapse runs of spaces, drop blank lines."""
    text = text.replace("\r\n", "\n").replace("\\n", "\n")
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)
