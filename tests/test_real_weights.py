"""The real-weights lane: the fetched SmolLM2-135M-Instruct and Gemma-3-270m themselves (not imitations)
through train -> generate -> predict -> sumtune.load -> compare -> export, on short inputs.

Skipped, with the reason, until `sumtune fetch` (scripts/fetch_checkpoints.sh) has put them in the
checkpoint cache; CI fetches first. Marked ``realweights``: ``python -m pytest -m realweights``.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
import transformers

import sumtune
from sumtune.checkpoints import FETCHABLE, cache_root, fetched_checkpoint
from sumtune.cli import main
from sumtune.config import load_config
from sumtune.data import IGNORE_INDEX, encode_examples, read_splits
from sumtune.generate import stop_token_ids
from sumtune.train import train

pytestmark = pytest.mark.realweights

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "config" / "model_configs"
SHARED = REPO.parent / "shared" / "data"
SHORT = ["training.max_steps=2", "training.per_device_train_batch_size=2", "training.gradient_accumulation_steps=1",
         "training.save_strategy=no", "training.eval_strategy=no", "training.logging_steps=1",
         "data.max_train_samples=4", "data.max_source_length=256", "data.max_target_length=48",
         "evaluation.max_examples=3", "generation.max_new_tokens=48"]


def require_fetched(name: str) -> None:
    if fetched_checkpoint(name) is None:
        pytest.skip(f"{name} is not fetched: run `sumtune fetch {name}` (cache {cache_root()})")
    if not SHARED.is_dir():
        pytest.skip(f"the real data {SHARED} is not beside the project")


def shipped(stem: str, root: Path, *overrides: str):
    """The shipped config with its data paths made absolute, writing under ``root``, on short inputs."""
    relative = load_config(CONFIGS / f"{stem}.yaml", check_files=False).data
    files = [f"data.{role}={(REPO / getattr(relative, role)).resolve()}" for role in ("train_file", "eval_file", "test_file")]
    return load_config(CONFIGS / f"{stem}.yaml", [f"output.root={root}", *files, *SHORT, *overrides])


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory):
    require_fetched("smollm2-135m-instruct")
    return train(shipped("smollm2_135m", tmp_path_factory.mktemp("smollm2"))).run


def test_smollm2_trains_from_its_gguf_and_records_where_the_weights_came_from(smollm2_run):
    manifest = smollm2_run.manifest
    assert manifest["status"] == "completed"
    assert manifest["gguf"]["sha256"] == FETCHABLE["smollm2-135m-instruct"].sha256
    assert manifest["gguf"]["quantization"] == "Q4_1" and manifest["gguf"]["gguf_architecture"] == "llama"
    assert manifest["total_params"] > 130_000_000  # the real model, not a tiny one
    card = (smollm2_run.model_dir / "README.md").read_text(encoding="utf-8")
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card and "Q4_1" in card


def test_smollm2_examples_are_chatml_with_labels_ending_in_im_end(smollm2_run):
    trained = sumtune.load(smollm2_run.model_dir)
    tokenizer = trained.tokenizer
    im_start, im_end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert (im_start, im_end) == (1, 2) and tokenizer.eos_token_id == tokenizer.pad_token_id == 2
    rows = encode_examples(read_splits(trained.config).train, trained.config, tokenizer, "train")
    for row in rows:
        labels = [token for token in row["labels"] if token != IGNORE_INDEX]
        assert row["input_ids"][0] == im_start and labels[-1] == im_end and labels.count(im_end) == 1
    assert im_end in stop_token_ids(trained.model, tokenizer, trained.config)


def test_smollm2_generation_stops_on_im_end_and_writes_text(smollm2_run):
    with (smollm2_run.results_dir / "predictions.csv").open(encoding="utf-8") as handle:
        predictions = [row["prediction"] for row in csv.DictReader(handle)]
    assert len(predictions) == 3 and all(p.strip() and "<|im_end|>" not in p for p in predictions)
    trained = sumtune.load(smollm2_run.model_dir)
    dialogue = read_splits(trained.config).eval[0].dialogue
    from sumtune.data import encode_prompt

    prompt = encode_prompt(dialogue, trained.config, trained.tokenizer)
    with torch.inference_mode():
        out = trained.model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=120, do_sample=False,
                                     eos_token_id=stop_token_ids(trained.model, trained.tokenizer, trained.config))
    generated = out[0, len(prompt):].tolist()
    assert generated[-1] == 2 and len(generated) < 120, trained.tokenizer.decode(generated)


def test_smollm2_predict_compare_and_export_round_trip(smollm2_run, tmp_path, capsys):
    test_rows = tmp_path / "test.csv"
    with test_rows.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fname", "dialogue"])
        writer.writerows([("t1", "#Person1#: Is the meeting at ten?\n#Person2#: Yes, in room 4."),
                          ("t2", "#Person1#: Can I borrow your bike?\n#Person2#: Sure, bring it back by six.")])
    submission = tmp_path / "submission.csv"
    assert main(["predict", str(smollm2_run.model_dir), "--input", str(test_rows), "--output", str(submission)]) == 0
    with submission.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["fname"] for row in rows] == ["t1", "t2"] and all(row["summary"].strip() for row in rows)

    assert main(["compare", str(smollm2_run.model_dir), "--merged", "--examples", "2", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    # bf16 generation rounds the merged and the unmerged weights differently, so greedy paths may part;
    # the fp32 logits below are the exact check
    assert re.search(r"merged = adapter: [0-2] of 2 summaries identical", printed)
    assert [line.split("|")[1].strip() for line in printed.splitlines() if line.startswith("| ")][1:] == ["base", "adapter", "merged"]

    out = tmp_path / "export"
    assert main(["export", str(smollm2_run.model_dir), "--out", str(out), "--merge"]) == 0
    plain = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    merged = sumtune.load(smollm2_run.model_dir, merge=True, dtype="float32")
    ids = torch.tensor([merged.tokenizer("#Person1#: Hello there.")["input_ids"]])
    with torch.inference_mode():
        torch.testing.assert_close(plain(ids).logits, merged.model(ids).logits, rtol=1e-4, atol=1e-4)


def test_gemma3_trains_with_one_bos_whole_turn_markers_and_end_of_turn(tmp_path):
    require_fetched("gemma3-270m")
    cfg = shipped("gemma3_270m", tmp_path, "training.per_device_train_batch_size=1", "evaluation.max_examples=2")
    run = train(cfg).run
    assert run.manifest["status"] == "completed" and run.manifest["gguf"]["quantization"] == "Q4_K_M"
    trained = sumtune.load(run.model_dir)
    tokenizer = trained.tokenizer
    bos, end_of_turn = tokenizer.bos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert (bos, end_of_turn) == (2, 106)
    assert tokenizer("Hello world", add_special_tokens=False).input_ids == tokenizer.convert_tokens_to_ids(["Hello", "▁world"])
    rows = encode_examples(read_splits(trained.config).train, trained.config, tokenizer, "train")
    for row in rows:
        ids, labels = row["input_ids"], [token for token in row["labels"] if token != IGNORE_INDEX]
        assert ids[0] == bos and ids.count(bos) == 1
        assert ids[1:4] == [105, 2364, 107]  # <start_of_turn> user \n, each one token
        assert labels[-1] == end_of_turn and labels.count(end_of_turn) == 1
    assert end_of_turn in stop_token_ids(trained.model, tokenizer, trained.config)
    with (run.results_dir / "predictions.csv").open(encoding="utf-8") as handle:
        predictions = [row["prediction"] for row in csv.DictReader(handle)]
    assert len(predictions) == 2 and all(p.strip() and "<end_of_turn>" not in p for p in predictions)
    assert json.loads((run.results_dir / "run.json").read_text())["peak_memory_mb"] < 12_000
