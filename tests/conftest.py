"""Shared, generic fixtures (the repository root, a small CSV data file) and the test lanes.

Lanes (README, Tests): ``python -m pytest`` runs everything; the fast lane,
``python -m pytest -m "not slow and not realweights"``, leaves out

- ``slow``: tests that took ``SLOW_SECONDS`` or more (setup, call and teardown together) in the last
  measured run, read from ``tests/durations.json`` — measured, not chosen by hand. Refresh the file with
  ``python -m pytest --update-durations`` (a whole run, or any subset: only the tests run are rewritten).
  ``FAST_LANE_KEEPS`` stay in the fast lane whatever they take: one memorisation case per end-token
  mechanism.
- ``realweights``: tests that load real checkpoints fetched by ``sumtune fetch`` (they skip, with the
  reason, when nothing is fetched).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DURATIONS_FILE = Path(__file__).with_name("durations.json")
SLOW_SECONDS = 2.0
# one memorised example per way a summary's end is taught: the real KoBART tokenizer (no post-processor, EOS
# added by sumtune), Llama-3's end of turn that is not its EOS, Qwen's ChatML <|im_end|>, Flan-T5's untied head
FAST_LANE_KEEPS = {
    "tests/test_real_checkpoints.py::test_a_memorised_example_stops_on_the_taught_end_token[kobart_unsloth]",
    "tests/test_real_checkpoints.py::test_a_memorised_example_stops_on_the_taught_end_token[llama_3.2_korean_3b]",
    "tests/test_real_checkpoints.py::test_a_memorised_example_stops_on_the_taught_end_token[qwen3_4b]",
    "tests/test_real_checkpoints.py::test_a_memorised_example_stops_on_the_taught_end_token[flan_t5_base]",
}


def pytest_addoption(parser):
    parser.addoption("--update-durations", action="store_true",
                     help=f"write each test's measured seconds into {DURATIONS_FILE.name} (the slow marker reads it)")


def pytest_collection_modifyitems(config, items):
    durations = json.loads(DURATIONS_FILE.read_text(encoding="utf-8")) if DURATIONS_FILE.is_file() else {}
    for item in items:
        if durations.get(item.nodeid, 0.0) >= SLOW_SECONDS and item.nodeid not in FAST_LANE_KEEPS:
            item.add_marker(pytest.mark.slow)


_MEASURED: dict[str, float] = {}


def pytest_runtest_logreport(report):  # setup, call and teardown: a module fixture counts where it runs
    _MEASURED[report.nodeid] = _MEASURED.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    if not session.config.getoption("--update-durations") or not _MEASURED:
        return
    if hasattr(session.config, "workerinput"):  # under xdist each worker reports to the controller
        return
    durations = json.loads(DURATIONS_FILE.read_text(encoding="utf-8")) if DURATIONS_FILE.is_file() else {}
    durations.update({nodeid: round(seconds, 2) for nodeid, seconds in _MEASURED.items()})
    DURATIONS_FILE.write_text(json.dumps(dict(sorted(durations.items())), indent=0) + "\n", encoding="utf-8")


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


@pytest.fixture(scope="session")
def tiny_trained_runs(tmp_path_factory):
    """Tiny trained runs several files use as they are (predict, compare, export): LoRA on the tiny BART
    (seq2seq) and the tiny Llama (chat template), quick settings (tests/tiny_runs.py). Trained once per
    session; tests that change a run work on a copy."""
    from sumtune.train import train
    from tiny_runs import tiny

    root = tmp_path_factory.mktemp("tiny-runs")
    return {family: train(tiny(root, family)).run for family in ("bart", "llama")}


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


_SESSION_DIRECTORY = os.getcwd()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After every fixture of a test is torn down (monkeypatch.chdir undone), the working directory must be
    the session's: a test that moved it fails, and the next one starts where the session did."""
    result = yield
    moved = os.getcwd()
    if moved != _SESSION_DIRECTORY:
        os.chdir(_SESSION_DIRECTORY)
        raise AssertionError(f"{item.nodeid} left the working directory at {moved} (use monkeypatch.chdir)")
    return result


@pytest.fixture(autouse=True)
def no_sumtune_locations_from_the_shell(monkeypatch):
    """SUMTUNE_HOME and SUMTUNE_MODEL_* pins set in the developer's shell do not move or pick the tests' runs."""
    for key in list(os.environ):
        if key == "SUMTUNE_HOME" or key.startswith("SUMTUNE_MODEL_"):
            monkeypatch.delenv(key)
