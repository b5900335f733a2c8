"""Data files as users have them (Excel's Korean CSV, JSON arrays, UTF-16) and bad rows caught by
``sumtune validate`` and by training before any run directory exists (``sumtune.datafiles``)."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sumtune.cli import main
from sumtune.config import ConfigError, DataConfig, load_config, validate_files
from sumtune.data import DataError, Example, encode_examples, read_splits
from sumtune.datafiles import check_data_file
from sumtune.metrics import score_files
from sumtune.predict import PredictError, read_test_rows
from sumtune.records import read_records

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HEADER = ["fname", "dialogue", "summary"]
ROWS = [
    ["k1", "#Person1#: 내일 회의 몇 시예요?\n#Person2#: 오전 열 시요.", "#Person2#가 회의가 열 시라고 알려준다."],
    ["k2", "#Person1#: 점심 먹었어요?\n#Person2#: 아직이요, 같이 가요.", "두 사람이 함께 점심을 먹으러 간다."],
    ["k3", "#Person1#: 역이 어디예요?\n#Person2#: 두 블록 북쪽이요.", "#Person2#가 역으로 가는 길을 알려준다."],
]


def csv_text(rows, header=HEADER) -> str:
    """CSV as Excel writes it: CRLF line ends, fields with line breaks or commas quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_config(directory: Path, data: dict, name: str = "run") -> Path:
    content = {
        "name": name,
        "model": {"architecture": "bart", "init": "scratch"},
        "data": {key: str(value) for key, value in data.items()},
        "output": {"root": str(directory / "root")},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def problems_of(config: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(config)
    return info.value.problems


def the_problem(config: Path, key: str) -> str:
    lines = [line for line in problems_of(config) if line.startswith(f"{config}: data.{key}: ")]
    assert len(lines) == 1, problems_of(config)
    return lines[0]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The command in a fresh interpreter, so its console logging writes to the stderr we read."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "sumtune.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=60)


class Recorder(logging.Handler):
    """Messages of the ``sumtune`` logger (the CLI may have turned off its propagation to the root)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(autouse=True)
def restore_sumtune_logger():
    """``main([...])`` turns on console logging (a handler, propagation off); later tests' caplog needs it back."""
    logger = logging.getLogger("sumtune")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]


@pytest.fixture
def sumtune_log():
    logger = logging.getLogger("sumtune")
    recorder, level = Recorder(), logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.INFO)
    yield recorder.lines
    logger.removeHandler(recorder)
    logger.setLevel(level)


def run_entries(root: Path) -> list[str]:
    """Everything under an output root's models/, outputs/ and logs/."""
    return sorted(str(p.relative_to(root)) for folder in ("models", "outputs", "logs") for p in (root / folder).glob("*"))


# --------------------------------------------------------------------------------------------------
# Encodings


@pytest.mark.parametrize("codec", ["cp949", "euc-kr"])
def test_excel_korean_csv_is_read_with_auto_encoding_and_the_encoding_is_logged(tmp_path, codec, sumtune_log):
    """Excel on a Korean PC saves CP949/EUC-KR; today's reader dies with 'utf-8 codec can't decode'."""
    train = write_bytes(tmp_path / "train.csv", csv_text(ROWS).encode(codec))
    config = write_config(tmp_path, {"train_file": train})
    assert validate_files([config]) == []
    assert any(f"{train}: read as cp949" in line for line in sumtune_log)
    splits = read_splits(load_config(config))
    assert [e.summary for e in splits.train] == [row[2] for row in ROWS]
    assert read_records(train)[0]["dialogue"] == ROWS[0][1]


def test_utf16_with_a_byte_order_mark_is_read(tmp_path):
    """Excel's 'Unicode' export: UTF-16 with a byte-order mark (UTF-8 decoding fails on byte 0xff)."""
    train = write_bytes(tmp_path / "train.csv", csv_text(ROWS).encode("utf-16"))
    checked = check_data_file(train, DataConfig(train_file=train), "train_file")
    assert checked.problems == [] and checked.encoding == "utf-16-le"
    assert [e.id for e in checked.examples] == ["k1", "k2", "k3"]


