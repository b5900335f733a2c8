"""Examples in, token ids out: reading, cleaning, per-architecture prompts, tokenization, label masks.

Prompt styles (the registry's ``prompt_style``):

- ``plain``  (BART, KoBART)      source = dialogue, target = summary
- ``prefix`` (T5, Flan-T5, mT5)  source = "summarize: " + dialogue, target = summary
- ``tldr``   (GPT-2, KoGPT2)     one sequence "{dialogue} TL;DR: {summary}<eos>", prompt labels = -100
- ``chat``   (Llama, Qwen, EXAONE) the tokenizer's chat template: system + user prompt, assistant
  summary; everything before the summary has label -100

Padding is left to HF: ``DataCollatorForSeq2Seq`` pads each batch to its longest row (to a multiple of
8); ``batching`` puts rows of similar length in one batch. Packed causal batches (``training.packing``)
have no padding: ``DataCollatorWithFlattening`` (see ``packing``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from .architectures import Architecture
from .config import DataConfig, PreprocessingConfig, RunConfig, data_file_problems
from .datafiles import (CheckedFile, Example, LabeledText, check_data_file, check_labels, check_overlap, label_set,
                        rows_slice)

log = logging.getLogger("sumtune")

IGNORE_INDEX = -100
DEFAULT_TLDR_TEMPLATE = "{dialogue} TL;DR: "
DEFAULT_CHAT_PROMPT = "Summarize the following dialogue.\n\n{dialogue}"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant that writes short, faithful summaries of dialogues."


class DataError(ValueError):
    """A data file or row that cannot be used; the message names the file and row."""


# --- reading ---------------------------------------------------------------------------------------


def read_examples(path: Path, data: DataConfig, role: str = "train_file", limit: Optional[int] = None) -> list[Example]:
    """Rows of a data file as Examples, checked by the rules of ``datafiles`` (the same as ``sumtune
    validate``); with ``data.clean``, rows with an empty field are dropped (a warning counts them)."""
    checked = check_data_file(path, data, role)
    if checked.problems:
        raise DataError("\n".join(checked.problems))
    checked.log_findings(log)
    return checked.examples[:limit]


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


@dataclass(frozen=True)
class Completion:
    """For causal models, what follows the prompt: ``lead`` (text a chat template writes before the
    summary, often empty), the summary, then ``end_id``, the token that ends the answer."""

    lead: str
    end_id: int


def completion_frame(example: Example, arch: Architecture, pre: PreprocessingConfig, tokenizer, prompt: str) -> Completion:
    """TL;DR prompts: the summary, then the tokenizer's EOS. Chat templates: whatever the template writes
    around the assistant's message; its end token is the first special token after the message (Llama-3
    ``<|eot_id|>``, ChatML ``<|im_end|>``, EXAONE ``[|endofturn|]``), else EOS."""
    if arch.prompt_style != "chat":
        return Completion("", tokenizer.eos_token_id)
    full = tokenizer.apply_chat_template(_chat_messages(example.dialogue, pre, example.summary), tokenize=False)
    if not full.startswith(prompt):
        raise DataError(
            "the chat template renders the conversation differently from its prompt-only form, so the prompt "
            "cannot be masked; set preprocessing.chat_template to a template whose prompt is a prefix"
        )
    answer = full[len(prompt):]
    at = answer.find(example.summary)
    if at < 0:
        raise DataError(f"example {example.id}: the chat template changes the summary text, so its tokens cannot "
                        "be found for the labels; set preprocessing.chat_template to one that writes it unchanged")
    after = tokenizer(answer[at + len(example.summary):], add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    end_id = next((token for token in after if token in special), tokenizer.eos_token_id)
    return Completion(answer[:at], end_id)


def end_token_id(cfg: RunConfig, tokenizer) -> int:
    """The token training puts after every summary: where generation must stop."""
    if cfg.arch.kind == "seq2seq" or cfg.arch.prompt_style != "chat":
        return tokenizer.eos_token_id
    probe = Example("probe", "A: hi", "hello")
    prompt = build_prompt(probe.dialogue, cfg.arch, cfg.preprocessing, tokenizer)
    return completion_frame(probe, cfg.arch, cfg.preprocessing, tokenizer, prompt).end_id


# --- tokenization ----------------------------------------------------------------------------------
#
# The contract, the same for every family and every tokenizer (checked on every example by
# ``check_contract``): the prompt holds at most max_source_length tokens, template and special tokens
# included, and only the dialogue is shortened, at a token boundary taken from the tokenizer's
# offsets (a byte-level BPE never leaves half a Hangul syllable); the target holds at most
# max_target_length tokens and always ends with its end token: exactly one EOS for seq2seq (added
# when the tokenizer does not, as KoBART's does not), the prompt style's or chat template's end token
# for causal models, also when the summary had to be cut.


class Fitted(NamedTuple):
    ids: list[int]
    cut: bool  # whether the text had to be shortened to fit


CHARS_PER_TOKEN = 16  # a first guess at how much text ``limit`` tokens can cover (``head_past_limit``)


def fit_text(text: str, encode: Callable[[str], list[int]], limit: int, tokenizer, what: str) -> Fitted:
    """``encode(text)``, with ``text`` cut at a token boundary until the result has at most ``limit`` ids."""
    text = head_past_limit(text, encode, limit)
    ids = encode(text)
    if len(ids) <= limit:
        return Fitted(ids, cut=False)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    keep = len(offsets) - (len(ids) - limit)
    while keep > 0:
        ids = encode(text[: offsets[keep][0]].rstrip())
        if len(ids) <= limit:
            return Fitted(ids, cut=True)
        keep -= len(ids) - limit
    overhead = len(encode(""))
    raise DataError(f"{what}: a limit of {limit} tokens leaves no room for the text after the {overhead} tokens "
                    "that the prompt, template and special tokens take; raise it")


def head_past_limit(text: str, encode: Callable[[str], list[int]], limit: int) -> str:
    """The shortest of ``text``'s first ``limit`` x 16, x 64, ... characters that still encodes to more than
    ``limit`` ids, else the whole text: cutting it then keeps the same tokens as cutting the whole, and a
    50 MB record is never tokenized whole (its ids and offsets took gigabytes) when 384 tokens are kept."""
    window = limit * CHARS_PER_TOKEN
    while window < len(text):
        head = text[:window]
        if len(encode(head)) > limit:
            return head
        window *= 4
    return text


def ending_with(ids: list[int], end_id: int) -> list[int]:
    """``ids`` ending with exactly one ``end_id`` (the tokenizer's own, or one added)."""
    return (ids[:-1] if ids and ids[-1] == end_id else ids) + [end_id]


def encode_prompt(dialogue: str, cfg: RunConfig, tokenizer) -> list[int]:
    """The token ids a model reads before writing its summary, within ``data.max_source_length``."""
    return fit_prompt(dialogue, cfg, tokenizer).ids


def fit_prompt(dialogue: str, cfg: RunConfig, tokenizer) -> Fitted:
    arch = cfg.arch
    if arch.kind == "seq2seq":
        def encode(text):
            return ending_with(tokenizer(build_prompt(text, arch, cfg.preprocessing, tokenizer))["input_ids"],
                               tokenizer.eos_token_id)
    else:
        def encode(text):
            return tokenizer(build_prompt(text, arch, cfg.preprocessing, tokenizer),
                             add_special_tokens=prompt_needs_specials(arch))["input_ids"]
    return fit_text(dialogue, encode, cfg.data.max_source_length, tokenizer, "data.max_source_length")


def encode_seq2seq(example: Example, cfg: RunConfig, tokenizer) -> dict:
    source = fit_prompt(example.dialogue, cfg, tokenizer)
    target = fit_text(example.summary, lambda text: ending_with(tokenizer(text_target=text)["input_ids"], tokenizer.eos_token_id),
                      cfg.data.max_target_length, tokenizer, "data.max_target_length")
    return {"input_ids": source.ids, "attention_mask": [1] * len(source.ids), "labels": target.ids,
            "cut": (source.cut, target.cut)}


def encode_causal(example: Example, cfg: RunConfig, tokenizer) -> dict:
    prompt = fit_prompt(example.dialogue, cfg, tokenizer)
    prompt_ids = prompt.ids
    full_prompt = build_prompt(example.dialogue, cfg.arch, cfg.preprocessing, tokenizer)
    frame = completion_frame(example, cfg.arch, cfg.preprocessing, tokenizer, full_prompt)
    lead_ids = tokenizer(frame.lead, add_special_tokens=False)["input_ids"] if frame.lead else []

    def encode(text):
        return lead_ids + tokenizer(text, add_special_tokens=False)["input_ids"] + [frame.end_id]

    target = fit_text(example.summary, encode, cfg.data.max_target_length, tokenizer, "data.max_target_length")
    input_ids = prompt_ids + target.ids
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + target.ids,
        "cut": (prompt.cut, target.cut),
    }


