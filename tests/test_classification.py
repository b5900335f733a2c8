"""Sequence classification through the same flow as summarization (task: classification): config
checks before any model loads, the stratified dev split, a SEQ_CLS LoRA run whose head trains and is
saved with the adapter, dev scores against the majority class, predict, sumtune.load(...).classify, and a
sweep of a classification and a summarization run reported together."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import sumtune
from sumtune.artifacts import find_runs
from sumtune.classify import class_weights, max_text_tokens, model_label_facts, weighted_loss
from sumtune.cli import main
from sumtune.config import ConfigError, load_config
from sumtune.data import read_splits, stratified_split
from sumtune.datafiles import LabeledText

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
TINY_SPAM = REPO / "config" / "model_configs" / "tiny_electra_spam.yaml"
TINY_BART = REPO / "config" / "model_configs" / "tiny_bart.yaml"
CLASSIFICATION_BASE = REPO / "config" / "base" / "classification.yaml"


def write_rows(path: Path, rows, header=("id", "text", "label")) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def spam_config(tmp_path: Path, name: str = "spam", extra: str = "", train: Path = SAMPLE / "ko_spam_train.csv",
                dev: Path | None = SAMPLE / "ko_spam_dev.csv") -> Path:
    """The shipped tiny classification config with absolute data paths and its own output root."""
    path = tmp_path / f"{name}.yaml"
    eval_file = f", eval_file: {dev}" if dev is not None else ", eval_file: null"
    path.write_text(f"_base_: {TINY_SPAM}\nname: {name}\ndata: {{train_file: {train}{eval_file}}}\n"
                    f"output: {{root: {tmp_path / 'work'}}}\n" + extra, encoding="utf-8")
    return path


def problems(path: Path, *overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    return "\n".join(info.value.problems)


# --- checked before any model loads ----------------------------------------------------------------


def test_a_missing_text_column_names_the_key_and_the_columns_the_file_has(tmp_path):
    message = problems(spam_config(tmp_path), "data.text_column=message")
    assert "'message' (data.text_column)" in message and "it has id, text, label" in message


def test_one_class_of_training_data_is_refused(tmp_path):
    train = write_rows(tmp_path / "train.csv", [(f"t{i}", f"문자 {i}", "ham") for i in range(6)])
    message = problems(spam_config(tmp_path, train=train, dev=None))
    assert "every row has the label 'ham'" in message and "at least two labels" in message


def test_a_dev_label_the_training_data_never_shows_is_refused_with_its_rows(tmp_path):
    dev = write_rows(tmp_path / "dev.csv", [("d1", "안녕", "ham"), ("d2", "광고 클릭", "phishing"), ("d3", "당첨", "phishing")])
    message = problems(spam_config(tmp_path, dev=dev))
    assert "label 'phishing' (rows d2, d3) never appear" in message and "labels there: ham, spam" in message


def test_a_label_outside_data_labels_is_refused(tmp_path):
    message = problems(spam_config(tmp_path), "data.labels=[ham, scam]")
    assert "label 'spam'" in message and "not in data.labels (ham, scam)" in message


@pytest.mark.parametrize("override, key", [
    ("generation.num_beams=2", "generation"),
    ("data.summary_column=summary", "data.summary_column"),
    ("preprocessing.prefix=x", "preprocessing"),
    ("data.eval_split=0.3", "data.eval_split"),  # with eval_file set: one or the other
])
def test_keys_a_classification_run_would_ignore_are_refused(tmp_path, override, key):
    message = problems(spam_config(tmp_path), override)
    assert f"{key}:" in message


def test_classification_keys_are_refused_in_a_summarization_config(tmp_path):
    message = problems(TINY_BART, "training.class_weights=auto", "data.text_column=text")
    assert "training.class_weights: is for task classification only" in message
    assert "data.text_column: is for task classification only" in message


def test_the_task_and_the_family_must_agree(tmp_path):
    assert "'bart' is a family for summarization" in problems(spam_config(tmp_path), "model.architecture=bart")
    assert "'electra' is a family for classification" in problems(TINY_BART, "model.architecture=electra")


def test_bad_data_stops_training_before_any_run_directory_exists(tmp_path):
    train = write_rows(tmp_path / "train.csv", [(f"t{i}", f"문자 {i}", "spam") for i in range(6)])
    code = main(["train", str(spam_config(tmp_path, train=train, dev=None))])
    assert code == 2
    assert not (tmp_path / "work").exists()


# --- labels and the dev split ----------------------------------------------------------------------


def test_the_eval_split_is_stratified_and_deterministic(tmp_path):
    cfg = load_config(spam_config(tmp_path, dev=None))
    assert cfg.eval_split == 0.2
    splits = read_splits(cfg)
    again = read_splits(load_config(spam_config(tmp_path, dev=None)))
    other_seed = read_splits(load_config(spam_config(tmp_path, dev=None), ["training.seed=7"]))
    assert [e.id for e in splits.eval] == [e.id for e in again.eval]
    assert [e.id for e in splits.eval] != [e.id for e in other_seed.eval]
    everything = Counter(e.label for e in splits.train + splits.eval)
    held_out = Counter(e.label for e in splits.eval)
    assert sum(everything.values()) == 240 and not {e.id for e in splits.train} & {e.id for e in splits.eval}
    for label, count in everything.items():  # each class keeps its share
        assert held_out[label] == round(count * 0.2), (label, held_out, everything)


def test_a_label_with_one_row_stays_in_training():
    rows = [LabeledText(f"r{i}", "x", "a") for i in range(10)] + [LabeledText("lonely", "y", "b")]
    train, dev = stratified_split(rows, 0.2, seed=1)
    assert "lonely" in {e.id for e in train} and len(dev) == 2


def test_integer_labels_keep_their_values_as_ids(tmp_path):
    path = tmp_path / "stars.yaml"
    train = write_rows(tmp_path / "stars.csv", [(f"s{i}", f"리뷰 {i}", str(1 + i % 3)) for i in range(12)])
    path.write_text(f"_base_: {TINY_SPAM}\nname: stars\ndata: {{train_file: {train}, eval_file: null}}\n", encoding="utf-8")
    cfg = load_config(path)
    cfg.data.labels = read_splits(cfg).labels
    facts = model_label_facts(cfg)
    assert cfg.data.labels == [1, 2, 3]
    assert facts["num_labels"] == 4 and facts["id2label"][2] == "2" and facts["label2id"]["3"] == 3
    assert facts["id2label"][0] == "unused_0"


def test_auto_class_weights_balance_the_classes_and_the_loss_uses_them(tmp_path):
    cfg = load_config(spam_config(tmp_path, extra="training: {class_weights: auto}\n"))
    splits = read_splits(cfg)
    cfg.data.labels = splits.labels
    weights = class_weights(cfg, splits.train)
    counts = Counter(e.label for e in splits.train)  # 150 ham, 90 spam
    assert weights == pytest.approx([240 / (2 * counts["ham"]), 240 / (2 * counts["spam"])])
    logits, labels = torch.tensor([[2.0, -1.0], [0.5, 0.2], [-1.0, 1.0]]), torch.tensor([0, 1, 1])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=torch.tensor(weights), reduction="sum") / 3
    assert weighted_loss(weights)({"logits": logits}, labels, num_items_in_batch=3) == pytest.approx(expected.item())
    assert weights[1] > weights[0]  # the rarer class weighs more


def test_texts_are_cut_to_the_positions_the_model_has(tmp_path, caplog):
    """KcBERT has 300 positions: a longer data.max_source_length must not index past them."""
    cfg = load_config(spam_config(tmp_path), ["data.max_source_length=512"])

    class Model:
        class config:
            max_position_embeddings = 300

    assert max_text_tokens(cfg, Model) == 300
    assert "more than the 300 positions" in caplog.text
    roberta = load_config(spam_config(tmp_path), ["model.architecture=roberta", "data.max_source_length=512"])
    Model.config.max_position_embeddings = 514
    assert max_text_tokens(roberta, Model) == 512


# --- one trained run: the acceptance run of the tiny config ----------------------------------------


@pytest.fixture(scope="module")
def spam_run(tmp_path_factory):
    """tiny_electra_spam as shipped (scratch ELECTRA, LoRA on query/value), trained once for this module."""
    tmp_path = tmp_path_factory.mktemp("spam")
    config = spam_config(tmp_path, name="tiny_electra_spam")
    assert main(["train", str(config)]) == 0
    [run] = find_runs("tiny_electra_spam", tmp_path / "work")
    return run, config


def test_the_tiny_config_beats_the_majority_class_by_a_clear_margin(spam_run):
    run, _ = spam_run
    metrics = json.loads((run.results_dir / "metrics.json").read_text(encoding="utf-8"))
    manifest = json.loads(run.run_json.read_text(encoding="utf-8"))
    assert metrics["macro_f1"] >= metrics["majority_macro_f1"] + 0.15, metrics
    assert metrics["score"] == metrics["macro_f1"] and metrics["n_examples"] == 90
    assert sum(map(sum, metrics["confusion_matrix"])) == 90 and set(metrics["per_class"]) == {"ham", "spam"}
    assert manifest["task"] == "classification" and manifest["labels"] == ["ham", "spam"]
    assert manifest["status"] == "completed" and manifest["backend"] == "peft"
    with (run.results_dir / "predictions.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "text", "label", "predicted_label", "probability"] and len(rows) == 90
    accuracy = sum(r["label"] == r["predicted_label"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(metrics["accuracy"])


def test_the_head_trains_in_full_and_is_saved_with_the_adapter(spam_run):
    run, _ = spam_run
    adapter = load_file(str(run.model_dir / "adapter_model.safetensors"))
    initial = load_file(str(run.model_dir / "base_model" / "model.safetensors"))
    head = {name: tensor for name, tensor in adapter.items() if ".classifier." in name}
    assert head and any("lora_A" in name and ".query." in name for name in adapter)
    assert not any("lora" in name and ".key." in name for name in adapter)  # LoRA on query and value only
    for name, tensor in head.items():
        start = initial[name.split("modules_to_save.default.")[-1].replace("base_model.model.", "")]
        assert not torch.equal(tensor, start), f"{name} did not train"
    config = json.loads((run.model_dir / "base_model" / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {"0": "ham", "1": "spam"}


def test_predict_writes_labels_in_input_order(spam_run, tmp_path):
    run, _ = spam_run
    texts = ["(광고) 무료 대출 한도 조회 지금 클릭 http://loan.example", "엄마 나 오늘 늦어 저녁 먼저 먹어", "ㅇㅋ"]
    rows = [(f"z{i}", text) for i, text in zip((3, 1, 2), texts)]
    source = write_rows(tmp_path / "test.csv", rows, header=("id", "text"))
    out = tmp_path / "labels.csv"
    assert main(["predict", str(run.model_dir), "--input", str(source), "--output", str(out), "--probabilities"]) == 0
    with out.open(encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert [r["id"] for r in written] == ["z3", "z1", "z2"]
    assert list(written[0]) == ["id", "label", "probability_ham", "probability_spam"]
    trained = sumtune.load(run.model_dir)
    assert [r["label"] for r in written] == trained.classify(texts)
    for row, scored in zip(written, trained.classify(texts, probabilities=True)):
        assert float(row["probability_ham"]) + float(row["probability_spam"]) == pytest.approx(1.0, abs=1e-5)
        assert float(row[f"probability_{scored.label}"]) == pytest.approx(scored.probability, abs=1e-5)
    with pytest.raises(ValueError, match="classification run: use .classify"):
        trained.summarize(texts)


def test_predict_names_rows_by_number_when_the_file_has_no_id_column(spam_run, tmp_path):
    run, _ = spam_run
    source = write_rows(tmp_path / "plain.csv", [("안녕하세요",), ("당첨 축하드립니다 링크 확인",)], header=("text",))
    out = tmp_path / "labels.csv"
    assert main(["predict", str(run.model_dir), "--input", str(source), "--output", str(out)]) == 0
    with out.open(encoding="utf-8") as handle:
        assert [r["id"] for r in csv.DictReader(handle)] == ["row1", "row2"]


def test_a_sweep_of_both_tasks_gives_one_report_with_both_sections(tmp_path):
    root = tmp_path / "work"
    spam = spam_config(tmp_path, name="spam_quick", extra="training: {max_steps: 3, eval_strategy: 'no', save_strategy: 'no'}\n")
    bart = tmp_path / "bart_quick.yaml"
    bart.write_text(f"_base_: {TINY_BART}\nname: bart_quick\n"
                    f"data: {{train_file: {SAMPLE / 'ko_train.csv'}, eval_file: {SAMPLE / 'ko_dev.csv'}, test_file: null}}\n"
                    "training: {max_steps: 2, eval_strategy: 'no', save_strategy: 'no'}\nevaluation: {max_examples: 2}\n"
                    f"generation: {{max_new_tokens: 8, num_beams: 1}}\noutput: {{root: {root}}}\n", encoding="utf-8")
    report = tmp_path / "report"
    assert main(["sweep", str(spam), str(bart), "--out", str(report)]) == 0
    markdown = (report / "comparison.md").read_text(encoding="utf-8")
    assert "## Summarization runs" in markdown and "## Classification runs" in markdown
    assert "spam_quick" in markdown.split("## Classification runs")[1]
    [run] = find_runs("spam_quick", root)
    assert (report / f"confusion_{run.run_id}.png").is_file()
    assert (report / "comparison_classification.csv").is_file() and (report / "comparison.csv").is_file()


def test_an_exported_classifier_gives_the_labels_sumtune_gives_without_sumtune(spam_run, tmp_path):
    run, _ = spam_run
    out = tmp_path / "export"
    assert main(["export", str(run.model_dir), "--out", str(out)]) == 0
    assert not (out / "generation_config.json").exists()  # a classifier does not generate
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "Text classification" in card and "macro-F1" in card
    snippet = card.split("```python")[1].split("```")[0].replace('print(classify("..."))', "")
    namespace: dict = {}
    exec(snippet, namespace)  # the card's own lines: transformers and peft only
    texts = ["(광고) 무료 대출 한도 조회 지금 클릭", "엄마 나 오늘 늦어", "당첨 축하드립니다 경품 수령 링크 확인"]
    assert [namespace["classify"](text) for text in texts] == sumtune.load(run.model_dir).classify(texts)


def test_unsloth_is_never_used_for_classification_and_the_plan_says_why(tmp_path):
    from sumtune.backends import BackendUnavailable, Machine, resolve

    gpu_with_unsloth = Machine(cuda=True, cuda_capability=(9, 0), gpu_name="H100", bitsandbytes=True, unsloth="ok",
                               unsloth_detail="2026.10")
    cfg = load_config(spam_config(tmp_path), ["qlora.use_unsloth=true", "qlora.load_in_4bit=true"])
    plan = resolve(cfg, gpu_with_unsloth)
    assert plan.backend == "peft" and plan.quantization == "4bit"  # QLoRA still, through PEFT
    assert "unsloth accelerates decoder-only language models, not electra sequence classification" in plan.reason
    with pytest.raises(BackendUnavailable, match="not electra sequence classification"):
        resolve(load_config(spam_config(tmp_path), ["backend=unsloth"]), gpu_with_unsloth)
