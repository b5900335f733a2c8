"""Examples in, token ids out: reading, cleaning, per-architecture prompts, tokenization, label masks.

Prompt styles (the registry's ``prompt_style``):

- ``plain``  (BART, KoBART)      source = dialogue, target = summary
- ``prefix`` (T5, Flan-T5, mT5)  source = "summarize: " + dialogue, target = summary
- ``tldr``   (GPT-2, KoGPT2)     one sequence "{dialogue} TL;DR: {summary}<eos>", prompt labels = -100
- ``chat``   (Llama, Qwen, EXAONE) the tokenizer's chat template: system + user prompt, assistant
  summary; everything before the summary has label -100

Batching is left to HF: ``DataCollatorForSeq2Seq`` pads each batch to its longest row (to a multiple of
8) and the Trainer's length-grouped sampler keeps rows of similar length together.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .architectures import Architecture
from .config import DataConfig, PreprocessingConfig, RunConfig
from .records import read_records

log = logging.getLogger("sumtune")

IGNORE_INDEX = -100
DEFAULT_TLDR_TEMPLATE = "{dialogue} TL;DR: "
DEFAULT_CHAT_PROMPT = "Summarize the following dialogue.\n\n{dialogue}"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant that writes short, faithful summaries of dialogues."


@dataclass(frozen=True)
class Example:
    id: str
    dialogue: str
    summary: Optional[str] = None


class DataError(ValueError):
    """A data file or row that cannot be used; the message names the file and row."""


# --- reading ---------------------------------------------------------------------------------------


def read_examples(path: Path, data: DataConfig, need_summary: bool = True, limit: Optional[int] = None) -> list[Example]:
    """Rows of a CSV/JSONL file as Examples; with ``data.clean``, rows with empty fields are dropped (counted)."""
    rows = read_records(path)
    if not rows:
        raise DataError(f"{path}: no rows")
    columns = [data.dialogue_column] + ([data.summary_column] if need_summary else [])
    missing = [column for column in columns if column not in rows[0]]
    if missing:
        raise DataError(f"{path}: no column {', '.join(missing)}; it has {', '.join(rows[0])}")
    examples, dropped = [], []
    for line, row in enumerate(rows, start=2):
        dialogue = clean_text(row[data.dialogue_column]) if data.clean else row[data.dialogue_column]
        summary = row.get(data.summary_column)
        if summary is not None and data.clean:
            summary = clean_text(summary)
        example_id = row.get(data.id_column) or f"row{line}"
        if not dialogue.strip() or (need_summary and not (summary or "").strip()):
            if not data.clean:
                raise DataError(f"{path}: row {line} (id {example_id}): empty dialogue or summary")
            dropped.append(example_id)
            continue
        examples.append(Example(example_id, dialogue, summary))
        if limit is not None and len(examples) >= limit:
            break
    if dropped:
        log.warning("%s: dropped %d rows with an empty dialogue or summary: %s", path, len(dropped), ", ".join(dropped[:10]))
    if not examples:
        raise DataError(f"{path}: every row has an empty dialogue or summary")
    return examples


def clean_text(text: str) -> str:
    """Unify line breaks (also literal '\\n'), trim each line, collapse runs of spaces, drop blank lines."""
    text = text.replace("\r\n", "\n").replace("\\n", "\n")
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


# --- prompts ---------------------------------------------------------------------------------------


def build_prompt(dialogue: str, arch: Architecture, pre: PreprocessingConfig, tokenizer) -> str:
    """The text a model sees before its summary (source for seq2seq, prompt for causal)."""
    return PROMPT_BUILDERS[arch.prompt_style](dialogue, arch, pre, tokenizer)


def _plain(dialogue, arch, pre, tokenizer) -> str:
    return dialogue


def _prefix(dialogue, arch, pre, tokenizer) -> str:
    return (pre.prefix if pre.prefix is not None else arch.prefix) + dialogue


def _tldr(dialogue, arch, pre, tokenizer) -> str:
    return (pre.prompt_template or DEFAULT_TLDR_TEMPLATE).format(dialogue=dialogue)


def _chat(dialogue, arch, pre, tokenizer) -> str:
    return tokenizer.apply_chat_template(_chat_messages(dialogue, pre), add_generation_prompt=True, tokenize=False)


def _chat_messages(dialogue: str, pre: PreprocessingConfig, summary: Optional[str] = None) -> list[dict]:
    messages = [
        {"role": "system", "content": pre.system_prompt or DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": (pre.prompt_template or DEFAULT_CHAT_PROMPT).format(dialogue=dialogue)},
    ]
    if summary is not None:
        messages.append({"role": "assistant", "content": summary})
    return messages


PROMPT_BUILDERS: dict[str, Callable[..., str]] = {"plain": _plain, "prefix": _prefix, "tldr": _tldr, "chat": _chat}


def completion_text(example: Example, arch: Architecture, pre: PreprocessingConfig, tokenizer, prompt: str) -> str:
    """For causal models: the text after the prompt that the model learns to write (with its end token)."""
    if arch.prompt_style != "chat":
        return example.summary + tokenizer.eos_token
    full = tokenizer.apply_chat_template(_chat_messages(example.dialogue, pre, example.summary), tokenize=False)
    if not full.startswith(prompt):
        raise DataError(
            "the chat template renders the conversation differently from its prompt-only form, so the prompt "
            "cannot be masked; set preprocessing.chat_template to a template whose prompt is a prefix"
        )
    return full[len(prompt):]


# --- tokenization ----------------------------------------------------------------------------------


def truncate_dialogue(dialogue: str, tokenizer, max_tokens: int) -> str:
    ids = tokenizer(dialogue, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return dialogue
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=False)


def encode_seq2seq(example: Example, cfg: RunConfig, tokenizer) -> dict:
    prompt = build_prompt(example.dialogue, cfg.arch, cfg.preprocessing, tokenizer)
    encoded = tokenizer(prompt, max_length=cfg.data.max_source_length, truncation=True)
    labels = tokenizer(text_target=example.summary, max_length=cfg.data.max_target_length, truncation=True)["input_ids"]
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": labels}


def encode_causal(example: Example, cfg: RunConfig, tokenizer) -> dict:
    dialogue = truncate_dialogue(example.dialogue, tokenizer, cfg.data.max_source_length)
    shortened = Example(example.id, dialogue, example.summary)
    prompt = build_prompt(dialogue, cfg.arch, cfg.preprocessing, tokenizer)
    prompt_ids = tokenizer(prompt, add_special_tokens=prompt_needs_specials(cfg.arch))["input_ids"]
    target_ids = tokenizer(completion_text(shortened, cfg.arch, cfg.preprocessing, tokenizer, prompt), add_special_tokens=False)["input_ids"]
    target_ids = target_ids[: cfg.data.max_target_length]
    input_ids = prompt_ids + target_ids
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids,
    }


def prompt_needs_specials(arch: Architecture) -> bool:
    """Chat templates already write their own BOS; plain causal prompts get the tokenizer's (if any)."""
    return arch.prompt_style != "chat"


