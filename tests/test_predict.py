"""`sumtune predict` on tiny trained runs, and batched generation: order kept, left padding harmless."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from sumtune import artifacts
from sumtune.cli import main
from sumtune.generate import generate_summaries
from sumtune.loading import build_scratch_model
from sumtune.predict import PredictError, predict
from sumtune.trained import RunError, find_run_dir
from sumtune.trained import load as load_trained
from sumtune.records import read_records
from sumtune.train import train
from tiny_runs import REPO, SAMPLE, tiny

@pytest.fixture(scope="module")
def runs(tiny_trained_runs):
    """One trained tiny seq2seq run (bart) and one causal run (llama: chat template), shared by the tests."""
    return tiny_trained_runs


def write_csv(path: Path, rows: list[dict], fields=("fname", "dialogue")) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# --- predict ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bart", "llama"])
def test_predict_writes_the_submission_in_input_order(runs, tmp_path, family):
    rows = read_records(SAMPLE / "ko_test.csv")[:5][::-1]  # not sorted by id, different lengths
    source = write_csv(tmp_path / "test.csv", rows, ("fname", "dialogue", "topic"))
    out = tmp_path / "sub" / "submission.csv"
    assert main(["predict", str(runs[family].model_dir), "--input", str(source), "--output", str(out),
                 "--batch-size", "2"]) == 0
    assert out.read_text(encoding="utf-8").splitlines()[0] == "fname,summary"
    written = read_csv(out)
    assert [r["fname"] for r in written] == [r["fname"] for r in rows]
    assert any(r["summary"].strip() for r in written)


def test_predict_reproduces_the_runs_own_dev_predictions(runs, tmp_path):
    """Base + adapter + tokenizer reloaded from disk generate exactly what the trained model did."""
    run = runs["bart"]
    dev = read_records(SAMPLE / "ko_dev.csv")[:3]
    out = predict(run.model_dir, write_csv(tmp_path / "dev.csv", dev), tmp_path / "dev_pred.csv")
    during_training = read_csv(run.results_dir / "predictions.csv")
    assert [r["summary"] for r in read_csv(out)] == [r["prediction"] for r in during_training]


def test_empty_dialogues_are_one_error_listing_their_ids_and_nothing_is_written(runs, tmp_path, monkeypatch, capsys):
    def must_not_load(*args, **kwargs):
        raise AssertionError("the input is checked before any model is loaded")

    monkeypatch.setattr("sumtune.predict.load_trained", must_not_load)
    rows = [{"fname": "t1", "dialogue": "#Person1#: 안녕하세요."}, {"fname": "t2", "dialogue": "  "},
            {"fname": "t3", "dialogue": "#Person2#: 네."}, {"fname": "t4", "dialogue": ""}]
    source = write_csv(tmp_path / "test.csv", rows)
    out = tmp_path / "submission.csv"
    with pytest.raises(PredictError, match=r"2 row\(s\) with an empty dialogue: t2 \(row 2, line 3\), t4 \(row 4, line 5\)"):
        predict(runs["bart"].model_dir, source, out)
    assert main(["predict", str(runs["bart"].model_dir), "--input", str(source), "--output", str(out)]) == 2
    assert "t2" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == [source]


def test_a_config_resolves_to_its_latest_completed_run(runs, tmp_path):
    run = runs["bart"]
    config = tmp_path / "mine.yaml"
    config.write_text(f"_base_: {REPO / 'config/model_configs/tiny_bart.yaml'}\nname: tiny_bart\noutput: {{root: {run.root}}}\n")
    later_failed = artifacts.new_run("tiny_bart", run.root)  # newer, but not completed: skipped
    later_failed.update(status="failed", error="boom")
    try:
        assert find_run_dir(config) == run.model_dir
        assert find_run_dir(run.model_dir) == run.model_dir
        with pytest.raises(RunError, match="no run of 'tiny_t5'"):
            find_run_dir(_config_named(tmp_path, "tiny_t5", run.root))
    finally:
        later_failed.model_dir.rmdir()
        later_failed.run_json.unlink()


def _config_named(directory: Path, name: str, root: Path) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(f"_base_: {REPO / 'config/model_configs/tiny_t5.yaml'}\nname: {name}\noutput: {{root: {root}}}\n")
    return path


def test_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(RunError, match="not a trained run's model directory"):
        find_run_dir(tmp_path)
    with pytest.raises(RunError, match="neither a run directory"):
        find_run_dir(tmp_path / "nothing-here")


# --- batched generation ----------------------------------------------------------------------------


def random_model(runs, family: str):
    """A tiny model with large random weights, so that its output depends on its input (a 4-step model
    writes the same text for everything), the llama run's tokenizer, and greedy decoding."""
    run_dir = runs["llama"].model_dir
    tokenizer = load_trained(run_dir).tokenizer
    cfg = tiny(runs["llama"].root, family, "generation.num_beams=1", "generation.no_repeat_ngram_size=0",
               "generation.max_new_tokens=10", "generation.batch_size=8")
    torch.manual_seed(0)
    model = build_scratch_model(cfg, tokenizer)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    return model, tokenizer, cfg


