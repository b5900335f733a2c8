"""Backend resolution (a pure function of config + machine facts), the unsloth probe, and the unsloth
backend's wiring, all on CPU: unsloth itself is replaced by small fakes."""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from sumtune import backends
from sumtune.backends import BackendUnavailable, Machine, Plan, resolve
from sumtune.config import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "config" / "model_configs"
BROKEN_DETAIL = "NotImplementedError: Unsloth cannot find any torch accelerator? You need a GPU."


def config(*overrides: str, base: str = "tiny_llama"):
    return load_config(CONFIGS / f"{base}.yaml", list(overrides), check_files=False)


def machine(cuda: bool, unsloth: str = "ok", bitsandbytes: bool | None = None, capability=(8, 0)) -> Machine:
    detail = {"ok": "2026.10.1", "missing": "unsloth is not installed", "broken": BROKEN_DETAIL}.get(unsloth, "")
    return Machine(
        cuda=cuda,
        cuda_capability=capability if cuda else None,
        gpu_name="NVIDIA A100-SXM4-80GB" if cuda else None,
        bitsandbytes=cuda if bitsandbytes is None else bitsandbytes,
        unsloth=unsloth,
        unsloth_detail=detail,
    )


# --- the decision table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    cuda: bool
    unsloth: str  # what importing unsloth gives on this machine: ok | missing | broken
    family: str
    use_unsloth: bool
    load_in_4bit: bool

    def __str__(self) -> str:
        return "-".join([
            "cuda" if self.cuda else "cpu", f"unsloth_{self.unsloth}", self.family,
            "wish" if self.use_unsloth else "nowish", "4bit" if self.load_in_4bit else "16bit",
        ])


# The rules, first match wins. They are written out here, independently of resolve(): the reason must
# name the cause (the substring), with {family} filled in.
BACKEND_RULES = [
    # when                                     backend    the reason names
    (lambda c: not c.use_unsloth,              "peft",    "qlora.use_unsloth is false"),
    (lambda c: c.family in ("bart", "t5"),     "peft",    "unsloth does not support encoder-decoder models ({family})"),
    (lambda c: c.family == "gpt2",             "peft",    "unsloth has no fast path for gpt2"),
    (lambda c: not c.cuda,                     "peft",    "no CUDA GPU"),
    (lambda c: c.unsloth == "missing",         "peft",    "unsloth is not installed"),
    (lambda c: c.unsloth == "broken",          "peft",    "failed to import (NotImplementedError: Unsloth cannot find"),
    (lambda c: True,                           "unsloth", "accelerates {family}"),
]
QUANTIZATION_RULES = [
    # when                                     quantization   the reason names
    (lambda c: not c.load_in_4bit,             None,          ""),
    (lambda c: not c.cuda,                     None,          "load_in_4bit ignored: 4-bit QLoRA needs CUDA"),
    (lambda c: True,                           "4bit",        "4-bit NF4"),
]


def first_match(rules, case: Case):
    return next((outcome, text.format(family=case.family)) for when, outcome, text in rules if when(case))


