"""Per-family preprocessing on real tokenized examples: prompts, label masks, speaker tags, drops."""

from __future__ import annotations

import logging

import pytest

from sumtune.architectures import ARCHITECTURES
from sumtune.config import RunConfig
from sumtune.data import IGNORE_INDEX, DataError, Example, build_prompt, encode_examples
from sumtune.loading import add_special_tokens, train_tokenizer

DIALOGUE = "#Person1#: 내일 회의는 몇 시에 시작하나요?\n#Person2#: 오전 열 시에 시작해요. 번호는 #PhoneNumber#예요."
SUMMARY = "#Person2#는 #Person1#에게 회의가 오전 열 시에 시작한다고 알려준다."
CORPUS = [DIALOGUE, SUMMARY] * 20 + ["Person one asks when the meeting starts.", "The meeting starts at ten."] * 20


def make_config(family: str, **data_overrides) -> RunConfig:
    data = {"train_file": "unused.csv", "max_source_length": 256, "max_target_length": 64, **data_overrides}
    return RunConfig.model_validate(
        {"name": "t", "model": {"architecture": family, "init": "scratch"}, "data": data}
    )


def tokenizer_for(cfg: RunConfig):
    tokenizer = train_tokenizer(CORPUS, cfg.arch, vocab_size=300)
    add_special_tokens(tokenizer, cfg, CORPUS)
    return tokenizer


def encode_one(family: str, example=Example("e1", DIALOGUE, SUMMARY), **data_overrides):
    cfg = make_config(family, **data_overrides)
    tokenizer = tokenizer_for(cfg)
    row = encode_examples([example], cfg, tokenizer, "train")[0]
    return cfg, tokenizer, row


def target_part(row) -> list[int]:
    return [token for token in row["labels"] if token != IGNORE_INDEX]


@pytest.mark.parametrize("family", ["t5", "flan-t5", "mt5"])
def test_t5_family_source_gets_summarize_prefix(family):
    cfg, tokenizer, row = encode_one(family)
    source = tokenizer.decode(row["input_ids"], skip_special_tokens=True)
    assert source.startswith("summarize: #Person1#")
    assert tokenizer.decode(row["labels"], skip_special_tokens=True) == SUMMARY
    assert IGNORE_INDEX not in row["labels"]  # seq2seq targets are all real tokens


@pytest.mark.parametrize("family", ["bart", "kobart"])
def test_bart_family_is_plain_source_to_target(family):
    cfg, tokenizer, row = encode_one(family)
    assert tokenizer.decode(row["input_ids"], skip_special_tokens=True) == DIALOGUE
    assert row["labels"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(row["labels"], skip_special_tokens=True) == SUMMARY


@pytest.mark.parametrize("family", ["gpt2", "kogpt2"])
def test_gpt_family_is_tldr_sequence_with_prompt_masked(family):
    cfg, tokenizer, row = encode_one(family)
    assert tokenizer.decode(row["input_ids"]) == f"{DIALOGUE} TL;DR: {SUMMARY}</s>"
    prompt_ids = tokenizer(f"{DIALOGUE} TL;DR: ")["input_ids"]
    assert row["labels"][: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert row["input_ids"][: len(prompt_ids)] == prompt_ids
    assert tokenizer.decode(target_part(row)) == f"{SUMMARY}</s>"
    assert len(row["labels"]) == len(row["input_ids"])


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "exaone"])
def test_chat_families_use_chat_template_and_mask_the_prompt(family):
    cfg, tokenizer, row = encode_one(family)
    prompt = build_prompt(DIALOGUE, cfg.arch, cfg.preprocessing, tokenizer)
    assert "<|system|>" in prompt and "<|user|>" in prompt and prompt.endswith("<|assistant|>\n")
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert row["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert tokenizer.decode(target_part(row)).startswith(SUMMARY + "</s>")
    assert row["labels"][n_prompt] != IGNORE_INDEX


def test_chatml_style_template_masks_everything_before_the_assistant_text():
    chatml = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    cfg = RunConfig.model_validate({
        "name": "t", "model": {"architecture": "qwen3", "init": "scratch"},
        "data": {"train_file": "unused.csv"}, "preprocessing": {"chat_template": chatml, "system_prompt": "요약하세요."},
    })
    tokenizer = tokenizer_for(cfg)
    tokenizer.chat_template = chatml
    row = encode_examples([Example("e1", DIALOGUE, SUMMARY)], cfg, tokenizer, "train")[0]
    target = tokenizer.decode(target_part(row))
    assert target.startswith(SUMMARY) and "요약하세요" not in target and "assistant" not in target
    masked_text = tokenizer.decode([t for t, l in zip(row["input_ids"], row["labels"]) if l == IGNORE_INDEX])
    assert masked_text.endswith("<|im_start|>assistant\n") and DIALOGUE.split("\n")[0] in masked_text


SUMMARIZING_FAMILIES = sorted(family for family, row in ARCHITECTURES.items() if row.task == "summarization")


@pytest.mark.parametrize("family", SUMMARIZING_FAMILIES)
def test_speaker_tags_and_masks_are_single_tokens(family):
    cfg, tokenizer, row = encode_one(family)
    for tag in ("#Person1#", "#Person2#", "#PhoneNumber#"):
        ids = tokenizer(tag, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, (family, tag, ids)
        assert ids[0] in row["input_ids"]
    # tags survive decoding with special tokens skipped (they are text, not control tokens)
    assert "#Person2#" in tokenizer.decode(target_part(row), skip_special_tokens=True)


def test_long_dialogue_is_truncated_but_keeps_its_target():
    """max_source_length counts the whole prompt (template, prefix, special tokens); only the dialogue shrinks."""
    long_dialogue = "\n".join([DIALOGUE] * 30)
    for family in ("bart", "t5", "gpt2", "llama"):
        cfg, tokenizer, row = encode_one(family, Example("long", long_dialogue, SUMMARY), max_source_length=160)
        n_prompt = len(row["input_ids"]) - len(target_part(row)) if cfg.arch.kind == "causal" else len(row["input_ids"])
        assert 150 <= n_prompt <= 160, (family, n_prompt)
        assert tokenizer.decode(target_part(row), skip_special_tokens=True) == SUMMARY, family
        assert len(row["input_ids"]) < len(tokenizer(long_dialogue)["input_ids"]), family


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_examples_without_target_tokens_are_dropped_and_counted():
    cfg = make_config("gpt2")
    tokenizer = tokenizer_for(cfg)
    examples = [Example("good", DIALOGUE, SUMMARY), Example("empty", DIALOGUE, "")]
    recorder = Recorder()
    logging.getLogger("sumtune").addHandler(recorder)  # the CLI may have turned off propagation
    try:
        dataset = encode_examples(examples, cfg, tokenizer, "train")
    finally:
        logging.getLogger("sumtune").removeHandler(recorder)
    assert len(dataset) == 1
    assert any("dropped 1 examples" in line and "empty" in line for line in recorder.lines)


def test_all_examples_dropped_stops_with_clear_error():
    cfg = make_config("bart")
    tokenizer = tokenizer_for(cfg)
    with pytest.raises(DataError, match="all 2 examples have no target tokens"):
        encode_examples([Example("a", DIALOGUE, ""), Example("b", DIALOGUE, " ")], cfg, tokenizer, "train")