def prompt_needs_specials(arch: Architecture) -> bool:
    """Chat templates already write their own BOS; plain causal prompts get the tokenizer's (if any)."""
    return arch.prompt_style != "chat"


ENCODERS = {"seq2seq": encode_seq2seq, "causal": encode_causal}


def encode_examples(examples: list[Example], cfg: RunConfig, tokenizer, split: str):
    """A datasets.Dataset of input_ids/attention_mask/labels; rows left with no target token are dropped.

    Every row is checked against the preprocessing contract; the first is logged as the model sees it,
    and how many dialogues and summaries the length limits cut, in one line.
    """
    import datasets

    encode = ENCODERS[cfg.arch.kind]
    end_id = end_token_id(cfg, tokenizer)
    rows, dropped, cuts = [], [], []
    for example in examples:
        row = encode(example, cfg, tokenizer)
        cuts.append(row.pop("cut"))
        check_contract(row, example, cfg, tokenizer, end_id)
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
    log_truncation(split, cuts, cfg)
    log.info("%s example as the model sees it (special tokens shown):\n%s", split, describe_row(rows[0], tokenizer))
    return datasets.Dataset.from_list(rows)


def log_truncation(split: str, cuts: list[tuple[bool, bool]], cfg: RunConfig) -> None:
    """One line: how many (dialogue, summary) pairs ``cuts`` says were shortened to the length limits."""
    dialogues, summaries = sum(dialogue for dialogue, _ in cuts), sum(summary for _, summary in cuts)
    limits = (f"data.max_source_length {cfg.data.max_source_length}, "
              f"data.max_target_length {cfg.data.max_target_length} tokens")
    if not dialogues and not summaries:
        log.info("%s: no dialogue or summary is truncated (%s)", split, limits)
        return
    log.warning("%s: truncated %d of %d dialogues and %d of %d summaries to fit %s; raise the limits to keep "
                "more of them", split, dialogues, len(cuts), summaries, len(cuts), limits)