CASES = [
    Case(*values)
    for values in itertools.product(
        (True, False), ("ok", "missing", "broken"), ("bart", "t5", "gpt2", "llama", "qwen3"), (True, False), (True, False)
    )
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_resolve_follows_the_rule_table(case: Case):
    cfg = config(f"model.architecture={case.family}", f"qlora.use_unsloth={case.use_unsloth}",
                 f"qlora.load_in_4bit={case.load_in_4bit}")
    backend, backend_cause = first_match(BACKEND_RULES, case)
    quantization, quantization_cause = first_match(QUANTIZATION_RULES, case)

    plan = resolve(cfg, machine(case.cuda, case.unsloth))

    assert (plan.backend, plan.quantization) == (backend, quantization), plan.reason
    assert backend_cause in plan.reason
    assert quantization_cause in plan.reason
    if quantization is None and case.load_in_4bit is False:
        assert "4-bit" not in plan.reason


def test_the_table_covers_every_outcome():
    outcomes = {(first_match(BACKEND_RULES, c)[0], first_match(QUANTIZATION_RULES, c)[0]) for c in CASES}
    assert outcomes == {("peft", None), ("peft", "4bit"), ("unsloth", None), ("unsloth", "4bit")}


# --- insisting, full fine-tuning, odd machines ----------------------------------------------------


def test_insisting_on_unsloth_on_cpu_is_an_error_before_any_model_loads():
    with pytest.raises(BackendUnavailable, match="backend: unsloth was requested, but there is no CUDA GPU.*backend: auto"):
        resolve(config("backend=unsloth"), machine(cuda=False, unsloth="not checked"))


@pytest.mark.parametrize("family, unsloth, cause", [
    ("bart", "ok", "encoder-decoder"),
    ("gpt2", "ok", "no fast path for gpt2"),
    ("llama", "missing", "not installed"),
    ("llama", "broken", "NotImplementedError"),
])
def test_insisting_on_unsloth_where_it_cannot_run_names_the_cause(family, unsloth, cause):
    with pytest.raises(BackendUnavailable, match=cause):
        resolve(config("backend=unsloth", f"model.architecture={family}"), machine(cuda=True, unsloth=unsloth))


def test_insisting_on_unsloth_where_it_runs():
    plan = resolve(config("backend=unsloth", "qlora.use_unsloth=false", "qlora.load_in_4bit=true"), machine(cuda=True))
    assert plan == Plan("unsloth", "4bit", plan.reason)
    assert "backend: unsloth set in config" in plan.reason


def test_insisting_on_peft_wins_over_the_wish():
    plan = resolve(config("backend=peft", "qlora.use_unsloth=true"), machine(cuda=True))
    assert (plan.backend, plan.quantization) == ("peft", None) and "backend: peft set in config" in plan.reason


def test_backend_full_trains_all_weights():
    plan = resolve(config("backend=full", "qlora.use_qlora=false", "qlora.use_unsloth=false"), machine(cuda=True))
    assert plan == Plan("full", None, "backend: full set in config: training all weights")


def test_full_finetuning_drops_the_unsloth_wish_and_says_so():
    plan = resolve(config("qlora.use_qlora=false", "qlora.use_unsloth=true"), machine(cuda=True))
    assert (plan.backend, plan.quantization) == ("full", None)
    assert "qlora.use_qlora is false" in plan.reason and "use_unsloth ignored" in plan.reason


def test_four_bit_needs_bitsandbytes():
    plan = resolve(config("qlora.load_in_4bit=true", "qlora.use_unsloth=false"), machine(cuda=True, bitsandbytes=False))
    assert plan.quantization is None and "bitsandbytes is not usable" in plan.reason


def test_unsloth_needs_a_volta_or_newer_gpu():
    plan = resolve(config(), machine(cuda=True, capability=(6, 1)))
    assert plan.backend == "peft" and "compute capability 7.0" in plan.reason and "6.1" in plan.reason


def test_this_machine_is_probed_without_importing_unsloth():
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the CPU-host path")
    found = backends.probe_machine(config())  # tiny_llama wishes for unsloth
    assert (found.cuda, found.unsloth, found.bitsandbytes) == (False, "not checked", False)
    assert "unsloth" not in sys.modules


def test_tiny_configs_that_wish_for_unsloth_train_through_peft_here(tmp_path, monkeypatch):
    """Every shipped tiny config with use_unsloth: true, trained for two steps; run.json says why."""
    import torch

    from sumtune.train import train

    if torch.cuda.is_available():
        pytest.skip("checks the CPU-host fallback")
    monkeypatch.chdir(REPO)  # data paths in configs are relative to the repository root
    wishing = [p for p in sorted(CONFIGS.glob("tiny_*.yaml")) if load_config(p, check_files=False).qlora.use_unsloth]
    assert [p.stem for p in wishing] == ["tiny_llama"]
    for path in wishing:
        cfg = load_config(path, [f"output.root={tmp_path}", "training.max_steps=2", "data.eval_file=null"])
        manifest = json.loads(train(cfg).run.run_json.read_text())
        assert manifest["status"] == "completed"
        assert manifest["backend"] == "peft" and manifest["quantization"] is None
        assert "use_unsloth requested, but there is no CUDA GPU on this machine" in manifest["backend_reason"]


# --- probe(): importing unsloth, and undoing what a failed import did --------------------------------

FAILING_UNSLOTH = '''
import logging, os, warnings
os.environ["UNSLOTH_IS_PRESENT"] = "1"
os.environ["SUMTUNE_TEST_CHANGED"] = "changed by unsloth"
os.environ.pop("SUMTUNE_TEST_REMOVED", None)
logging.basicConfig(level=logging.DEBUG, force=True)
warnings.filterwarnings("ignore", message="from the fake unsloth")
raise NotImplementedError("Unsloth cannot find any torch accelerator? You need a GPU.")
'''


def fake_unsloth(tmp_path, monkeypatch, source: str) -> None:
    package = tmp_path / "fake_site" / "unsloth"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(source)
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "unsloth", raising=False)  # and put back as it was afterwards


@pytest.fixture
def no_unsloth_left():
    yield
    sys.modules.pop("unsloth", None)


