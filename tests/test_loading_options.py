"""`sumtune.load` options (run id / name, dtype, device_map, max_memory, merge) and measured loading,
on one tiny LoRA BART trained once for the module (CPU, offline)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

import sumtune
from sumtune import artifacts, loading
from sumtune.config import ConfigError, load_config
from sumtune.data import read_splits
from sumtune.report import write_report
from sumtune.train import train
from sumtune.trained import RunError
from test_predict import REPO, dialogues, read_csv, tiny
from test_report import csv_table, fake_run


TINY_BART = REPO / "config" / "model_configs" / "tiny_bart.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> artifacts.Run:
    return train(tiny(tmp_path_factory.mktemp("runs"), "bart")).run


@pytest.fixture
def boosted(run, tmp_path) -> Path:
    """A copy of the run whose LoRA B matrices are large random ones, so that the adapter changes what the
    model writes (4 training steps barely move them), with its run.json beside it as train() leaves it."""
    copy = tmp_path / "models" / run.run_id
    shutil.copytree(run.model_dir, copy)
    (tmp_path / "outputs" / run.run_id / "results").mkdir(parents=True)
    shutil.copy(run.run_json, tmp_path / "outputs" / run.run_id / "results" / "run.json")
    weights = load_file(copy / "adapter_model.safetensors")
    generator = torch.Generator().manual_seed(0)
    for name, tensor in weights.items():
        if "lora_B" in name:
            weights[name] = torch.randn(tensor.shape, generator=generator) * 0.5
    save_file(weights, copy / "adapter_model.safetensors")
    return copy


class StopLoading(Exception):
    pass


class FromPretrainedSpy:
    """Records the keywords every AutoModelForSeq2SeqLM.from_pretrained call gets, then loads for real
    (or, with ``load=False``, stops there: for placements this machine does not have)."""

    def __init__(self, monkeypatch, load: bool = True):
        self.calls: list[dict] = []
        original = transformers.AutoModelForSeq2SeqLM.from_pretrained

        def spy(*args, **kwargs):
            self.calls.append({k: dict(v) if isinstance(v, dict) else v for k, v in kwargs.items()})  # accelerate edits max_memory
            if not load:
                raise StopLoading
            return original(*args, **kwargs)

        monkeypatch.setattr(transformers.AutoModelForSeq2SeqLM, "from_pretrained", spy)


def snapshot(*directories: Path) -> dict[str, tuple[str, int]]:
    return {str(path): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for directory in directories for path in sorted(directory.rglob("*")) if path.is_file()}


def greedy(trained, texts) -> list[str]:
    return trained.summarize(texts, num_beams=1, no_repeat_ngram_size=0, max_new_tokens=12)


def has_lora_layers(model) -> bool:
    return any(hasattr(module, "lora_A") for module in model.modules())


# --- which run -------------------------------------------------------------------------------------


def test_a_run_loads_by_its_id_and_by_its_name_and_the_name_skips_a_newer_unfinished_run(run, monkeypatch):
    monkeypatch.chdir(run.root)  # models/ is here: ids and names are looked up under ./models
    newer = artifacts.new_run("tiny_bart", run.root)  # newer, failed, never trained: no config.yaml
    newer.update(status="failed", error="boom")
    try:
        assert sumtune.load(run.run_id).run.resolve() == run.model_dir.resolve()
        assert sumtune.load("tiny_bart").run.resolve() == run.model_dir.resolve()
        with pytest.raises(RunError, match=rf"'{newer.run_id}' is neither a run directory.*holds no run of that name or id"):
            sumtune.load(newer.run_id)  # an id whose directory holds no trained run
        with pytest.raises(RunError, match=r"'tiny_bart_20990101-000000' is neither a run directory.*holds no run of that name or id"):
            sumtune.load("tiny_bart_20990101-000000")
        with pytest.raises(RunError, match=r"'no_such_model' is neither a run directory.*holds no run of that name or id"):
            sumtune.load("no_such_model")
    finally:
        newer.run_json.unlink()
        newer.model_dir.rmdir()


def test_load_by_name_reproduces_the_runs_own_dev_predictions(run, monkeypatch):
    """The issue's acceptance test: sumtune.load(name).summarize(dev dialogues), with the run's own generation
    settings (beams, lengths, batch size), writes exactly what training wrote to predictions.csv."""
    cfg = load_config(run.model_dir / "config.yaml", check_files=False)
    written = {row["id"]: row["prediction"] for row in read_csv(run.results_dir / "predictions.csv")}
    dev = [example for example in read_splits(cfg).eval if example.id in written]
    assert len(dev) == cfg.evaluation.max_examples == 3
    monkeypatch.chdir(run.root)
    trained = sumtune.load("tiny_bart")
    assert trained.summarize([example.dialogue for example in dev]) == [written[example.id] for example in dev]


# --- dtype -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["bf16", "bfloat16", torch.bfloat16])
def test_dtype_bf16_gives_bf16_base_weights(run, dtype):
    trained = sumtune.load(run.model_dir, dtype=dtype)
    base = {name: p.dtype for name, p in trained.model.named_parameters() if "lora_" not in name and "trainable_tokens" not in name}
    adapter = {p.dtype for name, p in trained.model.named_parameters() if "lora_" in name}
    assert set(base.values()) == {torch.bfloat16}, base
    assert adapter == {torch.float32}  # the adapter's own weights stay as trained (PEFT's autocast)
    assert greedy(trained, dialogues(1))[0].strip()


def test_auto_dtype_is_float32_on_a_cpu_and_merged_bf16_is_bf16_throughout(run):
    assert {p.dtype for p in sumtune.load(run.model_dir).model.parameters()} == {torch.float32}
    merged = sumtune.load(run.model_dir, dtype="bf16", merge=True)
    assert {p.dtype for p in merged.model.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize("cuda, bf16, overrides, expected", [
    (False, False, ["model.init=pretrained", "model.checkpoint=x"], "float32"),  # a CPU
    (True, True, ["model.init=pretrained", "model.checkpoint=x"], "bfloat16"),  # a frozen LoRA base on an Ampere GPU
    (True, False, ["model.init=pretrained", "model.checkpoint=x"], "float32"),  # a GPU without bf16 (T4, V100)
    (True, True, ["model.init=pretrained", "model.checkpoint=x", "qlora.use_qlora=false"], "float32"),  # full FT: fp32 master weights
    (True, True, [], "float32"),  # a scratch model is built in float32
    (True, True, ["model.dtype=fp16"], "float16"),  # explicit wins, aliases read
])
def test_auto_dtype_is_bf16_only_for_a_frozen_pretrained_base_on_a_bf16_gpu(monkeypatch, cuda, bf16, overrides, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    cfg = load_config(TINY_BART, overrides, check_files=False)
    assert loading.load_dtype(cfg) == expected


@pytest.mark.parametrize("cpu_flags, warned", [([], True), (["avx512_bf16"], False)])
def test_an_explicit_bf16_dtype_on_a_cpu_that_emulates_bf16_is_warned_about(monkeypatch, caplog, cpu_flags, warned):
    monkeypatch.setattr(logging.getLogger("sumtune"), "propagate", True)  # an earlier CLI test may have turned it off
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loading, "cpu_bf16_flags", lambda: cpu_flags)
    loading.warn_if_bf16_is_emulated.cache_clear()  # it warns once per process
    cfg = load_config(TINY_BART, ["model.dtype=bf16"], check_files=False)
    with caplog.at_level(logging.WARNING, logger="sumtune"):
        assert loading.load_dtype(cfg) == "bfloat16"  # honoured either way
        assert loading.load_dtype(cfg) == "bfloat16"
    loading.warn_if_bf16_is_emulated.cache_clear()
    warnings = [r for r in caplog.records if "emulates bf16" in r.getMessage() and "model.dtype: auto" in r.getMessage()]
    assert len(warnings) == warned  # once, however often the dtype is asked for


def test_an_explicit_dtype_builds_a_scratch_model_in_it(run):
    cfg = tiny(run.root, "bart", "model.dtype=bf16")
    tokenizer = sumtune.load(run.model_dir).tokenizer
    assert {p.dtype for p in loading.build_scratch_model(cfg, tokenizer).parameters()} == {torch.bfloat16}


# --- device_map / max_memory -----------------------------------------------------------------------


def test_device_map_and_max_memory_reach_from_pretrained(run, monkeypatch):
    spy = FromPretrainedSpy(monkeypatch)
    sumtune.load(run.model_dir, device_map="cpu", max_memory={"cpu": "2GiB"})
    assert (spy.calls[-1]["device_map"], spy.calls[-1]["max_memory"]) == ("cpu", {"cpu": "2GiB"})
    trained = sumtune.load(run.model_dir, max_memory={"cpu": "2GiB"})  # a cap alone: accelerate spreads (auto)
    assert (spy.calls[-1]["device_map"], spy.calls[-1]["max_memory"]) == ("auto", {"cpu": "2GiB"})
    assert greedy(trained, dialogues(1))[0].strip()
    sumtune.load(run.model_dir)
    assert spy.calls[-1]["device_map"] == {"": "cpu"} and "max_memory" not in spy.calls[-1]  # no GPU: stays here


def test_load_arguments_win_over_the_runs_device_map_and_max_memory(boosted, monkeypatch):
    config = boosted / "config.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("  device_map: null\n  max_memory: null\n",
                                   "  device_map: sequential\n  max_memory:\n    cpu: 3GiB\n    cuda:0: 1GiB\n"))
    spy = FromPretrainedSpy(monkeypatch, load=False)  # a GPU this machine lacks
    with pytest.raises(StopLoading):
        sumtune.load(boosted)
    assert spy.calls[-1]["device_map"] == "sequential"
    assert spy.calls[-1]["max_memory"] == {"cpu": "3GiB", 0: "1GiB"}  # accelerate names a GPU by its number
    with pytest.raises(StopLoading):
        sumtune.load(boosted, device_map="cpu", max_memory={"cpu": "2GiB"})
    assert (spy.calls[-1]["device_map"], spy.calls[-1]["max_memory"]) == ("cpu", {"cpu": "2GiB"})


@pytest.mark.parametrize("options, message", [
    (dict(dtype="int8"), r"dtype='int8': 'int8' is not a dtype; use one of auto, float32, bfloat16, float16, fp32, bf16, fp16"),
    (dict(dtype=torch.int8), r"dtype='int8'"),
    (dict(device_map="gpu"), r"device_map='gpu': 'gpu' is neither a strategy \(auto, balanced"),
    (dict(device_map={"model.encoder": "nowhere"}), r"names no device"),
    (dict(max_memory={"gpu0": "10GiB"}), r"'gpu0' is not a device \(cpu, mps, disk, cuda:0, or a GPU number\)"),
    (dict(max_memory={"cpu": "10gb"}), r"cpu: '10gb' is not a size \(e\.g\. 10GiB"),
    (dict(max_memory={"cpu": -5}), r"cpu: -5 is not a size"),
    (dict(max_memory="10GiB"), r"is not a non-empty mapping of device to size"),
])
def test_bad_load_options_are_refused_before_any_model_loads(run, monkeypatch, options, message):
    spy = FromPretrainedSpy(monkeypatch)
    with pytest.raises(RunError, match=message):
        sumtune.load(run.model_dir, **options)
    assert spy.calls == []


# --- merge -----------------------------------------------------------------------------------------


def test_merge_folds_the_adapter_in_and_writes_the_same_summaries(boosted):
    texts = dialogues(4)
    unmerged = sumtune.load(boosted)
    with unmerged.model.disable_adapter():
        base_only = greedy(unmerged, texts)
    adapted = greedy(unmerged, texts)
    assert adapted != base_only, "the adapter must change the output for this test to mean anything"

    merged = sumtune.load(boosted, merge=True)
    assert not has_lora_layers(merged.model) and not hasattr(merged.model, "peft_config")
    assert isinstance(merged.model, transformers.BartForConditionalGeneration)
    assert greedy(merged, texts) == adapted
    assert set(merged.load_time_s) == {"base", "adapter", "merge"}


def test_merge_of_a_4bit_run_dequantizes_the_base_first(boosted):
    """A QLoRA run (run.json: 4-bit) rebuilt on bitsandbytes' CPU kernels: merging folds the adapter into
    the dequantized weights (peft would quantize every merged layer again) and says so."""
    import bitsandbytes

    run_json = boosted.parent.parent / "outputs" / boosted.name / "results" / "run.json"
    run_json.write_text(json.dumps({**json.loads(run_json.read_text()), "quantization": "4bit"}))
    texts = dialogues(3)
    quantized = sumtune.load(boosted)
    assert any(isinstance(m, bitsandbytes.nn.Linear4bit) for m in quantized.model.modules()) and quantized.notes == []
    merged = sumtune.load(boosted, merge=True)
    assert not any(isinstance(m, bitsandbytes.nn.Linear4bit) for m in merged.model.modules())
    assert not has_lora_layers(merged.model)
    assert [note for note in merged.notes if "dequantized to float32 before the adapter was folded in" in note]
    assert greedy(merged, texts) == greedy(quantized, texts)


# --- what loading leaves, records and prints -------------------------------------------------------


def test_loading_writes_nothing_into_the_run(run, monkeypatch):
    before = snapshot(run.model_dir, run.results_dir)
    monkeypatch.chdir(run.root)
    for options in ({}, dict(merge=True), dict(dtype="bf16", device_map="cpu"), dict(max_memory={"cpu": "2GiB"})):
        sumtune.load(run.run_id, **options).summarize(dialogues(1), max_new_tokens=4)
    assert snapshot(run.model_dir, run.results_dir) == before  # same files, same bytes, same mtimes


def test_a_training_run_records_its_load_time_and_peak_memory(run):
    manifest = json.loads(run.run_json.read_text())
    assert set(manifest["load_time_s"]) == {"base"} and manifest["load_time_s"]["base"] > 0
    assert manifest["load_peak_memory_mb"] > 0
    assert re.search(r"loaded base in \d+\.\d\d s, peak memory \d+ MB", run.log_path.read_text(encoding="utf-8"))


def test_sumtune_load_times_base_and_adapter_and_prints_them(run, caplog):
    with caplog.at_level(logging.INFO, logger="sumtune"):
        trained = sumtune.load(run.model_dir)
    assert set(trained.load_time_s) == {"base", "adapter"} and all(s > 0 for s in trained.load_time_s.values())
    assert trained.peak_memory_mb > 0
    base, adapter = (f"{trained.load_time_s[k]:.2f}" for k in ("base", "adapter"))
    assert re.search(rf"loaded base in {base} s, adapter in {adapter} s, peak memory \d+ MB", caplog.text)


def test_the_report_shows_each_runs_load_time_and_blank_for_runs_without_one(run, tmp_path):
    old = fake_run(tmp_path, "old_20250101-000000", scores=(0.1, 0.0, 0.1))  # made before loads were timed
    out = write_report([run.model_dir, tmp_path / "models" / old], tmp_path / "report")
    cells = {row["run"]: row for row in csv_table(out)}  # every column is in the CSV (and the HTML's details)
    seconds = json.loads(run.run_json.read_text())["load_time_s"]["base"]
    assert float(cells[run.run_id]["load time (s)"]) == seconds
    assert float(cells[run.run_id]["load peak memory (MB)"]) > 0
    assert cells[old]["load time (s)"] == "" and cells[old]["load peak memory (MB)"] == ""
    assert f"<td class=\"num\">{seconds:,.2f}</td>" in (out / "comparison.html").read_text(encoding="utf-8")


# --- device_map where each rank holds its own model ------------------------------------------------


@pytest.mark.parametrize("key, value", [("device_map", "auto"), ("max_memory", "{cpu: 2GiB}")])
def test_a_device_map_with_deepspeed_is_a_config_error_naming_both_keys(tmp_path, key, value):
    with pytest.raises(ConfigError) as error:
        load_config(TINY_BART,
                    [f"model.{key}={value}", "training.deepspeed=ds_zero2.json"], check_files=False)
    assert f"model.{key}: cannot be used with training.deepspeed" in str(error.value)


def test_a_device_map_under_ddp_is_refused_at_launch_before_a_run_directory_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = tiny(tmp_path, "bart", "model.device_map=auto")
    with pytest.raises(ConfigError, match=r"model.device_map set, but this run was launched as 2 processes \(WORLD_SIZE=2\)"):
        train(cfg)
    assert not (tmp_path / "models").exists()


def test_config_reads_gpu_numbers_and_dtype_aliases():
    cfg = load_config(TINY_BART,
                      ["model.dtype=bf16", "model.max_memory={0: 10GiB, cuda:1: 5GB, cpu: 1073741824}",
                       "model.device_map={model.encoder: 0, model.decoder: cpu, lm_head: disk}"], check_files=False)
    assert cfg.model.dtype == "bfloat16"
    assert cfg.model.max_memory == {"cuda:0": "10GiB", "cuda:1": "5GB", "cpu": 1073741824}
    assert loading.placement(cfg.model)["max_memory"] == {0: "10GiB", 1: "5GB", "cpu": 1073741824}
    assert load_config(TINY_BART, [], check_files=False).model.device_map is None


def test_training_loads_a_pretrained_base_with_the_configs_dtype_and_placement(run, monkeypatch):
    """What backends.load reaches for a pretrained checkpoint (here the run's saved scratch init, as a local one)."""
    cfg = tiny(run.root, "bart", "model.init=pretrained", f"model.checkpoint={run.scratch_base_dir}", "model.dtype=bf16",
               "model.device_map=cpu", "model.max_memory={cpu: 2GiB}")
    spy = FromPretrainedSpy(monkeypatch)
    model = loading.load_pretrained_model(cfg)
    called = spy.calls[-1]
    assert (called["dtype"], called["device_map"], called["max_memory"]) == ("bfloat16", "cpu", {"cpu": "2GiB"})
    assert called["use_safetensors"] is True and "low_cpu_mem_usage" not in called  # transformers 5 drops that flag
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_grown_embedding_rows_are_the_trained_mean_on_every_rebuild():
    """Training, --resume, sumtune.load and export each grow a pretrained base for the added tags; every
    rebuild must give the same rows, padding rows past the tokenizer included (transformers draws them at random)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from sumtune.loading import make_room_for_new_tokens

    def grown(rng_seed: int):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2))
        torch.manual_seed(rng_seed)  # whatever the process's RNG holds when the run is rebuilt
        make_room_for_new_tokens(model, [None] * 67, [64, 65, 66])  # 3 tags; rows padded to a multiple of 8
        return model.get_input_embeddings().weight.detach().clone()

    first, again = grown(1), grown(2)
    assert first.shape == (72, 16)
    assert torch.equal(first, again)
    assert torch.allclose(first[64:], first[:64].mean(dim=0, keepdim=True).expand(8, -1))
