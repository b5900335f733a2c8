"""Inputs at the edges (issue 26): Korean in another Unicode form and invisible characters, predict's
output path, long CSV fields and huge records, malformed --set values, overlapping train and eval data."""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

import pytest

from sumtune import data
from sumtune.cli import main
from sumtune.config import DataConfig, load_config
from sumtune.datafiles import check_data_file
from sumtune.metrics import score_files
from sumtune.normalization import DESCRIPTION
from sumtune.records import read_table

REPO = Path(__file__).resolve().parents[1]
TINY_BART = REPO / "config" / "model_configs" / "tiny_bart.yaml"
SAMPLE = REPO / "data" / "sample"
KOBART_TOKENIZER = REPO.parent / "shared" / "fixtures" / "tokenizers" / "kobart" / "tokenizer.json"
SUMMARIES = ["#Person1#은 내일 회의를 ＯＫ했다.", "두 사람이 점심을 먹으러 간다！", "#Person2#가 station 가는 길을 알려준다."]


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- one Unicode form ------------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer", ["auto", "kiwi", "mecab", "whitespace", "english"])
def test_mixed_normalisation_korean_predictions_score_like_their_nfc_twin(tmp_path, tokenizer):
    if tokenizer == "mecab":
        pytest.importorskip("mecab")
    mixed = [unicodedata.normalize("NFD", SUMMARIES[0]), SUMMARIES[1].replace("점심", "점\u200b심"),
             unicodedata.normalize("NFD", SUMMARIES[2]).replace("！", "!")]
    as_nfd = write_rows(tmp_path / "mixed.csv", ["id", "prediction", "reference"],
                        [[str(i), p, r] for i, (p, r) in enumerate(zip(mixed, SUMMARIES))])
    twin = write_rows(tmp_path / "twin.csv", ["id", "prediction", "reference"],
                      [[str(i), r, r] for i, r in enumerate(SUMMARIES)])
    scored, expected = score_files(as_nfd, tokenizer=tokenizer), score_files(twin, tokenizer=tokenizer)
    assert scored.as_dict() == expected.as_dict()
    assert scored.rouge1 == pytest.approx(1.0)


def test_training_and_test_text_is_read_in_one_unicode_form_and_the_run_records_it(tmp_path):
    nfd = unicodedata.normalize("NFD", "#Person1#: 안녕하세요\n#Person2#: 반가워요")
    train = write_rows(tmp_path / "train.csv", ["fname", "dialogue", "summary"],
                       [["t1", nfd, unicodedata.normalize("NFD", SUMMARIES[1]) + "\ufeff"]])
    [example] = check_data_file(train, DataConfig(train_file=train), "train_file").examples
    assert example.dialogue == unicodedata.normalize("NFC", nfd) and example.summary == "두 사람이 점심을 먹으러 간다!"
    from sumtune.artifacts import new_run
    from sumtune.train import describe_run

    cfg = load_config(TINY_BART, [f"output.root={tmp_path}", f"data.train_file={train}", "data.eval_file=null"])
    assert describe_run(cfg, new_run(cfg.name, tmp_path))["text_normalization"] == DESCRIPTION


def test_an_id_made_only_of_a_zero_width_space_is_refused_in_a_test_file(tmp_path):
    test_file = write_rows(tmp_path / "test.csv", ["fname", "dialogue"], [["t1", "안녕"], ["\u200b", "반가워요"]])
    checked = check_data_file(test_file, DataConfig(train_file=test_file), "test_file")
    assert checked.problems and "1 row(s) with an empty fname: (no id) (row 2, line 3)" in checked.problems[0]


# --- predict's output path -------------------------------------------------------------------------


