"""LoRA / QLoRA through unsloth's fast path: CUDA only, for the families the registry marks as accelerated.

    status, detail = probe()        # ("ok", "2026.10.3") | ("missing", ...) | ("broken", "NotImplementedError: ...")
    loaded = load(cfg, plan, texts, scratch_dir)

``probe()`` is the only place unsloth is imported to decide anything, and ``backends.probe_machine``
calls it only on CUDA. unsloth changes the process when imported (about 23 environment variables,
``logging.basicConfig``, warning filters); when the import fails, ``probe()`` puts those back so the
PEFT fallback runs in the process it would have had. Patches unsloth applied to torch/transformers
before failing cannot be undone.

The adapter is a plain PEFT model (``PeftModelForCausalLM``): the Trainer saves it with PEFT's
``save_pretrained``, and it loads without unsloth.
"""

from __future__ import annotations

import importlib
import logging
import os
import tempfile
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

from ..loading import (BaseModel, add_special_tokens, checkpoint_to_load, checkpointing_at_load, ensure_available, load_base, load_tokenizer,
                       make_room_for_new_tokens)
from .peft import lora_targets, trainable_token_indices

log = logging.getLogger("sumtune")


def probe() -> tuple[str, str]:
    """Try ``import unsloth``: ("ok", version), ("missing", why) or ("broken", "ExcType: message")."""
    environ = dict(os.environ)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    filters = list(warnings.filters)
    try:
        module = importlib.import_module("unsloth")
    except (Exception, SystemExit) as exc:
        _restore(environ, root, handlers, level, filters)
        if isinstance(exc, ModuleNotFoundError) and exc.name == "unsloth":
            return "missing", "unsloth is not installed"
        return "broken", _first_line(f"{type(exc).__name__}: {exc}")
    return "ok", str(getattr(module, "__version__", None) or _installed_version("unsloth"))


def _restore(environ: dict, root: logging.Logger, handlers: list, level: int, filters: list) -> None:
    for key in set(os.environ) - set(environ):
        del os.environ[key]
    for key, value in environ.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    warnings.resetwarnings()  # public API that also invalidates the per-module "already warned" caches
    warnings.filters.extend(filters)


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _installed_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown version"


def load(cfg, plan, texts: list[str], scratch_dir: Optional[Path] = None) -> BaseModel:
    """The model through ``FastLanguageModel`` (4-bit when the plan says so) with LoRA adapters on it.

    A scratch model is built by ``loading.load_base`` and saved to ``scratch_dir`` (a temporary
    directory when none is given), and unsloth loads it from there, by that exact name (never its own
    substitute repository). Speaker tags become single tokens as in the PEFT backend, get embedding rows
    the same way, and those rows train (PEFT ``trainable_token_indices``, output side too when untied).
    Gradient checkpointing is unsloth's own, so the Trainer must not add HF's on top; before the dev
    generation the model goes through ``FastLanguageModel.for_inference``.
    """
    from unsloth import FastLanguageModel

    source, tokenizer, new_ids = _source_and_tokenizer(cfg, texts, scratch_dir)
    if cfg.model.max_memory is not None:
        log.warning("model.max_memory is not used on the unsloth path: FastLanguageModel.from_pretrained takes no memory "
                    "cap (set backend: peft to load with it)")
    placed = {"device_map": cfg.model.device_map} if cfg.model.device_map is not None else {}  # else unsloth's own
    model, _unsloth_tokenizer = FastLanguageModel.from_pretrained(
        model_name=source,
        use_exact_model_name=True,  # else unsloth swaps in its own repository (e.g. '...-unsloth-bnb-4bit')
        max_seq_length=cfg.data.max_source_length + cfg.data.max_target_length,
        dtype=_torch_dtype(cfg.model.dtype),
        load_in_4bit=plan.quantization == "4bit",
        revision=cfg.model.revision if cfg.model.init == "pretrained" else None,
        trust_remote_code=cfg.model.trust_remote_code,
        **placed,
    )
    if cfg.model.init == "pretrained":  # a scratch base was saved with its rows already made
        make_room_for_new_tokens(model, tokenizer, new_ids)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id

    q = cfg.qlora
    extra = {"trainable_token_indices": trainable_token_indices(model, new_ids)} if new_ids else {}  # to peft.LoraConfig
    model = FastLanguageModel.get_peft_model(
        model,
        r=q.lora_rank,
        lora_alpha=q.lora_alpha,
        lora_dropout=q.lora_dropout,
        target_modules=lora_targets(model, cfg),
        use_gradient_checkpointing="unsloth" if checkpointing_at_load(cfg) else False,
        random_state=cfg.training.seed,
        **extra,
    )
    return BaseModel(model, tokenizer, new_ids, checkpointing_on=checkpointing_at_load(cfg),
                     for_generation=FastLanguageModel.for_inference)


def _torch_dtype(name: str):
    """``model.dtype`` for unsloth: None lets it pick (bf16 where the GPU has it, else fp16)."""
    import torch

    return None if name == "auto" else getattr(torch, name)


def _source_and_tokenizer(cfg, texts: list[str], scratch_dir: Optional[Path]):
    """What unsloth loads (checkpoint id or directory) and the tokenizer sumtune uses with it.

    The tokenizer is sumtune's own (as in the PEFT backend: pad token, chat template override, speaker
    tags), not unsloth's, so both backends feed the model the same token ids.
    """
    if cfg.model.init == "scratch":
        directory = Path(scratch_dir) if scratch_dir is not None else Path(tempfile.mkdtemp(prefix="sumtune-scratch-"))
        base = load_base(cfg, texts, scratch_dir=directory)  # saves the random init and the tokenizer there
        return str(directory), base.tokenizer, base.new_token_ids
    source = checkpoint_to_load(cfg)
    ensure_available(source, cfg.model.revision)
    tokenizer = load_tokenizer(cfg, texts)
    return source, tokenizer, add_special_tokens(tokenizer, cfg, texts)
