"""ROUGE that is right for Korean and English, checked against rouge_score itself."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from sumtune import metrics
from sumtune.cli import main
from sumtune.metrics import format_table, get_tokenizer, rouge, score_files
from sumtune.records import atomic_path, read_records, write_csv_atomic, write_json_atomic

TYPES = ["rouge1", "rouge2", "rougeL"]
DIALOGSUM_TEST = Path(__file__).resolve().parents[2] / "shared/data/en_dialogsum/dialogsum.test.jsonl"

KO_PREDICTIONS = [
    "#Person1#은 내일 오후에 회의실을 예약하고 싶어 한다.",
    "#Person2#가 #Person1#에게 새 휴대폰 번호 #PhoneNumber#를 알려준다.",
]
KO_REFERENCES = [
    ["#Person1#은 내일 오후 회의실을 예약한다.", "#Person1#이 회의실 예약을 부탁한다.", "회의 준비."],
    ["#Person2#는 #Person1#에게 전화번호를 알려준다.", "#Person2#가 번호를 바꿨다."],
]
EN_PREDICTIONS = [
    "#Person1# asks #Person2# to book a meeting room for tomorrow afternoon.",
    "The cats were running after the dogs in the park.",
]
EN_REFERENCES = [
    ["#Person1# wants #Person2# to reserve a room tomorrow.", "A room is booked for tomorrow."],
    ["Cats ran after dogs.", "Dogs and cats play in the park together."],
]


def expected(tokenizer: object, predictions: list[str], reference_sets: list[list[str]]) -> dict:
    """Mean-over-references and max-over-references F1, computed straight from RougeScorer."""
    scorer = rouge_scorer.RougeScorer(TYPES, tokenizer=tokenizer)
    sums = dict.fromkeys(TYPES + [f"{t}_max" for t in TYPES], 0.0)
    for prediction, references in zip(predictions, reference_sets):
        scores = [scorer.score(reference, prediction) for reference in references]
        for t in TYPES:
            f1s = [score[t].fmeasure for score in scores]
            sums[t] += sum(f1s) / len(f1s)
            sums[f"{t}_max"] += max(f1s)
    return {key: total / len(predictions) for key, total in sums.items()}


def assert_matches(result: metrics.RougeResult, want: dict) -> None:
    for key, value in want.items():
        assert getattr(result, key) == pytest.approx(value, abs=1e-9), key


# --- Korean correctness -----------------------------------------------------------------------


def test_identical_korean_scores_one_where_rouge_score_default_gives_zero() -> None:
    text = "두 사람은 내일 오후에 도서관에서 만나기로 했다."
    default = rouge_scorer.RougeScorer(TYPES).score(text, text)
    assert [default[t].fmeasure for t in TYPES] == [0.0, 0.0, 0.0]  # the bug: Hangul is deleted

    for tokenizer in ("auto", "kiwi", "whitespace"):
        result = rouge([text], [text], tokenizer=tokenizer)
        assert (result.rouge1, result.rouge2, result.rougeL) == (1.0, 1.0, 1.0), tokenizer


def test_disjoint_korean_scores_zero() -> None:
    result = rouge(["고양이 밥"], ["비행기 출발"], tokenizer="kiwi")
    assert (result.rouge1, result.rouge2, result.rougeL) == (0.0, 0.0, 0.0)


# --- agreement with rouge_score -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "predictions", "references"),
    [
        ("english", EN_PREDICTIONS, EN_REFERENCES),
        ("auto", EN_PREDICTIONS, EN_REFERENCES),
        ("kiwi", KO_PREDICTIONS, KO_REFERENCES),
        ("auto", KO_PREDICTIONS, KO_REFERENCES),
        ("whitespace", KO_PREDICTIONS, KO_REFERENCES),
    ],
)
def test_matches_rouge_scorer_with_same_tokenizer(name, predictions, references) -> None:
    multi = rouge(predictions, references, tokenizer=name)
    assert_matches(multi, expected(get_tokenizer(name), predictions, references))
    assert multi.rouge1_max >= multi.rouge1 > 0

    first_only = [refs[0] for refs in references]
    single = rouge(predictions, first_only, tokenizer=name)
    assert_matches(single, expected(get_tokenizer(name), predictions, [[r] for r in first_only]))
    assert single.rouge1 == single.rouge1_max


def test_english_equals_rouge_score_default_stemmer_on_plain_text() -> None:
    predictions = ["The cats were running after the dogs.", "He bought three apples."]
    references = ["Cats ran after dogs!", "She buys apples and pears."]
    result = rouge(predictions, references, tokenizer="english")
    assert_matches(result, expected(None, predictions, [[r] for r in references]))


def test_score_is_the_sum_of_rouge1_rouge2_rougeL() -> None:
    result = rouge(KO_PREDICTIONS, KO_REFERENCES)
    assert result.score == pytest.approx(result.rouge1 + result.rouge2 + result.rougeL, abs=1e-12)
    assert result.as_dict()["score"] == result.score
    assert all(0.0 <= value <= 1.0 for value in (result.rouge1, result.rouge2, result.rougeL_max))


# --- tokenizers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tag_tokens"),
    [
        ("kiwi", ["#Person1#", "#PhoneNumber#"]),
        ("whitespace", ["#Person1#", "#PhoneNumber#"]),
        ("english", ["#person1#", "#phonenumber#"]),
    ],
)
def test_speaker_tags_and_masks_are_single_tokens(name, tag_tokens) -> None:
    tokens = get_tokenizer(name).tokenize("#Person1#은 #PhoneNumber#로 call me")
    assert [token for token in tokens if token.startswith("#")] == tag_tokens
    assert tokens[0] == tag_tokens[0]


def test_kiwi_splits_the_particle_off_a_tag() -> None:
    tokens = get_tokenizer("kiwi").tokenize("#Person1#은 왔다")
    assert tokens[:2] == ["#Person1#", "은"]


def test_auto_picks_kiwi_for_hangul_and_english_otherwise() -> None:
    auto = get_tokenizer("auto")
    assert auto.tokenize("Running dogs") == get_tokenizer("english").tokenize("Running dogs")
    assert auto.label == "auto(english)"
    assert auto.tokenize("뛰는 개") == get_tokenizer("kiwi").tokenize("뛰는 개")
    assert auto.label == "auto(kiwi+english)"

    mixed = rouge(["dogs run", "개가 뛴다"], ["dogs ran", "개가 뛰었다"], tokenizer="auto")
    assert mixed.tokenizer == "auto(kiwi+english)"


def test_auto_tokenizes_prediction_and_references_of_an_example_alike() -> None:
    # A prediction with no Hangul (only speaker tags, as an undertrained model writes) against a
    # Korean reference: both sides go through kiwi, so the shared tags match.
    prediction, reference = "#Person1##Person2#", "#Person1#은 왔고 #Person2#는 갔다"
    auto = rouge([prediction], [reference], tokenizer="auto")
    kiwi = rouge([prediction], [reference], tokenizer="kiwi")
    assert auto.rouge1 > 0
    assert (auto.rouge1, auto.rouge2, auto.rougeL) == (kiwi.rouge1, kiwi.rouge2, kiwi.rougeL)
    assert auto.tokenizer == "auto(kiwi)"


def test_auto_without_kiwipiepy_uses_whitespace_and_warns_once(monkeypatch, caplog) -> None:
    def missing() -> None:
        raise ImportError("No module named 'kiwipiepy'")

    monkeypatch.setattr(metrics, "_kiwi_instance", missing)
    metrics._warn_kiwi_missing.cache_clear()
    with caplog.at_level(logging.WARNING, logger="sumtune"):
        first = rouge(["안녕하세요 반갑습니다"], ["안녕하세요 반갑습니다"], tokenizer="auto")
        rouge(["안녕"], ["안녕"], tokenizer="auto")
    notices = [r for r in caplog.records if "kiwipiepy" in r.getMessage()]
    assert len(notices) == 1
    assert "sumtune[korean]" in notices[0].getMessage()
    assert first.tokenizer == "auto(whitespace)" and first.rouge1 == 1.0
    metrics._warn_kiwi_missing.cache_clear()


def test_unknown_tokenizer_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="kiwi, mecab, whitespace, english"):
        get_tokenizer("bpe")


# --- guards -------------------------------------------------------------------------------------


class FakeMeCab:
    """python-mecab-ko's MeCab where '~~~' has no morphemes (the package is not installed here)."""

    def morphs(self, text: str) -> list[str]:
        return [] if text.strip() == "~~~" else text.split()


