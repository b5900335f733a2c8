"""Shared, generic fixtures: the repository root and a small CSV data file."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    """The repository root (holds pyproject.toml, config/, data/)."""
    return REPO_ROOT


@pytest.fixture
def sample_csv(tmp_path: Path) -> Path:
    """A small dialogue-summarization CSV (fname, dialogue, summary) written into tmp_path."""
    path = tmp_path / "sample.csv"
    rows = [
        ("s1", "#Person1#: 내일 회의 몇 시예요?\n#Person2#: 오전 열 시요.", "#Person2#가 회의가 열 시라고 알려준다."),
        ("s2", "#Person1#: Where is the station?\n#Person2#: Two blocks north.", "#Person2# gives directions to the station."),
        ("s3", "#Person1#: 점심 먹었어요?\n#Person2#: 아직이요, 같이 가요.", "두 사람이 함께 점심을 먹으러 간다."),
    ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fname", "dialogue", "summary"])
        writer.writerows(rows)
    return path


_SUMTUNE_LOGGER = logging.getLogger("sumtune")
_SUMTUNE_LOGGER_AT_START = (list(_SUMTUNE_LOGGER.handlers), _SUMTUNE_LOGGER.propagate, _SUMTUNE_LOGGER.level)


@pytest.fixture(autouse=True)
def sumtune_logger_as_found():
    """After each test the "sumtune" logger is as the session found it: a CLI call inside a test or a
    module-scoped fixture (console_logging) stops propagation, which would hide later tests' records
    from caplog. (The state at session start, not before the test: a module-scoped fixture runs before
    this fixture takes any snapshot.)"""
    yield
    _SUMTUNE_LOGGER.handlers[:], _SUMTUNE_LOGGER.propagate, _SUMTUNE_LOGGER.level = _SUMTUNE_LOGGER_AT_START


@pytest.fixture(autouse=True)
def no_sumtune_locations_from_the_shell(monkeypatch):
    """SUMTUNE_HOME and SUMTUNE_MODEL_* pins set in the developer's shell do not move or pick the tests' runs."""
    for key in list(os.environ):
        if key == "SUMTUNE_HOME" or key.startswith("SUMTUNE_MODEL_"):
            monkeypatch.delenv(key)