ENCODERS = {"seq2seq": encode_seq2seq, "causal": encode_causal}


def encode_examples(examples: list[Example], cfg: RunConfig, tokenizer, split: str):
    """A datasets.Dataset of input_ids/attention_mask/labels; rows left with no target token are dropped."""
    import datasets

    encode = ENCODERS[cfg.arch.kind]
    rows, dropped = [], []
    for example in examples:
        row = encode(example, cfg, tokenizer)
        if has_target_text(row["labels"], tokenizer):
            rows.append(row)
        else:
            dropped.append(example.id)
    if dropped:
        log.warning("%s: dropped %d examples left with no target tokens after truncation: %s",
                    split, len(dropped), ", ".join(dropped[:10]))
    if not rows:
        raise DataError(
            f"{split}: all {len(examples)} examples have no target tokens after truncation; raise "
            "data.max_target_length / data.max_source_length or check the summary column"
        )
    return datasets.Dataset.from_list(rows)


def has_target_text(labels: list[int], tokenizer) -> bool:
    """Whether the unmasked labels hold any visible text (not only end tokens or spaces)."""
    target = [token for token in labels if token != IGNORE_INDEX]
    return bool(tokenizer.decode(target, skip_special_tokens=True).strip())


@dataclass
class Splits:
    train: list[Example]
    eval: Optional[list[Example]]


def read_splits(cfg: RunConfig) -> Splits:
    train = read_examples(cfg.data.train_file, cfg.data, limit=cfg.data.max_train_samples)
    eval_ = None
    if cfg.data.eval_file is not None:
        eval_ = read_examples(cfg.data.eval_file, cfg.data, limit=cfg.data.max_eval_samples)
    log.info("data: %d train, %d eval examples", len(train), len(eval_ or []))
    return Splits(train, eval_)


def tokenizer_training_texts(splits: Splits) -> list[str]:
    """Texts a scratch tokenizer learns from (training split only) — also scanned for speaker tags."""
    return [text for example in splits.train for text in (example.dialogue, example.summary)]


def data_collator(tokenizer, model):
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=IGNORE_INDEX, pad_to_multiple_of=8)