def test_explicit_encoding_is_honoured_and_not_guessed(tmp_path):
    """data.encoding: cp949 reads CP949 as CP949; data.encoding: utf-8 does not fall back to CP949;
    data.encoding: latin-1 reads a file auto refuses; utf-8 also drops a byte-order mark."""
    korean = write_bytes(tmp_path / "ko.csv", csv_text(ROWS).encode("cp949"))
    assert check_data_file(korean, DataConfig(train_file=korean, encoding="cp949"), "train_file").problems == []
    forced = check_data_file(korean, DataConfig(train_file=korean, encoding="utf-8"), "train_file")
    assert len(forced.problems) == 1 and "not utf-8" in forced.problems[0] and "data.encoding" in forced.problems[0]

    latin = write_bytes(tmp_path / "latin.csv", csv_text([["e1", "#Person1#: Un café, s'il vous plaît.", "Il commande un café."]]).encode("latin-1"))
    assert check_data_file(latin, DataConfig(train_file=latin), "train_file").problems  # auto: neither UTF-8 nor CP949
    read = check_data_file(latin, DataConfig(train_file=latin, encoding="latin-1"), "train_file")
    assert read.problems == [] and read.examples[0].summary == "Il commande un café."

    bom = write_bytes(tmp_path / "bom.csv", csv_text(ROWS).encode("utf-8-sig"))
    assert read_records(bom, encoding="utf-8")[0]["fname"] == "k1"  # not '\ufefffname'


def test_undecodable_file_names_the_file_the_byte_offset_and_the_data_encoding_fix(tmp_path):
    raw = csv_text([["e1", "#Person1#: Un café, s'il vous plaît.", "Un café."]]).encode("latin-1")
    train = write_bytes(tmp_path / "latin.csv", raw)
    message = the_problem(write_config(tmp_path, {"train_file": train}), "train_file")
    offset = raw.index(b"\xe9")
    assert str(train) in message
    assert f"byte 0xe9 at offset {offset}, line 2" in message
    assert "data.encoding" in message and "UTF-8" in message
    with pytest.raises(ValueError, match=f"offset {offset}"):
        read_records(train)


def test_unknown_encoding_name_is_a_config_error(tmp_path):
    train = write_bytes(tmp_path / "train.csv", csv_text(ROWS).encode("utf-8"))
    config = write_config(tmp_path, {"train_file": train, "encoding": "utf-9"})
    message = the_problem(config, "encoding")
    assert "unknown text encoding" in message and "cp949" in message
    assert "data.encoding" in the_problem(write_config(tmp_path, {"train_file": train, "encoding": "base64"}), "encoding")


def test_score_reads_a_cp949_predictions_file(tmp_path):
    """`sumtune score` has no config: it reads with auto."""
    rows = [[r[0], r[2], r[2]] for r in ROWS]
    predictions = write_bytes(tmp_path / "pred.csv", csv_text(rows, ["fname", "prediction", "summary"]).encode("cp949"))
    result = score_files(predictions, tokenizer="whitespace")
    assert result.n_examples == 3 and result.rouge1 == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------------
# JSON arrays and JSON Lines


def test_pretty_printed_json_array_validates_and_reads_like_json_lines(tmp_path):
    """SAMSum ships a pretty-printed .json array; validate refused it ('first record is not JSON')."""
    records = [dict(zip(HEADER, row)) for row in ROWS]
    array = tmp_path / "train.json"
    array.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    lines = tmp_path / "train.jsonl"
    lines.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    from_array = write_config(tmp_path, {"train_file": array, "eval_file": array, "test_file": array}, "array")
    from_lines = write_config(tmp_path, {"train_file": lines, "eval_file": lines, "test_file": lines}, "lines")
    assert validate_files([from_array, from_lines]) == []
    assert read_splits(load_config(from_array)).train == read_splits(load_config(from_lines)).train
    cfg = load_config(from_array)
    assert read_test_rows(array, cfg).ids == ["k1", "k2", "k3"]  # sumtune predict --input train.json


def test_json_lines_keep_a_unicode_line_separator_inside_a_value(tmp_path):
    """str.splitlines() also splits at U+2028, which json.dumps(ensure_ascii=False) writes raw."""
    path = tmp_path / "train.jsonl"
    record = {"fname": "u1", "dialogue": "#Person1#: 첫 줄\u2028둘째 줄", "summary": "요약"}
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_records(path) == [record]


def test_a_json_array_item_that_is_not_an_object_names_its_row(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([dict(zip(HEADER, ROWS[0])), ["k2", "dialogue", "summary"]]), encoding="utf-8")
    message = the_problem(write_config(tmp_path, {"train_file": path}), "train_file")
    assert "row 2 of the JSON array is list, expected an object" in message


# --------------------------------------------------------------------------------------------------
# Rows: empty fields, no rows, duplicate ids