def test_predict_refuses_to_write_over_its_input_or_into_a_directory_before_looking_for_a_run(tmp_path, monkeypatch, capsys):
    test_file = write_rows(tmp_path / "test.csv", ["fname", "dialogue"], [["t1", "안녕"]])
    before = test_file.read_bytes()
    monkeypatch.chdir(tmp_path)
    for output, message in ((test_file, "is the --input file"), (Path("test.csv"), "is the --input file"),
                            (tmp_path, "is a directory"), (test_file / "out.csv", "is a file, not a directory")):
        assert main(["predict", "no_such_run", "--input", str(test_file), "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert message in err and "no_such_run" not in err, err  # refused before any run is looked up
    assert test_file.read_bytes() == before


# --- long fields and records -----------------------------------------------------------------------


def test_a_well_formed_csv_field_over_128_kib_is_read_and_an_unclosed_quote_is_still_an_error(tmp_path):
    long_dialogue = "#Person1#: " + "가나다라 " * 60_000  # 300 KiB
    path = write_rows(tmp_path / "long.csv", ["fname", "dialogue", "summary"], [["t1", long_dialogue, "요약"], ["t2", "짧다", "요약"]])
    assert [row["dialogue"] for row in read_table(path).rows] == [long_dialogue, "짧다"]
    path.write_text('fname,dialogue,summary\nt1,"never closed,요약\nt2,짧다,요약\n' + "가" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 1, line 2: a quoted field opened here is never closed"):
        read_table(path)


class CountingTokenizer:
    """One id per character; remembers the longest text it was given (a 2 MB text tokenized whole costs
    hundreds of MB in ids and offsets)."""

    def __init__(self):
        self.longest = 0

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        self.longest = max(self.longest, len(text))
        return {"input_ids": [ord(c) for c in text], "offset_mapping": [(i, i + 1) for i in range(len(text))]}


def test_a_huge_record_is_tokenized_only_as_far_as_the_token_limit(monkeypatch):
    tokenizer = CountingTokenizer()
    fitted = data.fit_text("가" * 2_000_000, lambda text: tokenizer(text)["input_ids"], 384, tokenizer, "data.max_source_length")
    assert len(fitted.ids) == 384 and fitted.cut
    assert tokenizer.longest <= 384 * data.CHARS_PER_TOKEN
    # with a real tokenizer the ids are those of cutting the whole text
    if not KOBART_TOKENIZER.is_file():
        pytest.skip(f"{KOBART_TOKENIZER} is not here")
    from transformers import PreTrainedTokenizerFast

    kobart = PreTrainedTokenizerFast(tokenizer_file=str(KOBART_TOKENIZER))
    text = " ".join(row["dialogue"] for row in read_table(SAMPLE / "ko_train.csv").rows) * 20

    def encode(piece):
        return kobart(piece)["input_ids"]

    cut = data.fit_text(text, encode, 384, kobart, "data.max_source_length")
    monkeypatch.setattr(data, "CHARS_PER_TOKEN", len(text))  # the whole text, as before
    assert cut == data.fit_text(text, encode, 384, kobart, "data.max_source_length")


# --- --set values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["training.learning_rate=[1e-4,", "name=!!python/object/apply:os.system [echo hi]",
                                   "training.seed={a: 1", "model.checkpoint=@here"])
def test_a_malformed_or_tagged_set_value_is_one_line_and_exit_2(value, capsys):
    assert main(["train", str(TINY_BART), "--set", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"--set {value}: the value is not valid YAML"), err


# --- overlapping train and eval data ---------------------------------------------------------------


def test_overlapping_train_and_eval_data_is_a_warning_with_counts_from_validate_and_train(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    train = SAMPLE / "ko_train.csv"
    rows = read_table(train).rows
    partly = write_rows(tmp_path / "dev.csv", ["fname", "dialogue", "summary"],
                        [[r["fname"], r["dialogue"], r["summary"]] for r in rows[:2]] + [["new1", "#Person1#: 새 대화", "새 요약"]])
    given = ["--set", f"data.train_file={train}"]
    assert main(["validate", str(TINY_BART), *given, "--set", f"data.eval_file={train}"]) == 0
    assert f"{len(rows)} of {len(rows)} dev rows have the dialogue of a row of data.train_file {train} (the same file)" in capsys.readouterr().err
    assert main(["validate", str(TINY_BART), *given, "--set", f"data.eval_file={partly}"]) == 0
    assert f"2 of 3 dev rows have the dialogue of a row of data.train_file {train}: {rows[0]['fname']}, {rows[1]['fname']};" in capsys.readouterr().err
    disjoint = [f"data.eval_file={train}", "data.train_rows='0:4'", "data.eval_rows='4:'"]  # one file split in two
    assert main(["validate", str(TINY_BART), *given, *[a for o in disjoint for a in ("--set", o)]]) == 0
    assert "dev rows have the dialogue" not in capsys.readouterr().err

    data.log_splits(data.read_splits(load_config(TINY_BART, [f"data.eval_file={partly}"])))  # what train() logs
    assert "2 of 3 dev rows have the dialogue of a row of data.train_file" in capsys.readouterr().err
