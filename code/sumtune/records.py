"""Reading and writing tabular records: CSV, JSON Lines and JSON arrays in, atomic CSV and JSON out.

Standard library only, so the data pipeline, metrics and artifacts code can all share it. Every file
sumtune writes goes through the atomic writers here: a reader (or a crash) sees the old file or the
new one, never half of one.

    rows = read_records("data/sample/ko_dev.csv")          # [{"fname": "...", "summary": "..."}, ...]
    table = read_table("excel_export.csv", encoding="auto")  # rows, header, where each row starts, encoding
    write_csv_atomic("outputs/run/predictions.csv", rows, fieldnames=["fname", "summary"])
    write_json_atomic("outputs/run/run.json", {"backend": "peft"})
    with atomic_directory("models/run/base_model") as staging:      # a library's save_pretrained
        model.save_pretrained(staging)
    with files_moved_into("models/run") as staging:                   # files beside others (adapter, tokenizer)
        tokenizer.save_pretrained(staging)
    with atomic_path("reports/x/rouge.png") as temporary:   # for writers that take a path
        figure.savefig(temporary, format="png")
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CSV_SUFFIXES = (".csv",)
JSON_LINES_SUFFIXES = (".jsonl", ".json")

# encoding "auto": a byte-order mark decides; without one, the first of these that decodes every byte
# strictly. CP949 (Windows' Korean code page, what Excel saves on a Korean PC) is a superset of EUC-KR.
BYTE_ORDER_MARKS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
AUTO_ENCODINGS = ("utf-8", "cp949")
ENCODING_FIX = "save the file as UTF-8, or name its encoding in the config's data.encoding (e.g. cp949, euc-kr, latin-1)"

# Python's csv errors (strict mode), said for people: what is wrong and how to fix it.
CSV_ERROR_HINTS = {
    "unexpected end of data": 'a quoted field opened here is never closed; add the closing quote (and write a quote inside a quoted field as "")',
    "expected after": 'text follows a closing quote; write a quote inside a quoted field as two (""), and close every quote you open',
    "line contains nul": "the file holds NUL bytes (UTF-16 without a byte-order mark, or not a text file); save it as UTF-8 CSV",
}

log = logging.getLogger("sumtune")

# The names the atomic writers below give their temporary files and staging folders (".run.1a2b3c4d.tmp.json",
# ".staging.1a2b3c4d.tmp", ".base_model.1a2b3c4d.old"): a process killed mid-save leaves them behind.
STAGING_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.(tmp|old)(\..+)?$")


@dataclass(frozen=True)
class Table:
    """A data file's records as string-valued dicts, with what messages about them need."""

    rows: list[dict[str, str]]
    columns: list[str]  # a CSV's header; for JSON every key, in order of first appearance
    places: list[str]  # where each row starts, for messages: "row 3, line 7" ("row 3" in a JSON array)
    encoding: str  # what the bytes were decoded as, e.g. "utf-8", "cp949"


def read_records(path: str | os.PathLike[str], encoding: str = "auto") -> list[dict[str, str]]:
    """Read a CSV, JSON Lines or JSON array file (chosen by suffix) into a list of string-valued dicts.

    Every value becomes a string: None becomes "", numbers and booleans their text, lists and objects
    their JSON. ``encoding`` is as in :func:`read_table`; a fallback to CP949 is logged.
    """
    table = read_table(path, encoding)
    if table.encoding not in ("utf-8", encoding):
        log.info("%s: read as %s (not UTF-8)", path, table.encoding)
    return table.rows