def test_all_empty_summaries_fail_validate_and_train_writes_nothing(tmp_path):
    """The user's report: validate passed, then train made models/, outputs/ and logs/ and exited 1."""
    train = tmp_path / "train.csv"
    train.write_text(csv_text([[r[0], r[1], " "] for r in ROWS]), encoding="utf-8")
    config = write_config(tmp_path, {"train_file": train})
    message = the_problem(config, "train_file")
    assert "all 3 rows have an empty dialogue or summary" in message and "data.summary_column" in message
    assert main(["validate", str(config)]) == 2
    assert main(["train", str(config)]) == 2
    assert run_entries(tmp_path / "root") == []


def test_header_only_and_empty_files_are_errors(tmp_path):
    header_only = tmp_path / "header.csv"
    header_only.write_text("fname,dialogue,summary\r\n", encoding="utf-8")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    config = write_config(tmp_path, {"train_file": header_only, "eval_file": empty})
    assert "a header but no rows" in the_problem(config, "train_file")
    assert "no rows (the file is empty)" in the_problem(config, "eval_file")
    assert main(["train", str(config)]) == 2
    assert run_entries(tmp_path / "root") == []


def test_rows_with_an_empty_field_are_dropped_counted_and_validate_still_passes(tmp_path):
    rows = [ROWS[0], ["k2", ROWS[1][1], ""], ["k3", "  ", ROWS[2][2]]]
    train = tmp_path / "train.csv"
    train.write_text(csv_text(rows), encoding="utf-8")
    config = write_config(tmp_path, {"train_file": train})
    result = run_cli("validate", str(config))
    assert result.returncode == 0, result.stderr
    assert "dropped 1 row(s) with an empty summary: k2 (row 2, line 4)" in result.stderr
    assert "dropped 1 row(s) with an empty dialogue: k3 (row 3, line 6)" in result.stderr
    assert [e.id for e in read_splits(load_config(config)).train] == ["k1"]


def test_without_clean_an_empty_field_is_an_error_listing_every_row(tmp_path):
    rows = [ROWS[0], ["k2", ROWS[1][1], ""], ["k3", ROWS[2][1], ""]]
    train = tmp_path / "train.csv"
    train.write_text(csv_text(rows), encoding="utf-8")
    message = the_problem(write_config(tmp_path, {"train_file": train, "clean": "false"}), "train_file")
    assert "2 row(s) with an empty summary: k2 (row 2, line 4), k3 (row 3, line 6)" in message
    assert "data.clean: true" in message


def test_duplicate_ids_warn_for_training_files_and_are_errors_for_the_test_file(tmp_path):
    same = [["same", dialogue, summary] for _, dialogue, summary in ROWS]
    duplicated = tmp_path / "dup.csv"
    duplicated.write_text(csv_text(same), encoding="utf-8")
    good = tmp_path / "good.csv"
    good.write_text(csv_text(ROWS), encoding="utf-8")

    warned = run_cli("validate", str(write_config(tmp_path, {"train_file": duplicated, "eval_file": duplicated}, "warn")))
    assert warned.returncode == 0, warned.stderr
    assert warned.stderr.count("1 id(s) in column 'fname' appear more than once: same (rows 1, 2, 3)") == 2
    assert "data.train_file" in warned.stderr and "data.eval_file" in warned.stderr

    config = write_config(tmp_path, {"train_file": good, "test_file": duplicated}, "refuse")
    message = the_problem(config, "test_file")
    assert "same (rows 1, 2, 3)" in message and "one row per id" in message
    with pytest.raises(PredictError, match="appear more than once"):  # sumtune predict --input dup.csv
        read_test_rows(duplicated, load_config(config, check_files=False))


