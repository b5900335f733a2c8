"""Batched summary generation, the same for evaluation after training and for ``sumtune predict``.

Prompts are encoded exactly as in training (``data.encode_prompt``). Examples are sorted by prompt
length (longest first, so a memory problem shows in the first batch) and batched: ``generation.batch_size``
examples per ``model.generate`` call, or with ``generation.max_tokens_per_batch`` as many as fit that
budget (``generation_batches``); results come back in the caller's order. Generation runs under
``torch.inference_mode`` with the KV cache on (``use_cache=True`` is passed: training turns
``model.config.use_cache`` off, and a checkpoint's generation config may too) and computes no loss. Causal models are padded on the left and the prompt is cut off the output.
Generation stops on every id training could have taught as the end (``stop_token_ids``). Speaker tags
are ordinary added tokens, so decoding keeps them as text. ``generation.precision`` bf16 (or ``auto``
where the hardware multiplies bf16 natively, ``sumtune.precision``) runs it under bfloat16 autocast.
"""

from __future__ import annotations

import itertools
import logging
from typing import Optional, Sequence

from .batching import token_budget_sizes
from .config import GenerationConfig, RunConfig
from .data import encode_prompt, end_token_id
from .precision import resolve_precision

log = logging.getLogger("sumtune")


def generate_summaries(model, tokenizer, dialogues: Sequence[str], cfg: RunConfig, progress: bool = True,
                       new_tokens: Optional[list[int]] = None, stopped: Optional[list[bool]] = None) -> list[str]:
    """Summaries in the caller's order; ``new_tokens``, when given, gets each one's generated token count,
    ``stopped`` whether each ended on a stop token (False: cut off at max_new_tokens)."""
    import torch
    from tqdm.auto import tqdm

    causal = cfg.arch.kind == "causal"
    encoded = [encode_prompt(dialogue, cfg, tokenizer) for dialogue in dialogues]  # exactly as in training
    outputs: list[str] = [""] * len(encoded)
    gen = cfg.generation
    settings = generation_settings(model, tokenizer, cfg)
    counts = [0] * len(encoded)
    ended = [False] * len(encoded)
    was_training = model.training
    model.eval()
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left" if causal else "right"
    batches = generation_batches([len(ids) for ids in encoded], gen)
    precision = generation_precision(model, cfg)
    log.info("generation precision: %s (%s)", precision.used, precision.reason)
    bf16 = precision.used == "bf16"
    try:
        for batch in tqdm(batches, desc="generating", unit="batch", disable=not progress):
            inputs = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt").to(model.device)
            with torch.inference_mode(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
                generated = model.generate(**inputs, **settings)
            generated = generated[:, inputs["input_ids"].shape[1]:] if causal else generated[:, 1:]  # no decoder start
            texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
            lengths = generated_lengths(generated, settings["eos_token_id"])
            stops = ended_on_stop_token(generated, settings["eos_token_id"])
            for index, text, length, stop in zip(batch, texts, lengths, stops):
                outputs[index], counts[index], ended[index] = text.strip(), length, stop
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    if new_tokens is not None:
        new_tokens.extend(counts)
    if stopped is not None:
        stopped.extend(ended)
    return outputs


def generation_batches(lengths: Sequence[int], gen: GenerationConfig) -> list[list[int]]:
    """Example indices (of ``lengths``, the prompts' token counts) in ``model.generate`` batches, longest
    prompt first, equal lengths in input order. ``gen.batch_size`` examples per batch or, with
    ``gen.max_tokens_per_batch``, as many as keep rows × (longest prompt + max_new_tokens) × num_beams
    within the budget (the most positions a batch can hold at its last step), so that short prompts go
    in bigger batches; a prompt over the budget on its own is a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if not order:
        return []
    if gen.max_tokens_per_batch:
        costs = [((lengths[i] + gen.max_new_tokens) * gen.num_beams,) for i in order]
        sizes = token_budget_sizes(costs, gen.max_tokens_per_batch)  # walked longest first: greedy fill
        alone = sum(cost > gen.max_tokens_per_batch for (cost,) in costs)
        if alone:
            log.warning("%d prompt(s) need more than generation.max_tokens_per_batch (%d positions with "
                        "max_new_tokens %d and num_beams %d): each goes in a batch of its own", alone,
                        gen.max_tokens_per_batch, gen.max_new_tokens, gen.num_beams)
    else:
        sizes = [min(gen.batch_size, len(order) - start) for start in range(0, len(order), gen.batch_size)]
    starts = itertools.accumulate([0, *sizes[:-1]])
    return [order[start:start + size] for start, size in zip(starts, sizes)]


def generation_precision(model, cfg: RunConfig):
    """What ``generation.precision`` resolves to for ``model``'s device (a ``sumtune.precision.Precision``)."""
    return resolve_precision(cfg.generation.precision, model.device.type == "cuda", key="generation.precision")


def generation_settings(model, tokenizer, cfg: RunConfig) -> dict:
    """The keyword arguments of every ``model.generate`` call: the config's ``generation`` block, greedy or
    beam search (never sampling), and where to start and stop."""
    gen = cfg.generation
    settings = dict(
        max_new_tokens=gen.max_new_tokens,
        num_beams=gen.num_beams,
        no_repeat_ngram_size=gen.no_repeat_ngram_size,
        length_penalty=gen.length_penalty,
        early_stopping=gen.early_stopping,
        do_sample=False,  # sumtune's settings are the whole story: Llama-3's published generation config samples
        use_cache=True,  # the Trainer leaves model.config.use_cache False after training; generate must not recompute
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stop_token_ids(model, tokenizer, cfg),
    )
    if cfg.arch.kind == "seq2seq":
        settings["decoder_start_token_id"] = decoder_start_token_id(model)
    return settings


def generated_lengths(generated, stop_ids: list[int]) -> list[int]:
    """Tokens each row generated: up to and including its first stop token (padding after it not counted)."""
    import torch

    stops = torch.isin(generated, torch.tensor(stop_ids, device=generated.device)).int()
    return [int(row.argmax()) + 1 if row.any() else len(row) for row in stops]


def ended_on_stop_token(generated, stop_ids: list[int]) -> list[bool]:
    """Whether each row holds a stop token: False for a row cut off at max_new_tokens."""
    import torch

    return torch.isin(generated, torch.tensor(stop_ids, device=generated.device)).any(dim=1).tolist()


def stop_token_ids(model, tokenizer, cfg: RunConfig) -> list[int]:
    """Where generation stops: the model's generation-config EOS ids (Llama-3 lists three), the
    tokenizer's EOS, and the end token training put after every summary (a chat template's end of turn)."""
    configured = model.generation_config.eos_token_id if model.generation_config is not None else None
    configured = configured if isinstance(configured, list) else [configured]
    ids = [*configured, tokenizer.eos_token_id, end_token_id(cfg, tokenizer)]
    return list(dict.fromkeys(token for token in ids if token is not None))


def decoder_start_token_id(model) -> int:
    """The model config's decoder start (KoBART: </s> = 1; T5: <pad> = 0), as the model was trained."""
    start = model.config.decoder_start_token_id
    return start if start is not None else model.generation_config.decoder_start_token_id
