"""Every registry row and every shipped config: real transformers classes, buildable tiny models,
LoRA targets that exist, prompt defaults, unsloth support, checkpoints and learning rates."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import transformers

from sumtune.architectures import ARCHITECTURES, SIZE_PRESETS, get_architecture
from sumtune.config import load_config, validate_files

ROWS = list(ARCHITECTURES.values())
ROW_IDS = [row.family for row in ROWS]
AUTO_CLASS_OF_KIND = {"seq2seq": "AutoModelForSeq2SeqLM", "causal": "AutoModelForCausalLM",
                      "encoder": "AutoModelForSequenceClassification"}
T5_CONFIGS = {"T5Config", "MT5Config"}
BART_CONFIGS = {"BartConfig"}
UNSLOTH_ACCELERATED_CONFIGS = {"LlamaConfig", "MistralConfig", "Qwen2Config", "Qwen3Config", "GemmaConfig", "Gemma2Config", "Gemma3Config"}

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO_ROOT / "config" / "model_configs").rglob("*.yaml"))
SHIPPED_IDS = [str(path.relative_to(REPO_ROOT / "config" / "model_configs")) for path in SHIPPED]

# checkpoint each real-model family is expected to use (several accepted spellings of the same model)
EXPECTED_CHECKPOINTS = {
    "bart": {"facebook/bart-base"},
    "t5": {"t5-base", "google-t5/t5-base"},
    "mt5": {"google/mt5-base"},
    "flan-t5": {"google/flan-t5-base"},
    "kogpt2": {"skt/kogpt2-base-v2"},
    "kobart": {"gogamza/kobart-base-v2"},
    "llama": {"Bllossom/llama-3.2-Korean-Bllossom-3B", "fetched:smollm2-135m-instruct"},
    "gemma3": {"fetched:gemma3-270m"},
    "bert": {"beomi/kcbert-base", "fetched:all-minilm-l6-v2"},
}


# --------------------------------------------------------------------------------------------------
# Registry rows


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_kind_matches_the_auto_class(row):
    assert row.auto_class == AUTO_CLASS_OF_KIND[row.kind]


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_classes_exist_in_transformers(row):
    assert hasattr(transformers, row.config_class), row.config_class
    assert hasattr(transformers, row.auto_class), row.auto_class
    config_cls = getattr(transformers, row.config_class)
    assert issubclass(config_cls, transformers.PretrainedConfig)


def build_config(row, preset):
    return getattr(transformers, row.config_class)(vocab_size=128, **row.scratch_config(preset))


@pytest.mark.parametrize("size", list(SIZE_PRESETS))
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_scratch_config_has_the_preset_dimensions(row, size):
    preset = SIZE_PRESETS[size]
    config = build_config(row, preset)
    assert config.vocab_size == 128
    assert config.hidden_size == preset.d_model
    assert config.num_hidden_layers == preset.layers
    assert config.num_attention_heads == preset.heads
    assert config.is_encoder_decoder == (row.kind == "seq2seq")


def test_base_preset_is_kobarts_published_shape():
    """The benchmark's KoBART-shape model: the base preset on the kobart row gives the dimensions of
    gogamza/kobart-base-v2's published config.json (a preset that drifted from it would benchmark another model)."""
    published = json.loads((REPO_ROOT / "tests" / "fixtures" / "checkpoints" / "kobart-base-v2" / "config.json").read_text())
    dims = get_architecture("kobart").scratch_config(SIZE_PRESETS["base"])
    dims.pop("max_position_embeddings")  # a checkpoint fact that model.config keeps, not a size
    assert {key: published[key] for key in dims} == dims


def linear_layers(model) -> dict[str, torch.nn.Module]:
    from transformers.pytorch_utils import Conv1D  # GPT-2's linear layers; PEFT adapts them too

    return {name: module for name, module in model.named_modules() if isinstance(module, (torch.nn.Linear, Conv1D))}


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_tiny_model_builds_and_lora_targets_exist(row):
    preset = SIZE_PRESETS["tiny"]
    torch.manual_seed(0)
    model = getattr(transformers, row.auto_class).from_config(build_config(row, preset))
    assert model.config.__class__.__name__ == row.config_class
    assert model.get_input_embeddings().num_embeddings == 128
    assert sum(p.numel() for p in model.parameters()) < 2_000_000  # tiny means tiny

    linears = linear_layers(model)
    targeted = {name: module for name, module in linears.items() if name.rsplit(".", 1)[-1] in row.lora_targets}
    assert targeted, f"none of {row.lora_targets} is a linear layer of {type(model).__name__}"
    # adapters must reach attention, in every layer of the stack
    attention = [name for name in targeted if "attn" in name.lower() or "attention" in name.lower()]
    assert attention, f"no attention projection among {sorted(targeted)}"
    assert len(targeted) >= preset.layers
    assert "lm_head" not in {name.rsplit(".", 1)[-1] for name in targeted}