def check_contract(row: dict, example: Example, cfg: RunConfig, tokenizer, end_id: int) -> None:
    """Raise DataError when an encoded example breaks the contract above (a tokenizer quirk sumtune
    did not foresee): the message names the example, the family and the broken rule."""
    data, labels = cfg.data, row["labels"]
    target = [token for token in labels if token != IGNORE_INDEX]
    n_prompt = len(labels) - len(target) if cfg.arch.kind == "causal" else len(row["input_ids"])
    broken = []
    if n_prompt > data.max_source_length:
        broken.append(f"the prompt has {n_prompt} tokens, over data.max_source_length {data.max_source_length}")
    if len(target) > data.max_target_length:
        broken.append(f"the target has {len(target)} tokens, over data.max_target_length {data.max_target_length}")
    if not target or target[-1] != end_id:
        broken.append(f"the target does not end with its end token {tokenizer.convert_ids_to_tokens(end_id)!r} ({end_id})")
    if cfg.arch.kind == "seq2seq" and end_id in target[:-1]:
        broken.append("the target holds more than one EOS")
    if cfg.arch.kind == "causal" and labels[:n_prompt] != [IGNORE_INDEX] * n_prompt:
        broken.append("the prompt is not masked out of the labels")
    if broken:
        raise DataError(f"example {example.id} ({cfg.model.architecture}, tokenizer {type(tokenizer).__name__}): "
                        + "; ".join(broken))


def describe_row(row: dict, tokenizer) -> str:
    target = [token for token in row["labels"] if token != IGNORE_INDEX]
    return (f"  input  ({len(row['input_ids'])} tokens): {tokenizer.decode(row['input_ids'], skip_special_tokens=False)!r}\n"
            f"  labels ({len(target)} tokens): {tokenizer.decode(target, skip_special_tokens=False)!r}")