def test_probe_restores_environment_logging_and_warnings_when_unsloth_breaks(tmp_path, monkeypatch, no_unsloth_left):
    from sumtune.backends.unsloth import probe

    fake_unsloth(tmp_path, monkeypatch, FAILING_UNSLOTH)
    monkeypatch.setenv("SUMTUNE_TEST_CHANGED", "original")
    monkeypatch.setenv("SUMTUNE_TEST_REMOVED", "still here")
    root = logging.getLogger()
    environ, handlers, level, filters = dict(os.environ), list(root.handlers), root.level, list(warnings.filters)

    status, detail = probe()

    assert (status, detail) == ("broken", "NotImplementedError: Unsloth cannot find any torch accelerator? You need a GPU.")
    assert dict(os.environ) == environ
    assert root.handlers == handlers and root.level == level
    assert warnings.filters == filters
    assert "unsloth" not in sys.modules


def test_probe_reports_a_missing_dependency_as_broken(tmp_path, monkeypatch, no_unsloth_left):
    from sumtune.backends.unsloth import probe

    fake_unsloth(tmp_path, monkeypatch, "import unsloth_zoo_that_is_not_installed\n")
    assert probe() == ("broken", "ModuleNotFoundError: No module named 'unsloth_zoo_that_is_not_installed'")


def test_probe_reports_ok_with_the_version(tmp_path, monkeypatch, no_unsloth_left):
    from sumtune.backends.unsloth import probe

    fake_unsloth(tmp_path, monkeypatch, '__version__ = "2026.10.7"\n')
    assert probe() == ("ok", "2026.10.7")


def test_probe_reports_missing_when_unsloth_is_not_installed(monkeypatch):
    from sumtune.backends.unsloth import probe

    monkeypatch.setitem(sys.modules, "unsloth", None)  # an import of it raises ModuleNotFoundError
    status, detail = probe()
    assert (status, detail) == ("missing", "unsloth is not installed")


# --- the unsloth backend, with FastLanguageModel faked over transformers + peft --------------------

# Keyword names of the real FastLanguageModel methods (unsloth 2026.10: unsloth/models/loader.py
# FastLanguageModel.from_pretrained, unsloth/models/llama.py FastLlamaModel.get_peft_model). get_peft_model
# forwards other keywords (**kwargs) to peft.LoraConfig.
FROM_PRETRAINED_KEYWORDS = {
    "model_name", "max_seq_length", "dtype", "load_in_4bit", "load_in_8bit", "load_in_16bit", "full_finetuning",
    "token", "device_map", "rope_scaling", "fix_tokenizer", "trust_remote_code", "use_gradient_checkpointing",
    "resize_model_vocab", "revision", "use_exact_model_name",
}
GET_PEFT_MODEL_KEYWORDS = {
    "r", "target_modules", "lora_alpha", "lora_dropout", "bias", "layers_to_transform", "layers_pattern",
    "use_gradient_checkpointing", "random_state", "max_seq_length", "use_rslora", "modules_to_save",
    "init_lora_weights", "loftq_config",
}


class FakeFastLanguageModel:
    calls: dict = {}

    @staticmethod
    def from_pretrained(**kwargs):
        import transformers

        assert set(kwargs) <= FROM_PRETRAINED_KEYWORDS, set(kwargs) - FROM_PRETRAINED_KEYWORDS
        FakeFastLanguageModel.calls["from_pretrained"] = kwargs
        source = kwargs["model_name"]
        model = transformers.AutoModelForCausalLM.from_pretrained(source)
        return model, transformers.AutoTokenizer.from_pretrained(source)

    @staticmethod
    def get_peft_model(model, **kwargs):
        from peft import LoraConfig, get_peft_model

        FakeFastLanguageModel.calls["get_peft_model"] = kwargs
        lora = {k: v for k, v in kwargs.items() if k not in ("use_gradient_checkpointing", "random_state")}
        return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))

    @staticmethod
    def for_inference(model):
        FakeFastLanguageModel.calls["for_inference"] = model
        return model


@pytest.fixture
def fake_fast_language_model(monkeypatch):
    module = types.ModuleType("unsloth")
    module.__version__ = "2026.10.7"
    module.FastLanguageModel = FakeFastLanguageModel
    monkeypatch.setitem(sys.modules, "unsloth", module)
    FakeFastLanguageModel.calls = {}
    return FakeFastLanguageModel