@pytest.mark.parametrize("row", [r for r in ROWS if r.config_class in T5_CONFIGS], ids=lambda r: r.family)
def test_t5_family_uses_the_summarize_prefix(row):
    assert row.kind == "seq2seq"
    assert row.prompt_style == "prefix"
    assert row.prefix == "summarize: "


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_prefix_only_with_prefix_style(row):
    assert bool(row.prefix) == (row.prompt_style == "prefix")


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_unsloth_fast_path_only_for_families_it_accelerates(row):
    if row.kind == "seq2seq":
        assert row.unsloth_fast_path is False
    if row.unsloth_fast_path:
        assert row.kind == "causal" and row.config_class in UNSLOTH_ACCELERATED_CONFIGS


def test_the_registry_covers_every_kind_and_the_product_families():
    assert {row.kind for row in ROWS} == {"seq2seq", "causal", "encoder"}
    assert set(EXPECTED_CHECKPOINTS) <= set(ARCHITECTURES)
    assert all(key == row.family for key, row in ARCHITECTURES.items())
    assert all(row.reference.startswith("https://huggingface.co/") for row in ROWS)


def test_rows_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ARCHITECTURES["bart"].prefix = "x"


def test_get_architecture_is_an_exact_lookup():
    for family, row in ARCHITECTURES.items():
        assert get_architecture(family) is row
    with pytest.raises(KeyError):
        get_architecture("Llama")


def test_get_architecture_error_suggests_and_lists_valid_keys():
    with pytest.raises(KeyError) as info:
        get_architecture("lama")
    message = info.value.args[0]
    assert "unknown architecture 'lama'" in message
    assert "Did you mean 'llama'?" in message
    listed = message.split("Valid:")[1].strip().rstrip(".").split(", ")
    assert sorted(listed) == sorted(ARCHITECTURES)


# --------------------------------------------------------------------------------------------------
# Shipped configs


def test_enough_configs_ship():
    assert len(SHIPPED) >= 13, SHIPPED_IDS


@pytest.mark.parametrize("path", SHIPPED, ids=SHIPPED_IDS)
def test_shipped_config_validates(path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    assert validate_files([path]) == []


def load_shipped(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    return {path: load_config(path) for path in SHIPPED}


def test_shipped_config_names_are_unique(repo_root, monkeypatch):
    names = [cfg.name for cfg in load_shipped(repo_root, monkeypatch).values()]
    assert len(names) == len(set(names)), names


def test_offline_tiny_configs_exist_for_every_kind(repo_root, monkeypatch):
    scratch = [cfg for cfg in load_shipped(repo_root, monkeypatch).values() if cfg.model.init == "scratch"]
    assert {cfg.arch.kind for cfg in scratch} == {"seq2seq", "causal", "encoder"}
    assert all(cfg.model.checkpoint is None for cfg in scratch)


def test_real_model_configs_use_the_expected_checkpoints(repo_root, monkeypatch):
    pretrained = [cfg for cfg in load_shipped(repo_root, monkeypatch).values() if cfg.model.init == "pretrained"]
    covered = set()
    for cfg in pretrained:
        family = cfg.model.architecture
        if family in EXPECTED_CHECKPOINTS:
            assert cfg.model.checkpoint in EXPECTED_CHECKPOINTS[family], f"{cfg.name}: {cfg.model.checkpoint}"
            covered.add(family)
    assert covered == set(EXPECTED_CHECKPOINTS), f"no real-model config for {set(EXPECTED_CHECKPOINTS) - covered}"


def test_learning_rates_suit_the_family(repo_root, monkeypatch):
    pretrained = [cfg for cfg in load_shipped(repo_root, monkeypatch).values() if cfg.model.init == "pretrained"]
    t5 = [cfg for cfg in pretrained if cfg.arch.config_class in T5_CONFIGS]
    bart = [cfg for cfg in pretrained if cfg.arch.config_class in BART_CONFIGS]
    assert t5 and bart
    for cfg in t5:
        assert cfg.training.learning_rate >= 1e-4, f"{cfg.name}: T5-family fine-tuning wants a larger learning rate"
    for cfg in bart:
        assert cfg.training.learning_rate <= 1e-4, f"{cfg.name}: BART-family fine-tuning wants a smaller learning rate"


@pytest.mark.parametrize("row", [r for r in ROWS if r.kind == "encoder"], ids=lambda r: r.family)
def test_encoder_rows_classify_with_a_head_that_trains_in_full(row):
    """PEFT's modules_to_save must name the head the family's classification model really has."""
    model = getattr(transformers, row.auto_class).from_config(build_config(row, SIZE_PRESETS["tiny"]))
    names = {name.split(".")[0] for name, _ in model.named_modules() if name}
    assert row.task == "classification"
    assert row.head_modules and set(row.head_modules) <= names
    assert set(row.lora_targets) == {"query", "value"}
    assert not row.unsloth_fast_path