def read_table(path: str | os.PathLike[str], encoding: str = "auto") -> Table:
    """Read a CSV file, or a ``.jsonl``/``.json`` file of JSON Lines (a ``.json`` file may instead hold one
    JSON array of objects), into a :class:`Table`.

    ``encoding="auto"`` reads UTF-8 (with or without a byte-order mark; UTF-16 with one) and falls back to
    CP949/EUC-KR when every byte decodes as that; any other value is a Python codec name, used as given.
    Raises ValueError naming the file and where it went wrong: an undecodable byte (its offset and line),
    a CSV row with more or fewer fields than the header, an unclosed quote, a line that is not JSON.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + JSON_LINES_SUFFIXES:
        allowed = ", ".join(CSV_SUFFIXES + JSON_LINES_SUFFIXES)
        raise ValueError(f"{path}: unknown file type {path.suffix!r}; expected one of: {allowed}")
    text, used = decode_text(path.read_bytes(), encoding, path)
    rows, columns, places = _read_csv(path, text) if suffix in CSV_SUFFIXES else _read_json(path, text)
    return Table(rows, columns, places, used)


def decode_text(raw: bytes, encoding: str, path: str | os.PathLike[str]) -> tuple[str, str]:
    """``raw`` as text, and the encoding used (see :func:`read_table`); a byte-order mark is dropped."""
    if encoding != "auto":
        codec = encoding
        if codecs.lookup(encoding).name == "utf-8" and raw.startswith(codecs.BOM_UTF8):
            raw, codec = raw[len(codecs.BOM_UTF8):], "utf-8"
        try:
            return raw.decode(codec), encoding
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not {encoding} ({_bad_byte(raw, err)}); {ENCODING_FIX}, or auto") from None
    for mark, codec in BYTE_ORDER_MARKS:
        if raw.startswith(mark):
            try:
                return raw[len(mark):].decode(codec), codec
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}: starts with a {codec} byte-order mark but is not {codec} "
                                 f"({_bad_byte(raw, err, len(mark))}); {ENCODING_FIX}") from None
    failures = []
    for codec in AUTO_ENCODINGS:
        try:
            return raw.decode(codec), codec
        except UnicodeDecodeError as err:
            failures.append(f"{codec}: {_bad_byte(raw, err)}")
    raise ValueError(f"{path}: neither UTF-8 nor CP949/EUC-KR ({'; '.join(failures)}); {ENCODING_FIX}")


def _bad_byte(raw: bytes, err: UnicodeDecodeError, skipped: int = 0) -> str:
    offset = err.start + skipped
    line = raw.count(b"\n", 0, offset) + 1
    return f"byte 0x{raw[offset]:02x} at offset {offset}, line {line}"


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


def _read_csv(path: Path, text: str) -> tuple[list[dict[str, str]], list[str], list[str]]:
    """Strict parsing, so that an unclosed quote is an error instead of a field that swallows the rest.

    No field limit beyond the file's own length: Python's 128 KiB default refused well-formed long dialogues,
    and an unclosed quote is caught anyway ("unexpected end of data", where the quote opens)."""
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text)))
    try:
        return _read_csv_rows(path, text)
    finally:
        csv.field_size_limit(limit)


def _read_csv_rows(path: Path, text: str) -> tuple[list[dict[str, str]], list[str], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, places, ragged = [], [], []
    header: list[str] = []
    start = 1  # the line the record being read starts on
    try:
        header = next(reader, [])
        start = reader.line_num + 1
        for fields in reader:
            if fields:  # not a blank line
                place = f"row {len(rows) + len(ragged) + 1}, line {start}"
                if len(fields) == len(header):
                    rows.append(dict(zip(header, fields)))
                    places.append(place)
                else:
                    ragged.append(f"{place} ({len(fields)} fields)")
            start = reader.line_num + 1
    except csv.Error as err:
        hint = next((h for key, h in CSV_ERROR_HINTS.items() if key in str(err).lower()), f"malformed CSV ({err})")
        raise ValueError(f"{path}, row {len(rows) + len(ragged) + 1}, line {start}: {hint}") from None
    if ragged:
        raise ValueError(
            f"{path}: {len(ragged)} row(s) with more or fewer fields than the header's {len(header)} columns "
            f"({', '.join(header)}): {some_of(ragged)}; put a field that holds a comma, quote or line break "
            'in quotes ("a, b"), and give every row one value per column'
        )
    return rows, header, places


def _read_json(path: Path, text: str) -> tuple[list[dict[str, str]], list[str], list[str]]:
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        records, places = _read_json_array(path, text)
    else:
        lines = [(number, line) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
        records = [_parse_json_object(path, number, line) for number, line in lines]
        places = [f"row {row}, line {number}" for row, (number, _) in enumerate(lines, start=1)]
    columns = list(dict.fromkeys(key for record in records for key in record))
    return records, columns, places


def _read_json_array(path: Path, text: str) -> tuple[list[dict[str, str]], list[str]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}, line {err.lineno}: invalid JSON ({err.msg})") from None
    records = []
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: row {position} of the JSON array is {type(item).__name__}, expected an object")
        records.append(_stringify(item))
    return records, [f"row {row}" for row in range(1, len(records) + 1)]


def some_of(items: Sequence[str], most: int = 10) -> str:
    """For messages: the first ``most`` items, comma-separated, and how many more there are."""
    more = f" and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more


def _parse_json_object(path: Path, line_number: int, line: str) -> dict[str, str]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}, line {line_number}: invalid JSON ({err.msg}); expected one JSON object a line "
                         "(JSON Lines), or in a .json file one JSON array of objects") from None
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


def staging_leftovers(directory: str | os.PathLike[str]) -> list[Path]:
    """The temporary files and staging folders an interrupted atomic write left directly in ``directory``."""
    directory = Path(directory)
    return sorted(p for p in directory.iterdir() if STAGING_NAME.match(p.name)) if directory.is_dir() else []


@contextmanager
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


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging directory beside ``path``; when the block succeeds it becomes ``path``.

    For directories a library writes (``save_pretrained``): if the block fails, ``path`` keeps its old
    content (or stays absent) and the staging directory is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    staging.mkdir()
    try:
        yield staging
        if path.exists():
            retired = path.with_name(f".{path.name}.{secrets.token_hex(4)}.old")
            os.replace(path, retired)
            os.replace(staging, path)
            shutil.rmtree(retired)
        else:
            os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def files_moved_into(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a staging directory inside ``directory``; when the block succeeds, each file written there
    replaces its namesake in ``directory`` by a rename (sub-directories move whole).

    For library writers whose files share a directory with others (an adapter and tokenizer beside the
    run's checkpoints): each file appears whole or not at all; if the block fails, nothing moves.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f".staging.{secrets.token_hex(4)}.tmp"
    staging.mkdir()
    try:
        yield staging
        for item in sorted(staging.iterdir()):
            target = directory / item.name
            if item.is_dir() and target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
