"""`sumtune export` (plain transformers / peft load the directory and write the run's summaries) and
`sumtune compare` (base vs adapter vs merged, every cell measured) on tiny trained runs."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import sumtune
from sumtune import compare as compare_module
from sumtune.cli import main
from sumtune.compare import CompareError, compare, markdown, measure
from sumtune.config import load_config
from sumtune.export import ExportError, export
from sumtune.generate import generated_lengths
from sumtune.loading import build_scratch_model, train_tokenizer
from sumtune.records import read_records
from sumtune.train import train
from tiny_runs import REPO, SAMPLE, tiny

def grown_checkpoint(root: Path) -> Path:
    """A local 'pretrained' BART whose tokenizer has no speaker tags: training adds them and grows the
    embedding, so the base the adapter needs is not the checkpoint any more."""
    cfg = tiny(root, "bart")
    texts = [r[key] for r in read_records(SAMPLE / "ko_train.csv") for key in ("dialogue", "summary")]
    tokenizer = train_tokenizer([t.replace("#", "") for t in texts], cfg.arch, 1000)
    checkpoint = root / "checkpoint"
    torch.manual_seed(0)
    build_scratch_model(cfg, tokenizer).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    return checkpoint


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_trained_runs):
    """Tiny trained runs: scratch LoRA BART, LoRA on a 'pretrained' BART whose vocabulary grew, a causal
    Llama (chat template), and a fully fine-tuned BART."""
    root = tmp_path_factory.mktemp("runs")
    found = dict(tiny_trained_runs)
    found["grown"] = train(tiny(root / "grown", "bart", "model.init=pretrained", f"model.checkpoint={grown_checkpoint(root)}",
                                "training.max_steps=2")).run
    found["full"] = train(tiny(root / "full", "bart", "qlora.use_qlora=false", "training.max_steps=2")).run
    return found


def dev_dialogues(n: int = 3) -> list[str]:
    texts = [r["dialogue"] for r in read_records(SAMPLE / "ko_dev.csv")]
    return [text[: 60 + 50 * i] for i, text in enumerate(texts[:n])]


def card_code(directory: Path) -> dict:
    """Run the model card's Python block (its exact loading lines); return what it defined."""
    card = (directory / "README.md").read_text(encoding="utf-8")
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, str(directory / "README.md"), "exec"), namespace)
    return namespace


def same_as_sumtune(run, directory: Path) -> dict:
    """The card's lines load the export without sumtune and write what sumtune.load(run) writes; the
    weights are the same (logits on a dialogue match)."""
    plain = card_code(directory)
    trained = sumtune.load(run.model_dir)
    dialogues = dev_dialogues()
    assert [plain["summarize"](d) for d in dialogues] == trained.summarize(dialogues, batch_size=1)
    ids = torch.tensor([trained.tokenizer(dialogues[0])["input_ids"]])
    extra = {"decoder_input_ids": ids[:, :5]} if trained.config.arch.kind == "seq2seq" else {}
    with torch.no_grad():  # every row, also those padding a grown matrix past the tokenizer
        ours = plain["model"](input_ids=ids, **extra).logits
        assert torch.allclose(ours, trained.model(input_ids=ids, **extra).logits, atol=1e-5)
    return plain


def weight_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))


# --- export ----------------------------------------------------------------------------------------


def test_merged_export_is_one_plain_transformers_model_that_writes_the_runs_summaries(runs, tmp_path):
    out = tmp_path / "merged"
    assert main(["export", str(runs["bart"].model_dir), "--out", str(out), "--merge"]) == 0
    assert weight_files(out) == ["model.safetensors"] and not (out / "adapter_config.json").exists()
    assert {"tokenizer.json", "generation_config.json", "config.json", "README.md"} <= {p.name for p in out.iterdir()}
    plain = same_as_sumtune(runs["bart"], out)
    assert type(plain["model"]).__name__ == "BartForConditionalGeneration"  # no PEFT wrapper
    assert "from peft" not in (out / "README.md").read_text()