def test_the_test_file_needs_an_id_column_and_an_id_in_every_row(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(csv_text(ROWS), encoding="utf-8")
    no_ids = tmp_path / "no_ids.csv"
    no_ids.write_text(csv_text([r[1:] for r in ROWS], ["dialogue", "summary"]), encoding="utf-8")
    assert "no column 'fname' (data.id_column)" in the_problem(write_config(tmp_path, {"train_file": good, "test_file": no_ids}), "test_file")
    blank_id = tmp_path / "blank_id.csv"
    blank_id.write_text(csv_text([ROWS[0], ["", ROWS[1][1], ""]]), encoding="utf-8")
    message = the_problem(write_config(tmp_path, {"train_file": good, "test_file": blank_id}), "test_file")
    assert "1 row(s) with an empty fname: (no id) (row 2, line 4)" in message


def test_a_missing_summary_column_names_the_config_key(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text(csv_text([r[:2] for r in ROWS], ["fname", "dialogue"]), encoding="utf-8")
    message = the_problem(write_config(tmp_path, {"train_file": train}), "train_file")
    assert "no column 'summary' (data.summary_column); it has fname, dialogue" in message


# --------------------------------------------------------------------------------------------------
# Malformed CSV


def test_ragged_rows_are_listed_with_row_line_and_field_count(tmp_path):
    """More fields (an unquoted comma) or fewer (a lost column) than the header; today's validate reads
    the header only, and a short row silently lost its summary."""
    train = tmp_path / "train.csv"
    train.write_text(csv_text(ROWS) + "k4,#Person1#: 안녕, 반가워.,인사한다.\r\nk5,#Person1#: 네.\r\n", encoding="utf-8")
    message = the_problem(write_config(tmp_path, {"train_file": train}), "train_file")
    assert "2 row(s) with more or fewer fields than the header's 3 columns (fname, dialogue, summary)" in message
    assert "row 4, line 8 (4 fields), row 5, line 9 (2 fields)" in message
    assert "in quotes" in message


def test_an_unterminated_quote_is_an_error_at_the_row_where_it_opens(tmp_path):
    """Without strict parsing the open quote swallows every later row into one field."""
    train = tmp_path / "train.csv"
    train.write_text(csv_text(ROWS) + 'k4,"#Person1#: 안녕,인사한다.\r\nk5,대화,요약\r\n', encoding="utf-8")
    message = the_problem(write_config(tmp_path, {"train_file": train}), "train_file")
    assert f"{train}, row 4, line 8: a quoted field opened here is never closed" in message


def test_text_after_a_closing_quote_is_an_error(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text(csv_text(ROWS[:1]) + 'k2,"#Person1#: 그가 "안녕" 했어요.",인사한다.\r\n', encoding="utf-8")
    message = the_problem(write_config(tmp_path, {"train_file": train}), "train_file")
    assert "row 2, line 4: text follows a closing quote" in message and '""' in message


def test_every_bad_file_is_reported_at_once(tmp_path):
    header_only = tmp_path / "header.csv"
    header_only.write_text("fname,dialogue,summary\n", encoding="utf-8")
    latin = write_bytes(tmp_path / "latin.csv", "fname,dialogue,summary\ne1,café,x\n".encode("latin-1"))
    config = write_config(tmp_path, {"train_file": header_only, "eval_file": latin, "test_file": tmp_path / "gone.csv"})
    keys = sorted(line.split(": ")[1] for line in problems_of(config))
    assert keys == ["data.eval_file", "data.test_file", "data.train_file"]


# --------------------------------------------------------------------------------------------------
# Training: the same checks before a run directory exists; truncation counted


def test_train_refuses_bad_data_before_reserving_a_run_directory(tmp_path):
    """train.train() (also what a sweep calls) checks every row first, even for a config loaded without
    the file checks; a bad file leaves no models/, outputs/ or logs/ entry behind."""
    from sumtune.train import train

    train_file = tmp_path / "train.csv"
    train_file.write_text(csv_text(ROWS) + 'k4,"unclosed,x\r\n', encoding="utf-8")
    cfg = load_config(write_config(tmp_path, {"train_file": train_file}), check_files=False)
    with pytest.raises(DataError, match="never closed"):
        train(cfg)
    assert run_entries(tmp_path / "root") == []


def test_sweep_records_a_bad_data_config_as_failed_without_training_it(tmp_path, capsys):
    train_file = tmp_path / "train.csv"
    train_file.write_text("fname,dialogue,summary\n", encoding="utf-8")
    config = write_config(tmp_path, {"train_file": train_file})
    assert main(["sweep", str(config), "--no-report"]) == 1
    assert "a header but no rows" in capsys.readouterr().err
    (run_json,) = (tmp_path / "root" / "outputs").glob("*/results/run.json")
    manifest = json.loads(run_json.read_text(encoding="utf-8"))
    assert manifest["status"] == "failed" and "a header but no rows" in manifest["error"]
    assert not list((tmp_path / "root" / "models").glob("*/config.yaml"))  # never reached train()


def test_truncated_dialogues_and_summaries_are_counted_in_one_line(sumtune_log):
    from sumtune.config import RunConfig
    from sumtune.loading import train_tokenizer

    long_dialogue = "\n".join(["#Person1#: 내일 회의는 몇 시에 시작하나요? #Person2#: 오전 열 시에 시작해요."] * 20)
    examples = [Example("short", ROWS[0][1], ROWS[0][2]), Example("long", long_dialogue, ROWS[1][2]),
                Example("both", long_dialogue, " ".join([ROWS[2][2]] * 10))]
    cfg = RunConfig.model_validate({"name": "t", "model": {"architecture": "bart", "init": "scratch"},
                                    "data": {"train_file": "unused.csv", "max_source_length": 64, "max_target_length": 32}})
    tokenizer = train_tokenizer([t for e in examples for t in (e.dialogue, e.summary)], cfg.arch, vocab_size=300)
    encode_examples(examples, cfg, tokenizer, "train")
    counted = [line for line in sumtune_log if line.startswith("train: truncated")]
    assert counted == ["train: truncated 2 of 3 dialogues and 1 of 3 summaries to fit data.max_source_length 64, "
                       "data.max_target_length 32 tokens; raise the limits to keep more of them"]
    sumtune_log.clear()
    encode_examples(examples[:1], cfg, tokenizer, "eval")
    assert any(line.startswith("eval: no dialogue or summary is truncated") for line in sumtune_log)


# --------------------------------------------------------------------------------------------------
# Speed: validate reads every row without a tokenizer


def test_validate_reads_every_row_of_the_real_data_fast():
    """The shared DialogSum files (500 rows each): no problems, well under a second each."""
    files = {
        "ko_dialogsum_2025/dev.csv": "eval_file",
        "ko_dialogsum_2025/test.csv": "test_file",
        "en_dialogsum/dialogsum.dev.jsonl": "eval_file",
        "en_dialogsum/dialogsum.test.jsonl": "test_file",
    }
    if not all((SHARED_DATA / name).is_file() for name in files):
        pytest.skip(f"shared data not present under {SHARED_DATA}")
    for name, role in files.items():
        path = SHARED_DATA / name
        summary = "summary1" if "test.jsonl" in name else "summary"
        started = time.perf_counter()
        checked = check_data_file(path, DataConfig(train_file=path, summary_column=summary), role)
        seconds = time.perf_counter() - started
        assert checked.problems == [] and checked.warnings == [], name
        assert len(checked.examples) in (499, 500), name
        assert seconds < 1.0, (name, seconds)


# --- row ranges and several references ---------------------------------------------------------------


def config_on(tmp_path, train: Path, eval_: Path, *overrides: str):
    return load_config(Path(__file__).resolve().parents[1] / "config" / "model_configs" / "tiny_bart.yaml",
                       [f"data.train_file={train}", f"data.eval_file={eval_}", "data.test_file=null",
                        f"output.root={tmp_path}", *overrides])


def test_train_rows_and_eval_rows_give_disjoint_parts_of_one_file(tmp_path):
    path = tmp_path / "all.csv"
    path.write_text(csv_text([[f"r{i}", f"#Person1#: 대화 {i}", f"요약 {i}"] for i in range(10)]), encoding="utf-8")
    splits = read_splits(config_on(tmp_path, path, path, "data.train_rows=0:7", "data.eval_rows='7:'"))
    assert [e.id for e in splits.train] == [f"r{i}" for i in range(7)]
    assert [e.id for e in splits.eval] == ["r7", "r8", "r9"]
    with pytest.raises(ConfigError, match="data.train_rows"):
        config_on(tmp_path, path, path, "data.train_rows=first-ten")
    with pytest.raises(ConfigError, match=r"data.eval_rows: .*got 90: write START:END in quotes"):
        config_on(tmp_path, path, path, "data.eval_rows=1:30")


def test_reference_columns_score_the_dev_file_against_every_reference(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text(csv_text(ROWS), encoding="utf-8")
    dev = tmp_path / "dev.csv"
    dev.write_text(csv_text([["d1", "#Person1#: 안녕?", "첫째 요약", "둘째 요약", ""]],
                            header=["fname", "dialogue", "summary1", "summary2", "summary3"]), encoding="utf-8")
    cfg = config_on(tmp_path, train, dev, "data.reference_columns=[summary1,summary2,summary3]")
    example = read_splits(cfg).eval[0]
    assert example.summary == "첫째 요약" and example.scored_against == ("첫째 요약", "둘째 요약")  # the empty one is dropped
    with pytest.raises(ConfigError, match=r"'summary4' \(data.reference_columns\)"):
        config_on(tmp_path, train, dev, "data.reference_columns=[summary1,summary4]")


def test_predictions_with_several_references_are_written_and_scored_against_all(tmp_path):
    from sumtune.artifacts import new_run

    run = new_run("multi", tmp_path)
    path = run.write_predictions(["a", "b"], ["the cat sat", "a dog ran"], [["the cat sat", "a cat sat"], ["dogs run"]])
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "prediction", "reference", "reference2"] and rows[1]["reference2"] == ""
    result = score_files(path, tokenizer="english")
    assert result.n_examples == 2 and result.rouge1 > 0.5