class TrainerFlags(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        self.gradient_checkpointing = args.gradient_checkpointing


def test_a_run_through_the_unsloth_backend_saves_a_plain_peft_adapter(tmp_path, monkeypatch, fake_fast_language_model):
    from peft import PeftConfig

    from sumtune.train import train

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(backends, "probe_machine", lambda cfg=None, check_unsloth=None: machine(cuda=True))
    cfg = load_config(CONFIGS / "tiny_llama.yaml", [f"output.root={tmp_path}", "training.max_steps=2",
                                                     "evaluation.max_examples=2", "generation.max_new_tokens=4",
                                                     "training.seed=7", "training.gradient_checkpointing=true",
                                                     "model.dtype=float32"])
    trainer_flags = TrainerFlags()
    run = train(cfg, callbacks=[trainer_flags]).run
    manifest = json.loads(run.run_json.read_text())

    assert manifest["status"] == "completed" and manifest["backend"] == "unsloth"
    assert "unsloth 2026.10.1 on NVIDIA A100-SXM4-80GB accelerates llama" in manifest["backend_reason"]
    loaded = fake_fast_language_model.calls["from_pretrained"]
    assert loaded["model_name"] == str(run.scratch_base_dir)  # the scratch init, saved first, then loaded
    assert (run.scratch_base_dir / "model.safetensors").is_file() and (run.scratch_base_dir / "tokenizer.json").is_file()
    assert loaded["max_seq_length"] == cfg.data.max_source_length + cfg.data.max_target_length
    assert loaded["use_exact_model_name"] is True  # the configured checkpoint, not unsloth's substitute repository
    assert loaded["dtype"] is torch.float32 and loaded["load_in_4bit"] is False  # model.dtype honoured
    peft_kwargs = fake_fast_language_model.calls["get_peft_model"]
    assert set(peft_kwargs) - {"trainable_token_indices"} <= GET_PEFT_MODEL_KEYWORDS
    assert (peft_kwargs["r"], peft_kwargs["lora_alpha"], peft_kwargs["random_state"]) == (8, 16, 7)
    assert peft_kwargs["use_gradient_checkpointing"] == "unsloth" and trainer_flags.gradient_checkpointing is False
    assert "for_inference" in fake_fast_language_model.calls  # before the dev generation
    assert manifest["metrics"]["n_examples"] == 2
    assert "q_proj" in peft_kwargs["target_modules"] and peft_kwargs["trainable_token_indices"]  # speaker tags train
    assert PeftConfig.from_pretrained(str(run.model_dir)).peft_type == "LORA"
    assert (run.model_dir / "adapter_model.safetensors").is_file()


# --- sumtune doctor ---------------------------------------------------------------------------------

DOCTOR_ROWS = ("python", "torch", "CUDA", "GPU", "bitsandbytes", "unsloth", "kiwipiepy", "transformers", "peft", "trl")


def test_doctor_reports_the_machine_and_the_backend_of_each_config():
    import torch

    shipped = sorted(CONFIGS.glob("*.yaml"))
    done = subprocess.run([sys.executable, "-m", "sumtune.cli", "doctor", *map(str, shipped)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[: len(DOCTOR_ROWS)]] == list(DOCTOR_ROWS)
    assert f"torch         {torch.__version__}" in lines
    per_config = {line.split(":")[0].strip(): line for line in lines if "backend=" in line}
    assert sorted(per_config) == sorted(load_config(p, check_files=False).name for p in shipped)
    if not torch.cuda.is_available():
        assert "unsloth       not checked: no CUDA" in lines
        assert per_config["tiny_llama"].endswith(
            "backend=peft quantization=none — use_unsloth requested, but there is no CUDA GPU on this machine: LoRA via PEFT instead")
        assert "encoder-decoder models (kobart)" in per_config["kobart_unsloth"]
        assert "load_in_4bit ignored: 4-bit QLoRA needs CUDA" in per_config["qwen3_4b"]
    assert lines[-1].startswith("checked in ")


def test_doctor_loads_no_ml_library_beyond_torch():
    code = ("import sys; from sumtune.doctor import run_doctor; "
            "run_doctor(['config/model_configs/tiny_llama.yaml'], out=lambda line: None); "
            "print(sorted(m for m in ('transformers', 'peft', 'trl', 'unsloth') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


def test_doctor_shows_an_impossible_insistence_and_a_bad_config():
    done = subprocess.run([sys.executable, "-m", "sumtune.cli", "doctor", "config/model_configs/tiny_llama.yaml",
                           "--set", "backend=unsloth"], cwd=REPO, capture_output=True, text=True, timeout=60)
    import torch

    if not torch.cuda.is_available():
        assert done.returncode == 0
        assert "tiny_llama: cannot train here — backend: unsloth was requested, but there is no CUDA GPU" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "sumtune.cli", "doctor", "config/model_configs/tiny_llama.yaml",
                          "--set", "qlora.use_unslot=true"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "qlora.use_unslot: unknown key" in bad.stdout