def dialogues(n: int) -> list[str]:
    texts = [r["dialogue"] for r in read_records(SAMPLE / "ko_dev.csv")]
    return [text[: 40 + 60 * i] for i, text in enumerate(texts[:n])]  # clearly different lengths


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_causal_generation_is_the_same_alone_and_in_a_left_padded_batch(runs, family):
    model, tokenizer, cfg = random_model(runs, family)
    side = tokenizer.padding_side
    texts = dialogues(5)
    alone = [generate_summaries(model, tokenizer, [text], cfg, progress=False)[0] for text in (texts[0], texts[-1])]
    batched = generate_summaries(model, tokenizer, texts, cfg, progress=False)
    assert alone[0].strip() and [batched[0], batched[-1]] == alone  # shortest and longest of the batch
    assert tokenizer.padding_side == side  # restored after generation


@pytest.mark.parametrize("family", ["bart", "gpt2"])
def test_batched_predictions_come_back_in_input_order(runs, family):
    model, tokenizer, cfg = random_model(runs, family)
    texts = dialogues(6)
    random.Random(0).shuffle(texts)
    one_by_one = [generate_summaries(model, tokenizer, [text], cfg, progress=False)[0] for text in texts]
    assert len(set(one_by_one)) > 1, "outputs must differ between inputs for this test to mean anything"
    assert generate_summaries(model, tokenizer, texts, cfg, progress=False) == one_by_one


# --- other kinds of runs ---------------------------------------------------------------------------


def predictions_match_training(run, tmp_path) -> None:
    dev = read_records(SAMPLE / "ko_dev.csv")[:2]
    out = predict(run.model_dir, write_csv(tmp_path / "dev.csv", dev), tmp_path / "dev_pred.csv")
    assert [r["summary"] for r in read_csv(out)] == [r["prediction"] for r in read_csv(run.results_dir / "predictions.csv")]


def test_predict_loads_a_fully_finetuned_model(tmp_path):
    run = train(tiny(tmp_path, "bart", "qlora.use_qlora=false", "training.max_steps=2", "evaluation.max_examples=2")).run
    assert not (run.model_dir / "adapter_config.json").exists()
    predictions_match_training(run, tmp_path)


def test_predict_resizes_a_pretrained_base_whose_tokenizer_grew(tmp_path):
    """A local 'pretrained' checkpoint without speaker tags and with spare embedding rows (like T5's
    32128 rows for 32100 tokens): training adds the tags and resizes the embeddings to the tokenizer,
    so predict must resize the base the same way before loading the adapter."""
    from sumtune.loading import train_tokenizer

    cfg = tiny(tmp_path, "bart")
    texts = [r[key] for r in read_records(SAMPLE / "ko_train.csv") for key in ("dialogue", "summary")]
    tokenizer = train_tokenizer([t.replace("#", "") for t in texts], cfg.arch, 1000)
    checkpoint = tmp_path / "checkpoint"
    base = build_scratch_model(cfg, tokenizer)
    base.resize_token_embeddings(len(tokenizer) + 64)  # more rows than the grown tokenizer needs
    base.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)

    run = train(tiny(tmp_path, "bart", "model.init=pretrained", f"model.checkpoint={checkpoint}",
                     "training.max_steps=2", "evaluation.max_examples=2")).run
    assert json.loads(run.run_json.read_text())["status"] == "completed"
    predictions_match_training(run, tmp_path)