@pytest.mark.parametrize(
    "name, tokenless",
    [("english", "..."), ("english", "!!! ???"), ("auto", "..."), ("whitespace", " \t\n"), ("kiwi", "\u3000"),
     ("mecab", "~~~"), ("kiwi", "")],
)
def test_a_prediction_without_tokens_scores_zero_and_is_counted(monkeypatch, name, tokenless) -> None:
    monkeypatch.setattr(metrics, "_mecab_instance", FakeMeCab)
    result = rouge(["same words", tokenless], ["same words", "other words"], tokenizer=name, ids=["a", "b"])
    assert result.n_examples == 2 and result.n_empty_predictions == 1 and result.n_skipped_examples == 0
    assert result.rouge1 == pytest.approx(0.5) and result.rougeL_max == pytest.approx(0.5)
    assert result.as_dict()["n_empty_predictions"] == 1


def test_more_than_ten_percent_empty_predictions_warns_with_the_usual_causes(caplog, monkeypatch) -> None:
    monkeypatch.setattr(logging.getLogger("sumtune"), "propagate", True)  # the CLI tests turn it off
    references = [f"#Person1# talks about topic {i}." for i in range(40)]
    with caplog.at_level(logging.WARNING, logger="sumtune"):
        result = rouge([""] * 40, references, tokenizer="english")  # a tiny T5 that stops at once
    assert (result.n_empty_predictions, result.n_examples, result.score) == (40, 40, 0.0)
    [warning] = [r.getMessage() for r in caplog.records if "predictions" in r.getMessage()]
    assert "40 of 40 predictions (100%) are empty or have no tokens under the 'english'" in warning
    for cause in ("end token", "too few training steps", "learning rate", "max_new_tokens", "stop id"):
        assert cause in warning

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sumtune"):
        exactly_ten = rouge([""] * 4 + ["a word"] * 36, ["a word"] * 40, tokenizer="english")
    assert exactly_ten.n_empty_predictions == 4 and exactly_ten.rouge1 == pytest.approx(0.9)
    assert not caplog.records  # counted, but 10 % is not "more than 10 %"


