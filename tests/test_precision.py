"""training.precision (and generation.precision): what ``auto`` picks on this kind of CPU or GPU, and
what a run records."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from sumtune.machine import cpu_bf16_flags
from sumtune.precision import resolve_precision
from sumtune.train import train
from test_training import tiny_config

AVX512_ONLY = {"fpu", "sse2", "avx2", "avx512f", "avx512bw", "avx512_vnni"}  # e.g. Skylake-SP, Cascade Lake
SAPPHIRE_RAPIDS = AVX512_ONLY | {"avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}
ZEN4 = AVX512_ONLY | {"avx512_bf16"}
GRAVITON3 = {"fp", "asimd", "sve", "bf16", "i8mm"}  # ARM: torch's CPU kernels were not measured there


@pytest.mark.parametrize("flags", [set(), AVX512_ONLY, GRAVITON3], ids=["no flags", "avx512 without bf16", "arm bf16"])
def test_auto_never_turns_on_bf16_on_a_cpu_without_native_bf16(flags):
    chosen = resolve_precision("auto", cuda=False, cpu_flags=flags)
    assert chosen.used == "fp32" and chosen.cpu_bf16 == ()
    assert "no AVX512-BF16 or AMX-BF16" in chosen.reason


@pytest.mark.parametrize("flags, named", [(SAPPHIRE_RAPIDS, "amx_bf16, avx512_bf16"), (ZEN4, "avx512_bf16")])
def test_auto_turns_on_bf16_autocast_on_a_cpu_that_multiplies_bf16_natively(flags, named):
    chosen = resolve_precision("auto", cuda=False, cpu_flags=flags)
    assert chosen.used == "bf16" and named in chosen.reason
    assert chosen.facts() == {"requested": "auto", "used": "bf16", "reason": chosen.reason, "cpu_bf16": named.split(", ")}


def test_an_explicit_precision_is_kept_and_bf16_on_a_cpu_without_it_says_it_is_emulated():
    assert resolve_precision("fp32", cuda=False, cpu_flags=SAPPHIRE_RAPIDS).used == "fp32"
    emulated = resolve_precision("bf16", cuda=False, cpu_flags=AVX512_ONLY)
    assert emulated.used == "bf16" and "torch emulates bf16, slower than fp32" in emulated.reason
    assert "emulates" not in resolve_precision("bf16", cuda=False, cpu_flags=ZEN4).reason


def test_the_cpu_flags_are_read_from_this_machine_when_not_given():
    from sumtune.machine import cpu_flags

    assert cpu_bf16_flags() == cpu_bf16_flags(cpu_flags())
    assert cpu_bf16_flags(["avx512_bf16", "amx_bf16", "sse2"]) == ["amx_bf16", "avx512_bf16"]


def test_a_run_records_what_precision_resolved_to_and_why(tmp_path, monkeypatch):
    monkeypatch.setattr("sumtune.precision.cpu_bf16_flags", lambda flags=None: [])  # a CPU without bf16
    cfg = tiny_config(tmp_path, "bart", "training.precision=auto", "training.max_steps=2", "training.eval_strategy=no",
                      "data.eval_file=null")
    manifest = json.loads(train(cfg).run.run_json.read_text())
    assert manifest["precision"]["requested"] == "auto" and manifest["precision"]["used"] == "fp32"
    assert "no AVX512-BF16 or AMX-BF16" in manifest["precision"]["reason"]


# --------------------------------------------------------------------------------------------------
# generation.precision


class DtypeSeen(TrainerCallback):
    """After training, records the dtype of every lm_head output while the dev summaries are generated."""

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.dtypes = set()
        head = model.get_output_embeddings()
        head.register_forward_hook(lambda module, inputs, output: self.dtypes.add(output.dtype))


@pytest.mark.parametrize("generation, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_generation_after_bf16_training_runs_in_the_generation_precision_not_trainings(tmp_path, generation, dtype):
    """bf16 training wraps the model's forward in autocast (accelerate); generation must not inherit it."""
    seen = DtypeSeen()
    cfg = tiny_config(tmp_path, "bart", "qlora.use_qlora=false", "training.precision=bf16", "training.max_steps=2",
                      "training.eval_strategy=no", "evaluation.max_examples=2", f"generation.precision={generation}")
    manifest = json.loads(train(cfg, callbacks=[seen]).run.run_json.read_text())
    assert manifest["precision"]["used"] == "bf16" and manifest["generation_precision"]["used"] == generation
    assert seen.dtypes == {dtype}


@pytest.mark.parametrize("flags, dtype", [(set(), torch.float32), (SAPPHIRE_RAPIDS, torch.bfloat16)])
def test_generation_auto_is_bf16_autocast_only_on_a_cpu_with_native_bf16(tmp_path, monkeypatch, flags, dtype):
    from sumtune import backends
    from sumtune.data import read_examples, tokenizer_training_texts, Splits
    from sumtune.generate import generate_summaries

    monkeypatch.setattr("sumtune.precision.cpu_bf16_flags", lambda given=None: cpu_bf16_flags(flags))
    cfg = tiny_config(tmp_path, "bart", "generation.precision=auto", "generation.max_new_tokens=8")
    examples = read_examples(cfg.data.eval_file, cfg.data)[:3]
    plan = backends.resolve(cfg, backends.probe_machine(cfg))
    loaded = backends.load(plan, cfg, tokenizer_training_texts(Splits(read_examples(cfg.data.train_file, cfg.data), None)))
    dtypes = set()
    loaded.model.get_output_embeddings().register_forward_hook(lambda module, inputs, output: dtypes.add(output.dtype))
    summaries = generate_summaries(loaded.model, loaded.tokenizer, [e.dialogue for e in examples], cfg, progress=False)
    assert dtypes == {dtype} and len(summaries) == 3