@pytest.mark.parametrize("run_key", ["bart", "grown", "llama"])
def test_unmerged_export_loads_with_plain_peft_and_writes_the_runs_summaries(runs, tmp_path, run_key):
    """The base travels in base/ (a scratch init; a pretrained base whose embedding grew rows for the
    speaker tags), so PeftModel.from_pretrained(AutoModel...(DIR/base), DIR) needs no sumtune."""
    from peft import PeftModel

    run = runs[run_key]
    out = tmp_path / "adapter"
    export(run.model_dir, out)
    assert weight_files(out) == ["adapter_model.safetensors"] and weight_files(out / "base") == ["model.safetensors"]
    plain = same_as_sumtune(run, out)
    assert isinstance(plain["model"], PeftModel)
    rows = sumtune.load(run.model_dir).model.get_input_embeddings().weight.shape[0]
    assert plain["base"].get_input_embeddings().weight.shape[0] == rows


def test_a_4bit_run_exports_its_4bit_base_and_plain_peft_reproduces_it(runs, tmp_path):
    """A QLoRA run (4-bit NF4 base, as run.json records it on CUDA; here bitsandbytes' CPU kernels):
    base/ holds the 4-bit base as trained, and the card says bitsandbytes is needed."""
    import bitsandbytes

    copy = copied_run(runs["bart"], tmp_path / "q", quantization="4bit")
    out = tmp_path / "adapter"
    export(copy, out)
    assert "quantization_config" in json.loads((out / "base" / "config.json").read_text())
    assert "`bitsandbytes` (the base is 4bit, as trained)" in (out / "README.md").read_text()
    plain = card_code(out)
    assert any(isinstance(m, bitsandbytes.nn.Linear4bit) for m in plain["base"].modules())
    dialogues = dev_dialogues(2)
    assert [plain["summarize"](d) for d in dialogues] == sumtune.load(copy).summarize(dialogues, batch_size=1)


def test_grown_base_is_needed_the_published_checkpoint_does_not_fit_the_adapter(runs, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM

    out = tmp_path / "adapter"
    export(runs["grown"].model_dir, out)
    checkpoint = load_config(runs["grown"].model_dir / "config.yaml", check_files=False).model.checkpoint
    with pytest.raises((IndexError, RuntimeError)):  # the adapter indexes rows the checkpoint lacks
        PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(checkpoint), out)


def test_full_finetuning_export_is_the_model_itself_and_merge_changes_nothing(runs, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("sumtune"), "propagate", True)  # an earlier main() turned it off
    run = runs["full"]
    plain_out, merge_out = tmp_path / "full", tmp_path / "full_merge"
    export(run.model_dir, plain_out)
    with caplog.at_level(logging.INFO, logger="sumtune"):
        export(run.model_dir, merge_out, merge=True)
    assert "no adapter to merge" in caplog.text
    for out in (plain_out, merge_out):
        assert weight_files(out) == ["model.safetensors"] and not (out / "base").exists()
        same_as_sumtune(run, out)
    card = (plain_out / "README.md").read_text()
    assert "full fine-tuning" in card and "library_name: transformers" in card


def test_model_card_names_base_data_config_date_and_metrics(runs, tmp_path):
    run = runs["grown"]
    out = tmp_path / "export"
    export(run.model_dir, out)
    card = (out / "README.md").read_text(encoding="utf-8")
    cfg = load_config(run.model_dir / "config.yaml", check_files=False)
    metrics = json.loads(run.run_json.read_text())["metrics"]
    assert f"base_model: {cfg.model.checkpoint}" in card and f"| base checkpoint | {cfg.model.checkpoint}" in card
    assert f"| training data | {cfg.data.train_file} |" in card and str(cfg.data.eval_file) in card
    stamp = run.run_id.rsplit("_", 1)[1]
    assert f"| trained | {stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]} |" in card
    assert "| exported | " in card
    assert f"| {metrics['rouge1']:.4f} | {metrics['rouge2']:.4f} | {metrics['rougeL']:.4f} | {metrics['score']:.4f} |" in card
    config_block = card.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(config_block) == yaml.safe_load((run.model_dir / "config.yaml").read_text())
    assert "9 added token rows trained" in card and "library_name: peft" in card