def test_eval_benchmark_gives_trainer_predict_the_same_settings_as_sumtune(runs, tmp_path):
    """benchmarks/eval_throughput.py on a trained tiny run: every variant, both ratio rows, and
    Seq2SeqTrainer.predict (no labels) on sumtune's batches writes exactly sumtune's fp32 summaries."""
    import re
    import subprocess
    import sys

    report = tmp_path / "eval.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "eval_throughput.py"), str(SAMPLE / "ko_dev.csv"),
         "--run", str(runs["bart"].model_dir), "--rounds", "1", "--out", str(report)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = report.read_text()
    table = [line.strip("| ").split(" | ") for line in text.splitlines() if line.startswith(("| sumtune ", "| ("))]
    assert [cells[0] for cells in table] == [
        "sumtune at its defaults: generate_summaries + rouge",
        "sumtune in fp32",
        "(a) Seq2SeqTrainer.predict, no labels, file order",
        "(b) model.generate loop, file order",
    ]
    assert [cells[1] for cells in table[1:]] == ["fp32"] * 3  # the peers at their default, and the equal-precision lane
    assert re.search(r"\| each at its defaults \(sumtune (fp32|bf16 autocast), peers fp32\) \| \*\*[0-9.]+×\*\* \| \*\*[0-9.]+×\*\* \|", text)
    assert re.search(r"\| equal precision \(all fp32\) \| [0-9.]+× \| [0-9.]+× \|", text)
    assert "fp32, wrote 8/8 of sumtune's fp32 summaries" in text
    assert "**sumtune / (a) at defaults = " in text


# --- rebuilt as trained ----------------------------------------------------------------------------


def test_a_run_trained_in_4bit_is_rebuilt_in_4bit(runs, tmp_path):
    """A QLoRA run (4-bit NF4 base, as run.json records it on CUDA) comes back 4-bit, here through
    bitsandbytes' CPU kernels; parameter counts are PEFT's, which see through the packed weights."""
    import bitsandbytes

    from sumtune.train import count_parameters

    source = runs["llama"]
    copy = tmp_path / "models" / source.run_id
    shutil.copytree(source.model_dir, copy)
    results = tmp_path / "outputs" / source.run_id / "results"
    results.mkdir(parents=True)
    manifest = json.loads(source.run_json.read_text())
    (results / "run.json").write_text(json.dumps({**manifest, "quantization": "4bit"}))

    trained = load_trained(copy)
    as_trained = load_trained(source.model_dir)
    assert any(isinstance(m, bitsandbytes.nn.Linear4bit) for m in trained.model.modules())
    assert not any(isinstance(m, bitsandbytes.nn.Linear4bit) for m in as_trained.model.modules())
    assert trained.notes == []
    assert count_parameters(trained.model) == count_parameters(as_trained.model)
    naive = sum(p.numel() for p in trained.model.parameters())
    assert naive < count_parameters(trained.model)[1]  # packed 4-bit bytes: a plain count sees half
    assert trained.summarize(dialogues(1), max_new_tokens=4)[0].strip()
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in source.model_dir.iterdir())  # nothing written


def test_pickle_weights_are_refused_unless_the_config_allows_them(runs, tmp_path):
    copy = tmp_path / runs["bart"].run_id
    shutil.copytree(runs["bart"].model_dir, copy)
    (copy / "adapter_model.safetensors").rename(copy / "adapter_model.bin")
    with pytest.raises(RunError, match="no adapter_model.safetensors.*model.allow_pickle: true"):
        load_trained(copy)
