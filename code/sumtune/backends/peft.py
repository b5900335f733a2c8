"""LoRA adapters through PEFT; on CUDA with ``load_in_4bit``, QLoRA (NF4, double quant, bf16 compute)."""

from __future__ import annotations

import logging

from ..loading import BaseModel, checkpointing_at_load, load_base, own_output_layer

log = logging.getLogger("sumtune")

TASK_TYPES = {"seq2seq": "SEQ_2_SEQ_LM", "causal": "CAUSAL_LM", "encoder": "SEQ_CLS"}


def load(cfg, plan, texts, scratch_dir=None) -> BaseModel:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    quantization_config = four_bit_config() if plan.quantization == "4bit" else None
    base = load_base(cfg, texts, quantization_config=quantization_config, scratch_dir=scratch_dir)
    model = base.model
    if quantization_config is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing_at_load(cfg))
        base.checkpointing_on = checkpointing_at_load(cfg)
    lora = LoraConfig(
        r=cfg.qlora.lora_rank,
        lora_alpha=cfg.qlora.lora_alpha,
        lora_dropout=cfg.qlora.lora_dropout,
        target_modules=lora_targets(model, cfg),
        task_type=TASK_TYPES[cfg.arch.kind],
        modules_to_save=list(cfg.arch.head_modules) or None,  # a classifier's new head trains in full, saved with the adapter
        trainable_token_indices=trainable_token_indices(model, base.new_token_ids) if base.new_token_ids else None,
    )
    base.model = get_peft_model(model, lora)
    return base


def trainable_token_indices(model, new_ids: list[int]) -> dict[str, list[int]]:
    """PEFT's ``trainable_token_indices`` for the added tokens: their rows of the input embedding and,
    when the output layer has its own weight (mT5, Flan-T5), of the output layer too. Only those rows
    train and only they are saved with the adapter. A plain list would reach the input side alone, and
    PEFT mirrors rows to the output side only for tied weights."""
    names = {module: name for name, module in model.named_modules()}
    layers = [model.get_input_embeddings(), own_output_layer(model)]
    return {names[layer]: list(new_ids) for layer in layers if layer is not None}


def four_bit_config():
    import torch
    from transformers import BitsAndBytesConfig

    compute_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def lora_targets(model, cfg) -> list[str]:
    """``target_modules: auto`` = registry targets that name linear layers in this model."""
    present = linear_module_suffixes(model)
    if cfg.qlora.target_modules == "auto":
        targets = [name for name in cfg.arch.lora_targets if name in present]
        if not targets:
            raise ValueError(
                f"none of the registry's LoRA targets for {cfg.arch.family} ({', '.join(cfg.arch.lora_targets)}) "
                f"exist in this model; set qlora.target_modules from: {', '.join(sorted(present))}"
            )
        return targets
    unknown = [name for name in cfg.qlora.target_modules if name not in present]
    if unknown:
        raise ValueError(
            f"qlora.target_modules: {', '.join(unknown)} not found among this model's linear layers: "
            f"{', '.join(sorted(present))}"
        )
    return list(cfg.qlora.target_modules)


def linear_module_suffixes(model) -> set[str]:
    import torch
    from transformers.pytorch_utils import Conv1D

    kinds = (torch.nn.Linear, Conv1D)
    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, kinds) or type(module).__name__ in ("Linear4bit", "Linear8bitLt")
    } - {"lm_head"}