def test_the_runs_own_model_card_replaces_peft_template(runs):
    for key in ("bart", "full"):
        run = runs[key]
        card = (run.model_dir / "README.md").read_text(encoding="utf-8")
        assert "Model Card for Model ID" not in card  # PEFT's empty template
        assert f"sumtune.load({str(run.model_dir)!r})" in card and f"sumtune export {run.model_dir} --out DIR" in card
        assert "## Metrics" in card and "```yaml" in card and f"# {run.run_id}" in card


def test_export_refuses_a_non_empty_out_and_leaves_it_untouched(runs, tmp_path, monkeypatch, capsys):
    def must_not_load(*args, **kwargs):
        raise AssertionError("the output is checked before any model is loaded")

    monkeypatch.setattr("sumtune.trained.load", must_not_load)
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists and is not an empty directory"):
        export(runs["bart"].model_dir, out)
    assert main(["export", str(runs["bart"].model_dir), "--out", str(out)]) == 2
    assert "choose a new --out" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ExportError, match="not an empty directory"):
        export(runs["bart"].model_dir, a_file)


def test_export_refuses_an_out_inside_the_run_a_failed_run_and_merging_into_4bit(runs, tmp_path, monkeypatch):
    monkeypatch.setattr("sumtune.trained.load", lambda *a, **k: pytest.fail("checked before loading"))
    run = runs["bart"]
    with pytest.raises(ExportError, match="inside the run"):
        export(run.model_dir, run.model_dir / "export")
    assert not (run.model_dir / "export").exists()
    copy = copied_run(run, tmp_path, status="failed")
    with pytest.raises(ExportError, match=r"did not complete \(status: failed\)"):
        export(copy, tmp_path / "out")
    copy4 = copied_run(run, tmp_path / "q", quantization="4bit")
    with pytest.raises(ExportError, match="without --merge"):
        export(copy4, tmp_path / "out", merge=True)
    with pytest.raises(ExportError, match="neither a run directory"):
        export(tmp_path / "no-such-run", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def copied_run(run, root: Path, **manifest_changes) -> Path:
    copy = root / "models" / run.run_id
    shutil.copytree(run.model_dir, copy)
    results = root / "outputs" / run.run_id / "results"
    results.mkdir(parents=True)
    (results / "run.json").write_text(json.dumps({**json.loads(run.run_json.read_text()), **manifest_changes}))
    return copy


def test_an_interrupted_export_leaves_no_directory_behind(runs, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("sumtune.export.write_text_atomic", fail)  # the model card, written last
    with pytest.raises(OSError, match="disk full"):
        export(runs["bart"].model_dir, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the output nor its staging directory


# --- compare ---------------------------------------------------------------------------------------


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_compare_prints_base_adapter_and_merged_with_every_cell_filled(runs, tmp_path, capsys):
    run = runs["bart"]
    out = tmp_path / "report"
    assert main(["compare", str(run.model_dir), "--merged", "--examples", "2", "--repeats", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    header, *rows = table_rows(printed)
    assert header[:3] == ["variant", "parameters", "trainable"] and "ROUGE-L" in header and "tokens/s" in header
    assert [row[0] for row in rows] == ["base", "adapter", "merged"]
    assert all(len(row) == len(header) and all(cell not in ("", "None", "nan") for cell in row) for row in rows)
    by_variant = {row[0]: dict(zip(header, row)) for row in rows}
    number = lambda variant, column: float(by_variant[variant][column].replace(",", ""))  # noqa: E731
    manifest = json.loads(run.run_json.read_text())
    assert number("adapter", "trainable") == manifest["trainable_params"]  # the LoRA matrices and added token rows
    assert number("adapter", "parameters") == number("base", "parameters") + manifest["trainable_params"]
    assert number("merged", "parameters") == number("base", "parameters")
    for variant in by_variant:
        assert number(variant, "load time (s)") > 0 and number(variant, "peak memory (MiB)") > number(variant, "memory before load (MiB)")
        assert number(variant, "latency p95 (ms/example)") >= number(variant, "latency p50 (ms/example)") > 0
        assert number(variant, "tokens/s") > 0 and number(variant, "generated tokens") > 0
    assert "merged = adapter: 2 of 2 summaries identical" in printed
    assert "CPU cores" in printed and "torch " in printed and "transformers " in printed
    assert (out / "compare.md").read_text() in printed
    with (out / "compare.csv").open(encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert [r["variant"] for r in written] == ["base", "adapter", "merged"]
    assert all(value for r in written for value in r.values()) and "CPU cores" in written[0]["machine"]


def measure_here(monkeypatch):
    """Variants measured in this process (fast); the separate-process path is tested above."""
    monkeypatch.setattr(compare_module, "measure_in_own_process",
                        lambda variant, run_dir, inputs, repeats, batch: measure(variant, run_dir, json.loads(inputs.read_text()), repeats, batch))


def test_compare_of_a_full_finetuning_run_is_base_vs_finetuned_and_says_so(runs, monkeypatch):
    measure_here(monkeypatch)
    comparison = compare(runs["full"].model_dir, merged=True, repeats=1, examples=1)
    text = markdown(comparison)
    assert [row[0] for row in table_rows(text)[1:]] == ["base", "fine-tuned"]
    assert "full fine-tuning run: there is no adapter" in text and "no merged variant" in text
    rows = {row["variant"]: row for row in comparison.rows()}
    assert rows["fine-tuned"]["trainable"] == rows["fine-tuned"]["parameters"]


def test_compare_works_for_a_causal_run(runs, monkeypatch):
    measure_here(monkeypatch)
    comparison = compare(runs["llama"].model_dir, repeats=1, examples=2, batch_size=1)
    assert [m.variant for m in comparison.measurements] == ["base", "adapter"]
    adapter = comparison.measurements[1]
    assert len(adapter.predictions) == 2 and adapter.generated_tokens > 0
    dialogues = [e.dialogue for e in compare_module.read_dev(comparison.cfg, None, 2)]
    assert adapter.predictions == sumtune.load(runs["llama"].model_dir).summarize(dialogues, batch_size=1)


def test_compare_checks_its_input_before_loading_any_model(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(compare_module, "measure_in_own_process", lambda *a: pytest.fail("checked before measuring"))
    run = runs["bart"]
    with pytest.raises(CompareError, match="--examples must be at least 1"):
        compare(run.model_dir, examples=0)
    with pytest.raises(CompareError, match="--repeats must be at least 1"):
        compare(run.model_dir, repeats=0)
    with pytest.raises(CompareError, match="file not found"):
        compare(run.model_dir, data=tmp_path / "missing.csv")
    no_summaries = tmp_path / "test.csv"
    no_summaries.write_text("fname,dialogue\nt1,hello\n", encoding="utf-8")
    with pytest.raises(CompareError, match="has no column 'summary'"):
        compare(run.model_dir, data=no_summaries)
    with pytest.raises(CompareError, match=r"did not complete \(status: running\)"):
        compare(copied_run(run, tmp_path, status="running"))
    assert main(["compare", str(tmp_path / "nothing"), "--examples", "1"]) == 2
    assert "neither a run directory" in capsys.readouterr().err


def test_a_variant_that_fails_in_its_process_is_exit_1_with_its_error(runs, tmp_path, capsys):
    copy = copied_run(runs["bart"], tmp_path)
    # (a cut-short weights file is refused before any variant runs: test_run_state.py, a corrupt run)
    (copy / "base_model" / "config.json").write_text('{"model_type": "bart", "d_model": "wide"}')
    assert main(["compare", str(copy), "--examples", "1", "--repeats", "1"]) == 1
    err = capsys.readouterr().err
    assert "measuring the base variant" in err and "failed" in err and "Traceback" in err  # the process's own error


def test_generated_lengths_count_up_to_and_including_the_first_stop_token():
    generated = torch.tensor([[5, 6, 2, 0, 0], [5, 6, 7, 8, 9], [2, 0, 0, 0, 0], [5, 3, 2, 3, 0]])
    assert generated_lengths(generated, [2, 3]) == [3, 5, 1, 2]