def has_target_text(labels: list[int], tokenizer) -> bool:
    """Whether the unmasked labels hold any visible text (not only end tokens or spaces)."""
    target = [token for token in labels if token != IGNORE_INDEX]
    return bool(tokenizer.decode(target, skip_special_tokens=True).strip())


@dataclass
class Splits:
    train: list  # Examples, or LabeledTexts for task: classification
    eval: Optional[list]
    checked: list[CheckedFile] = field(default_factory=list)  # what reading found (log_splits)
    labels: Optional[list] = None  # classification: every label of train_file, in id order


def read_splits(cfg: RunConfig) -> Splits:
    """The train and eval files, every row checked (``datafiles``); raises DataError listing every
    problem in both files. Training calls this before it reserves a run directory."""
    files = {"train_file": cfg.data.train_file, "eval_file": cfg.data.eval_file}
    checked = {role: check_data_file(path, cfg.data, role, cfg.task) for role, path in files.items() if path is not None}
    if cfg.task == "classification":
        check_labels(checked["train_file"], checked.get("eval_file"), cfg.data)
    problems = data_file_problems(list(checked.values()))
    if problems:
        raise DataError("\n".join(problems))
    check_overlap(checked["train_file"], checked.get("eval_file"), cfg.data)  # a warning, logged by log_splits
    train = checked["train_file"].examples[rows_slice(cfg.data.train_rows)]
    eval_ = checked["eval_file"].examples[rows_slice(cfg.data.eval_rows)] if "eval_file" in checked else None
    if cfg.eval_split is not None:
        train, eval_ = stratified_split(train, cfg.eval_split, cfg.training.seed)
        log.info("data.eval_split %.2f: %d of %d training rows held out as dev (stratified by label, seed %d)",
                 cfg.eval_split, len(eval_), len(train) + len(eval_), cfg.training.seed)
    labels = label_set(e.label for e in train + (eval_ or [])) if cfg.task == "classification" else None
    return Splits(train[: cfg.data.max_train_samples], eval_[: cfg.data.max_eval_samples] if eval_ is not None else None,
                  list(checked.values()), labels)


def stratified_split(examples: list, share: float, seed: int) -> tuple[list, list]:
    """(train, dev): from each label's rows, ``share`` of them (rounded, at least one where the label has
    two or more rows) drawn with ``seed`` go to dev; both keep the file's row order."""
    import random

    by_label: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        by_label.setdefault(example.label, []).append(index)
    held_out: set[int] = set()
    for label in sorted(by_label):
        rows = by_label[label]
        n_dev = min(max(round(len(rows) * share), 1), len(rows) - 1)
        held_out.update(random.Random(f"{seed}:{label}").sample(rows, n_dev))
    return ([e for i, e in enumerate(examples) if i not in held_out],
            [e for i, e in enumerate(examples) if i in held_out])


def log_splits(splits: Splits) -> None:
    """What reading the data found (dropped rows, duplicate ids, a non-UTF-8 file) and the split sizes."""
    for found in splits.checked:
        found.log_findings(log)
    log.info("data: %d train, %d eval examples", len(splits.train), len(splits.eval or []))


def tokenizer_training_texts(splits: Splits) -> list[str]:
    """Texts a scratch tokenizer learns from (training split only) — also scanned for speaker tags."""
    return [text for example in splits.train
            for text in ((example.text,) if isinstance(example, LabeledText) else (example.dialogue, example.summary))]


def data_collator(tokenizer, model, packed: bool = False):
    """Dynamic padding, or with ``packed`` (causal models, ``training.packing``) one row per batch: the
    examples concatenated, position ids restarting per example, no padding (sumtune/packing.py).
    Lengths are rounded up to a multiple of 8 only on a GPU, whose tensor cores want it; on a CPU the
    rounding only adds work (4 % of KoBART's on DialogSum, docs/benchmarks/train_throughput.md)."""
    import torch
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if packed:
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX)
    return DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=IGNORE_INDEX,
                                  pad_to_multiple_of=8 if torch.cuda.is_available() else None)