def test_a_reference_without_tokens_is_ignored_and_an_example_with_none_is_skipped(caplog, monkeypatch) -> None:
    monkeypatch.setattr(logging.getLogger("sumtune"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="sumtune"):
        result = rouge(["a b", "c d", "e f"], [["a b", ""], ["..."], ["x y", "e f"]], tokenizer="english",
                       ids=["k", "l", "m"])
    assert (result.n_examples, result.n_skipped_examples, result.n_empty_predictions) == (2, 1, 0)
    assert result.rouge1 == pytest.approx((1.0 + 0.5) / 2)  # "a b" against "a b" only; "e f" against both
    assert result.rouge1_max == pytest.approx(1.0)
    [warning] = [r.getMessage() for r in caplog.records]
    assert "example 0 (id 'k') reference 1, example 1 (id 'l') reference 0" in warning
    assert "1 example(s) had no other reference" in warning
    with pytest.raises(ValueError, match=r"nothing to score: .*'whitespace'.*example 0, example 1"):
        rouge(["a", "b"], [" ", ["", "\n"]], tokenizer="whitespace")


def test_mismatched_lengths_name_both_counts() -> None:
    with pytest.raises(ValueError, match="3 predictions but 2 references"):
        rouge(["a", "b", "c"], ["a", "b"])


# --- files --------------------------------------------------------------------------------------


def test_score_files_csv_with_numbered_summary_columns(tmp_path) -> None:
    rows = [
        {"fname": f"t{i}", "summary1": pred, "summary2": refs[0], "summary3": refs[1]}
        for i, (pred, refs) in enumerate(zip(EN_PREDICTIONS, EN_REFERENCES))
    ]
    path = write_csv_atomic(tmp_path / "test.csv", rows, ["fname", "summary1", "summary2", "summary3"])
    result = score_files(path, prediction_column="summary1", tokenizer="english")
    reference_sets = [[pred, *refs] for pred, refs in zip(EN_PREDICTIONS, EN_REFERENCES)]
    assert_matches(result, expected(get_tokenizer("english"), EN_PREDICTIONS, reference_sets))
    assert result.rouge1_max == 1.0

    table = format_table(result)
    assert "rougeL" in table and "score" in table and "english" in table


def test_score_files_jsonl_predictions_matched_to_references_by_id(tmp_path) -> None:
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(
        "\n".join(json.dumps({"fname": f"d{i}", "summary": p}) for i, p in enumerate(KO_PREDICTIONS))
        + "\n\n",
        encoding="utf-8",
    )
    references = tmp_path / "dev.csv"  # reversed order: pairing must go by fname
    write_csv_atomic(
        references,
        [{"fname": f"d{i}", "summary": refs[0]} for i, refs in reversed(list(enumerate(KO_REFERENCES)))],
        ["fname", "summary"],
    )
    result = score_files(predictions, references)
    want = expected(get_tokenizer("auto"), KO_PREDICTIONS, [[refs[0]] for refs in KO_REFERENCES])
    assert_matches(result, want)
    assert result.tokenizer == "auto(kiwi)"


def test_score_files_errors_name_file_column_and_ids(tmp_path) -> None:
    predictions = write_csv_atomic(tmp_path / "p.csv", [{"id": "x", "pred": "a"}], ["id", "pred"])
    with pytest.raises(ValueError, match=r"p\.csv: no prediction column 'prediction'.*id, pred"):
        score_files(predictions)
    references = write_csv_atomic(tmp_path / "r.csv", [{"id": "y", "summary": "a"}], ["id", "summary"])
    with pytest.raises(ValueError, match="no reference row for these .* ids: x"):
        score_files(predictions, references, prediction_column="pred")
    unlabelled = write_csv_atomic(tmp_path / "u.csv", [{"summary": "a"}] * 2, ["summary"])
    with pytest.raises(ValueError, match="has 1 rows but .* has 2"):
        score_files(predictions, unlabelled, prediction_column="pred")


def test_dialogsum_test_subset_matches_rouge_scorer(tmp_path) -> None:
    if not DIALOGSUM_TEST.exists():
        pytest.skip(f"{DIALOGSUM_TEST} not present")
    subset = tmp_path / "dialogsum50.jsonl"
    lines = DIALOGSUM_TEST.read_text(encoding="utf-8").splitlines()[:50]
    subset.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = read_records(subset)
    result = score_files(subset, prediction_column="summary1")
    reference_sets = [[row[f"summary{k}"] for k in (1, 2, 3)] for row in rows]
    want = expected(get_tokenizer("english"), [row["summary1"] for row in rows], reference_sets)
    assert_matches(result, want)
    assert result.n_examples == 50 and result.tokenizer == "auto(english)"


def test_sumtune_score_shows_the_empty_count_and_prints_the_warning(tmp_path, capsys, monkeypatch) -> None:
    sumtune_logger = logging.getLogger("sumtune")
    monkeypatch.setattr(sumtune_logger, "handlers", [])  # so the CLI's handler writes to this test's stderr
    monkeypatch.setattr(sumtune_logger, "propagate", sumtune_logger.propagate)
    rows = [{"id": f"d{i}", "prediction": "" if i < 3 else "the cat sat", "reference": "the cat sat"} for i in range(5)]
    path = write_csv_atomic(tmp_path / "predictions.csv", rows, ["id", "prediction", "reference"])

    assert main(["score", "--predictions", str(path), "--tokenizer", "english"]) == 0
    out = capsys.readouterr()
    assert re.search(r"^empty\s+3\b", out.out, re.MULTILINE) and "rouge1" in out.out
    assert "3 of 5 predictions (60%) are empty" in out.err and "max_new_tokens" in out.err
    assert "id 'd0'" in out.err

    assert main(["score", "--predictions", str(path), "--tokenizer", "english", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["n_empty_predictions"] == 3 and scores["rouge1"] == pytest.approx(0.4)


# --- records (shared reader and atomic writers used above) --------------------------------------


def test_read_records_reports_bad_json_line_and_unknown_suffix(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n\n{"a": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3"):
        read_records(bad)
    with pytest.raises(ValueError, match=r"\.csv, \.jsonl, \.json"):
        read_records(tmp_path / "data.parquet")


def test_atomic_writers_round_trip_and_leave_no_temp_files(tmp_path) -> None:
    target = tmp_path / "deep" / "dir" / "rows.csv"
    write_csv_atomic(target, [{"fname": "a", "summary": "요약, 하나"}], ["fname", "summary"])
    assert read_records(target) == [{"fname": "a", "summary": "요약, 하나"}]
    write_json_atomic(tmp_path / "deep" / "run.json", {"score": 1.5, "name": "한국어"})
    assert json.loads((tmp_path / "deep" / "run.json").read_text(encoding="utf-8"))["name"] == "한국어"
    assert sorted(p.name for p in (tmp_path / "deep").rglob("*")) == ["dir", "rows.csv", "run.json"]


def test_atomic_path_renames_on_success_and_keeps_the_old_file_on_failure(tmp_path) -> None:
    target = tmp_path / "chart.png"
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".png" and not temporary.exists()
        temporary.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(OSError, match="disk full"):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise OSError("disk full")
    assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["chart.png"]
