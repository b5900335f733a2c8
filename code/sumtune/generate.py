"""Batched summary generation, the same for evaluation after training and for ``sumtune predict``.

Examples are sorted by prompt length (longest first, so a memory problem shows in the first batch)
and batched; results come back in the caller's order. Causal models are padded on the left and the
prompt is cut off the output. Speaker tags are ordinary added tokens, so decoding keeps them as text.
"""

from __future__ import annotations

from typing import Sequence

from .config import RunConfig
from .data import build_prompt, truncate_dialogue


def generate_summaries(model, tokenizer, dialogues: Sequence[str], cfg: RunConfig, progress: bool = True) -> list[str]:
    import torch
    from tqdm.auto import tqdm

    arch = cfg.arch
    causal = arch.kind == "causal"
    if causal:
        dialogues = [truncate_dialogue(d, tokenizer, cfg.data.max_source_length) for d in dialogues]
    prompts = [build_prompt(d, arch, cfg.preprocessing, tokenizer) for d in dialogues]
    encoded = tokenizer(
        prompts,
        add_special_tokens=arch.prompt_style != "chat",
        truncation=not causal,
        max_length=None if causal else cfg.data.max_source_length,
    )["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]), reverse=True)
    outputs: list[str] = [""] * len(prompts)
    gen = cfg.generation
    settings = dict(
        max_new_tokens=gen.max_new_tokens,
        num_beams=gen.num_beams,
        no_repeat_ngram_size=gen.no_repeat_ngram_size,
        length_penalty=gen.length_penalty,
        early_stopping=gen.num_beams > 1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    was_training = model.training
    model.eval()
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left" if causal else "right"
    batches = [order[start:start + gen.batch_size] for start in range(0, len(order), gen.batch_size)]
    try:
        for batch in tqdm(batches, desc="generating", unit="batch", disable=not progress):
            inputs = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt").to(model.device)
            with torch.inference_mode():
                generated = model.generate(**inputs, **settings)
            if causal:
                generated = generated[:, inputs["input_ids"].shape[1]:]
            texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
            for index, text in zip(batch, texts):
                outputs[index] = text.strip()
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return outputs
