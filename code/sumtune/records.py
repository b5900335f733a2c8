"""Reading and writing tabular records: CSV and JSON Lines in, atomic CSV and JSON out.

Standard library only, so the data pipeline, metrics and artifacts code can all share it.

    rows = read_records("data/sample/ko_dev.csv")          # [{"fname": "...", "summary": "..."}, ...]
    write_csv_atomic("outputs/run/predictions.csv", rows, fieldnames=["fname", "summary"])
    write_json_atomic("outputs/run/run.json", {"backend": "peft"})

    with atomic_path("reports/x/rouge.png") as temporary:   # for writers that take a path
        figure.savefig(temporary, format="png")
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

CSV_SUFFIXES = (".csv",)
JSON_LINES_SUFFIXES = (".jsonl", ".json")


def read_records(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Read a CSV or JSON Lines file (chosen by suffix) into a list of string-valued dicts.

    Every value becomes a string: None becomes "", numbers and booleans their text, lists and objects
    their JSON. A `.json` file may also hold one JSON array of objects.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _read_csv(path)
    if suffix in JSON_LINES_SUFFIXES:
        return _read_json_lines(path)
    allowed = ", ".join(CSV_SUFFIXES + JSON_LINES_SUFFIXES)
    raise ValueError(f"{path}: unknown file type {path.suffix!r}; expected one of: {allowed}")


def write_csv_atomic(
    path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]
) -> Path:
    """Write rows as UTF-8 CSV through a temporary file and a rename; return the path written.

    A row with a key outside `fieldnames` raises ValueError (a typo should not vanish silently).
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return _write_text_atomic(Path(path), buffer.getvalue())


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write `obj` as indented UTF-8 JSON through a temporary file and a rename; return the path."""
    text = json.dumps(obj, ensure_ascii=False, indent=2) + "\n"
    return _write_text_atomic(Path(path), text)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text through a temporary file and a rename; return the path."""
    return _write_text_atomic(Path(path), text)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        records = []
        for row in reader:
            if None in row:
                raise ValueError(
                    f"{path}, line {reader.line_num}: more fields than the header has columns "
                    f"({len(reader.fieldnames or [])})"
                )
            records.append({key: _as_text(value) for key, value in row.items()})
    return records


def _read_json_lines(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        return _read_json_array(path, text)
    records = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            records.append(_parse_json_object(path, line_number, line))
    return records


def _read_json_array(path: Path, text: str) -> list[dict[str, str]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}, line {err.lineno}: invalid JSON ({err.msg})") from err
    records = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: item {position} is {type(item).__name__}, expected an object")
        records.append(_stringify(item))
    return records


def _parse_json_object(path: Path, line_number: int, line: str) -> dict[str, str]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}, line {line_number}: invalid JSON ({err.msg})") from err
    if not isinstance(item, dict):
        raise ValueError(
            f"{path}, line {line_number}: expected a JSON object, got {type(item).__name__}"
        )
    return _stringify(item)


def _stringify(item: Mapping[str, Any]) -> dict[str, str]:
    return {str(key): _as_text(value) for key, value in item.items()}


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ONE target file; rename it onto the target when the block succeeds.

    For library writers that take a path (matplotlib's savefig, safetensors' save_file): a reader never
    sees half a file, and a failure leaves the old file as it was and no temporary file behind. The
    temporary name keeps the target's suffix, for writers that pick a format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_text_atomic(path: Path, text: str) -> Path:
    """Write next to the target, fsync, then rename, so a reader never sees half a file."""
    with atomic_path(path) as temporary:
        # os.open with 0o666 honours the umask, unlike tempfile's fixed 0o600.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return path
