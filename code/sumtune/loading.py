"""Base model and tokenizer: from a checkpoint (local directory or hub cache) or built from scratch.

``init: scratch`` builds the family's model from a size preset in ``architectures.SIZE_PRESETS`` and,
when no tokenizer is configured, trains a BPE tokenizer on the training texts — so tests and the demo
run offline. Backends call ``load_base``; they add adapters or quantisation on top.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import transformers
from transformers import PreTrainedTokenizerBase

from .architectures import SIZE_PRESETS, Architecture
from .config import RunConfig

log = logging.getLogger("sumtune")

TAG_PATTERN = re.compile(r"#[A-Za-z][A-Za-z0-9_]*#")

# A plain template for scratch chat models (pretrained chat models bring their own).
SCRATCH_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SCRATCH_ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
SCRATCH_SPECIALS = dict(pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>")


class CheckpointNotFound(RuntimeError):
    """A pretrained checkpoint is neither a local directory nor in the hub cache, and could not be fetched."""


@dataclass
class BaseModel:
    model: object
    tokenizer: PreTrainedTokenizerBase
    new_token_ids: list[int]  # tokens added for speaker tags / masks; LoRA must train their embeddings


def load_base(cfg: RunConfig, texts: list[str], quantization_config=None, device_map=None,
              scratch_dir: Path | None = None) -> BaseModel:
    """The model and tokenizer a backend starts from, with speaker tags added as single tokens.

    A scratch model's random initial weights are saved to ``scratch_dir`` (when given), because an
    adapter trained on them is useless without them.
    """
    arch = cfg.arch
    tokenizer = load_tokenizer(cfg, texts)
    new_ids = add_special_tokens(tokenizer, cfg, texts)
    if cfg.model.init == "scratch":
        model = build_scratch_model(arch, cfg.model.size, tokenizer)
        if scratch_dir is not None:
            model.save_pretrained(scratch_dir)
    else:
        model = load_pretrained_model(cfg, quantization_config, device_map)
        if new_ids or len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=8)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return BaseModel(model, tokenizer, new_ids)


# --- tokenizer -------------------------------------------------------------------------------------


def load_tokenizer(cfg: RunConfig, texts: list[str]) -> PreTrainedTokenizerBase:
    source = cfg.model.tokenizer or (cfg.model.checkpoint if cfg.model.init == "pretrained" else None)
    if source is None:
        tokenizer = train_tokenizer(texts, cfg.arch, cfg.model.tokenizer_vocab_size)
    else:
        ensure_available(source, cfg.model.revision)
        if cfg.model.trust_remote_code:
            log.warning("trust_remote_code is ON for %s: code shipped with the checkpoint will run", source)
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            source, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.preprocessing.chat_template:
        tokenizer.chat_template = cfg.preprocessing.chat_template
    if cfg.arch.prompt_style == "chat" and not tokenizer.chat_template:
        raise ValueError(
            f"{cfg.model.architecture} uses a chat template, but the tokenizer of {source} has none: "
            "set preprocessing.chat_template in the config"
        )
    return tokenizer


def train_tokenizer(texts: list[str], arch: Architecture, vocab_size: int) -> PreTrainedTokenizerBase:
    """A BPE tokenizer (sentencepiece-style spaces) trained on ``texts`` in a second or two."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = list(SCRATCH_SPECIALS.values())
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tok.decoder = decoders.Metaspace(prepend_scheme="first")
    ascii_alphabet = [chr(code) for code in range(33, 127)]  # prompts ("summarize: ", "TL;DR:") never hit <unk>
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, min_frequency=2,
                                  initial_alphabet=ascii_alphabet, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    if arch.kind == "seq2seq":  # like BART/T5 tokenizers: every sequence ends with </s>
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
        )
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **SCRATCH_SPECIALS)
    if arch.prompt_style == "chat":
        tokenizer.add_special_tokens({"additional_special_tokens": SCRATCH_ROLE_TOKENS})
        tokenizer.chat_template = SCRATCH_CHAT_TEMPLATE
    return tokenizer


def add_special_tokens(tokenizer: PreTrainedTokenizerBase, cfg: RunConfig, texts: list[str]) -> list[int]:
    """Make speaker tags (#Person1#), masks (#PhoneNumber#) and configured tokens single tokens.

    They are added as non-special tokens so that decoding keeps them as text.
    """
    wanted = list(cfg.preprocessing.special_tokens)
    if cfg.preprocessing.speaker_tokens:
        wanted += sorted({tag for text in texts for tag in TAG_PATTERN.findall(text)})
    vocab = tokenizer.get_vocab()
    missing = [token for token in dict.fromkeys(wanted) if token not in vocab]
    if missing:
        tokenizer.add_tokens(missing)
        log.info("added %d single tokens: %s", len(missing), " ".join(missing[:12]) + (" ..." if len(missing) > 12 else ""))
    return tokenizer.convert_tokens_to_ids(missing) if missing else []


# --- model -----------------------------------------------------------------------------------------


def build_scratch_model(arch: Architecture, size: str, tokenizer: PreTrainedTokenizerBase):
    config_class = getattr(transformers, arch.config_class)
    special_ids = dict(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if arch.kind == "seq2seq":
        special_ids["decoder_start_token_id"] = tokenizer.pad_token_id
    config = config_class(vocab_size=_round_up(len(tokenizer), 8), **special_ids, **arch.scratch_config(SIZE_PRESETS[size]))
    model = getattr(transformers, arch.auto_class).from_config(config)
    log.info("built %s from scratch (%s preset, %.2fM parameters)", arch.family, size, model.num_parameters() / 1e6)
    return model


def load_pretrained_model(cfg: RunConfig, quantization_config=None, device_map=None):
    source = cfg.model.checkpoint
    ensure_available(source, cfg.model.revision)
    auto_class = getattr(transformers, cfg.arch.auto_class)
    kwargs = dict(
        revision=cfg.model.revision,
        trust_remote_code=cfg.model.trust_remote_code,
        use_safetensors=None if cfg.model.allow_pickle else True,
        dtype=cfg.model.dtype,
    )
    if quantization_config is not None:
        # each DDP rank loads its quantized copy onto its own GPU
        kwargs.update(quantization_config=quantization_config, device_map=device_map or {"": int(os.environ.get("LOCAL_RANK", 0))})
    return auto_class.from_pretrained(source, **kwargs)


def ensure_available(source: str, revision: str | None = None) -> None:
    """Raise CheckpointNotFound with the fix when ``source`` cannot be loaded offline or fetched."""
    if Path(source).is_dir():
        return
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source, "config.json", revision=revision), str):
        return
    cache = constants.HF_HUB_CACHE
    if constants.HF_HUB_OFFLINE or os.environ.get("TRANSFORMERS_OFFLINE") == "1" or not _hub_reachable():
        raise CheckpointNotFound(
            f"model checkpoint '{source}' is not a local directory and is not in the Hugging Face cache "
            f"({cache}), and the hub cannot be reached from here. Fix: on a machine with network run "
            f"`huggingface-cli download {source}` and copy {cache} here (or set HF_HOME), or point "
            "model.checkpoint at a local directory, or use model.init: scratch for an offline tiny model."
        )


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket

    from huggingface_hub import constants

    host = re.sub(r"^https?://", "", constants.ENDPOINT).split("/")[0]
    try:
        socket.create_connection((host.split(":")[0], 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple
