"""Base model and tokenizer: from a checkpoint (local directory or hub cache) or built from scratch.

``init: scratch`` builds the family's model from a size preset in ``architectures.SIZE_PRESETS`` and,
when no tokenizer is configured, trains a BPE tokenizer on the training texts — so tests and the demo
run offline; both are kept in the run's ``base_model/`` and loaded from there on ``--resume``. Backends
call ``load_base``; they add adapters or quantisation on top.

How weights load (training and ``sumtune.load`` alike): safetensors only unless ``model.allow_pickle``,
an explicit dtype (``load_dtype``), ``model.device_map`` / ``model.max_memory`` passed to accelerate
(``placement``), and every load timed with the peak memory after it (``LoadClock``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import transformers
from transformers import PreTrainedTokenizerBase

from .architectures import SIZE_PRESETS, Architecture
from .config import RunConfig
from .machine import cpu_bf16_flags
from .records import atomic_directory, write_json_atomic

log = logging.getLogger("sumtune")

TAG_PATTERN = re.compile(r"#[A-Za-z][A-Za-z0-9_]*#")

# A plain template for scratch chat models (pretrained chat models bring their own).
SCRATCH_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SCRATCH_ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
SCRATCH_SPECIALS = dict(pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>")
# roles a tokenizer must declare, by family kind: summaries end with EOS; a classifier only pads
REQUIRED_SPECIALS = {"seq2seq": ("eos_token", "pad_token"), "causal": ("eos_token", "pad_token"), "encoder": ("pad_token",)}
# WordPiece specials of BERT-style tokenizers, at the ids KoELECTRA and KcBERT give them (0..4)
SCRATCH_WORDPIECE_SPECIALS = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                  mask_token="[MASK]")
SCRATCH_BASE_FACTS = "sumtune_base.json"  # in a scratch run's base_model/: added token ids; marks the save complete


class CheckpointNotFound(RuntimeError):
    """A pretrained checkpoint is neither a local directory nor in the hub cache, and could not be fetched."""


@dataclass
class BaseModel:
    model: object
    tokenizer: PreTrainedTokenizerBase
    new_token_ids: list[int]  # tokens added for speaker tags / masks; LoRA must train their embeddings
    checkpointing_on: bool = False  # the backend enabled gradient checkpointing itself (the Trainer must not again)
    for_generation: Optional[Callable] = None  # switches a trained model to inference mode (unsloth); None: nothing to do


def checkpointing_at_load(cfg: RunConfig) -> bool:
    """Whether a backend that sets up checkpointing while it loads (4-bit QLoRA, unsloth; CUDA only) turns it
    on: ``auto`` is on there, as those recipes do; the memory estimate that decides ``auto`` elsewhere is
    of CPU memory (``train.checkpointing_choice``)."""
    return cfg.training.gradient_checkpointing is not False


def load_base(cfg: RunConfig, texts: list[str], quantization_config=None,
              scratch_dir: Path | None = None, keep_initial_weights: bool = True) -> BaseModel:
    """The model and tokenizer a backend starts from, with speaker tags added as single tokens.

    A scratch run keeps its start in ``scratch_dir`` (when given): the tokenizer trained for it, the ids
    of the tokens added to it and, with ``keep_initial_weights`` (an adapter is useless without them),
    the random initial weights. When the directory already holds them (``--resume``), they are loaded,
    not built again, so the run goes on with the very tokenizer and weights it started from.
    """
    saved = saved_scratch_base(cfg, scratch_dir)
    if saved is not None:
        tokenizer = getattr(transformers, cfg.arch.tokenizer_class).from_pretrained(str(scratch_dir))
        new_ids = saved["new_token_ids"]
    else:
        tokenizer = load_tokenizer(cfg, texts)
        new_ids = add_special_tokens(tokenizer, cfg, texts)
    if saved is not None and saved["initial_weights"]:  # saved with its rows already made for the added tokens
        model = getattr(transformers, cfg.arch.auto_class).from_pretrained(str(scratch_dir), use_safetensors=True, dtype="auto",
                                                                            **head_facts(cfg))
        keep_output_layer_untied(model)
        log.info("loaded the run's tokenizer and initial weights from %s", scratch_dir)
    else:
        if cfg.model.init == "scratch":
            model = build_scratch_model(cfg, tokenizer)
        else:
            model = load_pretrained_model(cfg, quantization_config)
        if not built_for_tokenizer(cfg):
            make_room_for_new_tokens(model, tokenizer, new_ids)  # also keeps an untied output layer untied
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if cfg.model.init == "scratch" and scratch_dir is not None and saved is None:
        save_scratch_base(model if keep_initial_weights else None, tokenizer, new_ids, Path(scratch_dir))
    return BaseModel(model, tokenizer, new_ids)


def save_scratch_base(model, tokenizer: PreTrainedTokenizerBase, new_ids: list[int], directory: Path) -> None:
    """The tokenizer, the initial weights (when given) and, written last as the mark of a complete
    save, ``SCRATCH_BASE_FACTS``: the added token ids and whether the weights are there."""
    with atomic_directory(directory) as staging:  # an interrupted save leaves no half a base_model/
        if model is not None:
            model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        write_json_atomic(staging / SCRATCH_BASE_FACTS, {"new_token_ids": list(new_ids), "initial_weights": model is not None})


def saved_scratch_base(cfg: RunConfig, directory: Path | None) -> Optional[dict]:
    """The facts of a scratch base saved by an earlier start of this run, or None when there is none."""
    if cfg.model.init != "scratch" or directory is None or not Path(directory).is_dir():
        return None
    facts = Path(directory) / SCRATCH_BASE_FACTS
    if facts.is_file():
        return json.loads(facts.read_text(encoding="utf-8"))
    if any(Path(directory).iterdir()):
        raise ValueError(
            f"{directory} holds a scratch model without its {SCRATCH_BASE_FACTS} (saved by an older sumtune, or its "
            "saving was cut short), so this run cannot go on from the tokenizer and weights it started with. "
            "Start a new run (without --resume)"
        )
    return None


def built_for_tokenizer(cfg: RunConfig) -> bool:
    """A scratch model without ``model.config`` is sized for its tokenizer, added tokens included."""
    return cfg.model.init == "scratch" and not cfg.model.config


def make_room_for_new_tokens(model, tokenizer: PreTrainedTokenizerBase, new_ids: list[int]) -> None:
    """Give every token of the tokenizer an embedding row, and the added tokens freshly initialised rows.

    Rows are added (input and, for untied models, output embeddings) when the tokenizer outgrew the
    matrix. Where the matrix already has spare rows past the tokenizer (T5: 32,100 tokens, 32,128 rows;
    mT5: 250,100 and 250,112; Qwen3: 151,669 and 151,936) and added tokens land on them, those rows
    are untrained padding: they are set to the mean of the trained rows, on the input side and, when
    untied, the output side; rows added by growing the matrix get that mean too. An untied output layer stays
    untied (``keep_output_layer_untied``).
    """
    import torch

    keep_output_layer_untied(model)
    rows = model.get_input_embeddings().num_embeddings
    spare = [token for token in new_ids if token < rows]
    if spare:
        first = min(new_ids)
        with torch.no_grad():
            for weight in embedding_weights(model):
                weight[spare] = weight[:first].mean(dim=0, keepdim=True)
        log.info("%d added tokens landed on spare embedding rows: set to the mean of the trained rows", len(spare))
    if len(tokenizer) > rows:
        # transformers draws the new rows around the mean at random; the mean itself makes every rebuild
        # of the run (resume, sumtune.load, export) give the same rows, also the padding rows past the tokenizer
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=8, mean_resizing=False)
        with torch.no_grad():
            for weight in embedding_weights(model):
                weight[rows:] = weight[:rows].mean(dim=0, keepdim=True)


def own_output_layer(model):
    """The output layer when it has a weight of its own (mT5, Flan-T5), None when tied to the input embedding."""
    output = model.get_output_embeddings()
    return output if output is not None and output.weight is not model.get_input_embeddings().weight else None


def embedding_weights(model) -> list:
    """The input embedding's weight and, when it has its own, the output layer's."""
    output = own_output_layer(model)
    return [model.get_input_embeddings().weight] + ([output.weight] if output is not None else [])


def keep_output_layer_untied(model) -> None:
    """transformers 5 declares T5/mT5's output layer tied to the input embedding (config and
    ``_tied_weights_keys``), although mT5 and Flan-T5 checkpoints load untied. Any later re-tie (every
    ``resize_token_embeddings``) would then replace the trained output layer by the input embedding, and
    PEFT would treat it as tied. When the weights really are separate, drop that entry for this model."""
    output = own_output_layer(model)
    tied_keys = getattr(model, "_tied_weights_keys", None)
    if output is None or not isinstance(tied_keys, dict):
        return
    name = next(name for name, module in model.named_modules() if module is output)
    model._tied_weights_keys = {key: source for key, source in tied_keys.items() if not key.startswith(name + ".")}


# --- tokenizer -------------------------------------------------------------------------------------


def load_tokenizer(cfg: RunConfig, texts: list[str]) -> PreTrainedTokenizerBase:
    source = cfg.model.tokenizer or (checkpoint_to_load(cfg) if cfg.model.init == "pretrained" else None)
    if source is None:
        tokenizer = train_tokenizer(texts, cfg.arch, cfg.model.tokenizer_vocab_size)
    else:
        ensure_available(source, cfg.model.revision)
        if cfg.model.trust_remote_code:
            log.warning("trust_remote_code is ON for %s: code shipped with the checkpoint will run", source)
        tokenizer = getattr(transformers, cfg.arch.tokenizer_class).from_pretrained(
            source, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
        )
    complete_special_tokens(tokenizer, cfg, source)
    if cfg.preprocessing.chat_template:
        tokenizer.chat_template = cfg.preprocessing.chat_template
    elif not tokenizer.chat_template and cfg.arch.chat_template:  # a base checkpoint (Gemma-3 270m) ships none
        tokenizer.chat_template = cfg.arch.chat_template
    if cfg.arch.prompt_style == "chat" and not tokenizer.chat_template:
        raise ValueError(
            f"{cfg.model.architecture} uses a chat template, but the tokenizer of {source} has none: "
            "set preprocessing.chat_template in the config"
        )
    return tokenizer


def complete_special_tokens(tokenizer: PreTrainedTokenizerBase, cfg: RunConfig, source) -> None:
    """Declare the special tokens a published tokenizer leaves undeclared (KoBART, KoGPT2), then check
    that EOS and padding are defined: every sequence sumtune builds ends in EOS, and batches are padded.

    Order: ``model.special_tokens_map``, then the registry row's ``tokenizer_specials`` (only for roles
    still empty); a missing pad token falls back to EOS (labels are padded with -100 regardless).
    """
    vocab = tokenizer.get_vocab()
    configured = dict(cfg.model.special_tokens_map)
    unknown = {role: token for role, token in configured.items() if token not in vocab}
    if unknown:
        raise ValueError(
            f"model.special_tokens_map: {', '.join(f'{role}={token!r}' for role, token in unknown.items())} not in "
            f"the vocabulary of the tokenizer {source or '(trained on the data)'}"
        )
    family_defaults = {role: token for role, token in cfg.arch.tokenizer_specials
                       if getattr(tokenizer, role) is None and token in vocab and role not in configured}
    declared = {**family_defaults, **configured}
    if declared:
        tokenizer.add_special_tokens(declared)
        log.info("declared special tokens of %s: %s", source or "the tokenizer",
                 ", ".join(f"{role}={token} ({tokenizer.convert_tokens_to_ids(token)})" for role, token in declared.items()))
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    missing = [role for role in REQUIRED_SPECIALS[cfg.arch.kind] if getattr(tokenizer, role) is None]
    if missing:
        raise ValueError(
            f"the tokenizer {source} declares no {' or '.join(missing)}: sumtune pads batches and ends every "
            f"summary with EOS. Fix: set model.special_tokens_map in the config, e.g. "
            f"{{{', '.join(f'{role}: {SCRATCH_SPECIALS[role]!r}' for role in missing)}}}, with tokens from its vocabulary"
        )


def train_tokenizer(texts: list[str], arch: Architecture, vocab_size: int) -> PreTrainedTokenizerBase:
    """A tokenizer for a scratch model, trained on ``texts`` in a second or two: BERT-style WordPiece for
    encoders, else BPE (sentencepiece-style spaces)."""
    if arch.kind == "encoder":
        return train_wordpiece_tokenizer(texts, vocab_size)
    return train_bpe_tokenizer(texts, arch, vocab_size)


def train_wordpiece_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """Like KoELECTRA's and KcBERT's: cased WordPiece, ``[CLS] text [SEP]``, specials at ids 0..4."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = list(SCRATCH_WORDPIECE_SPECIALS.values())
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, min_frequency=2,
                                        show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]")))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **SCRATCH_WORDPIECE_SPECIALS)


def train_bpe_tokenizer(texts: list[str], arch: Architecture, vocab_size: int) -> PreTrainedTokenizerBase:
    """A BPE tokenizer (sentencepiece-style spaces); seq2seq ones end every sequence with </s>."""
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


def build_scratch_model(cfg: RunConfig, tokenizer: PreTrainedTokenizerBase):
    """A randomly initialised model of the size preset.

    With ``model.config: DIR`` the published config.json there keeps its facts (vocabulary size,
    special-token ids, decoder start, tied or untied output embeddings) and only the dimensions
    change; otherwise the special ids come from the tokenizer and the vocabulary fits it.
    """
    import torch

    arch, size = cfg.arch, cfg.model.size
    dims = arch.scratch_config(SIZE_PRESETS[size])
    if cfg.model.config:
        for key in ("max_position_embeddings", "n_positions"):  # a checkpoint fact, not a size
            dims.pop(key, None)
        config = transformers.AutoConfig.from_pretrained(cfg.model.config, **dims, **head_facts(cfg))
        layer_types = getattr(config, "layer_types", None)  # per-layer attention kinds (Qwen3): one per layer
        if isinstance(layer_types, list) and len(layer_types) != config.num_hidden_layers:
            config = transformers.AutoConfig.from_pretrained(cfg.model.config, **dims,
                                                             layer_types=layer_types[: config.num_hidden_layers])
    else:
        special_ids = dict(
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        if arch.kind == "seq2seq":
            special_ids["decoder_start_token_id"] = tokenizer.pad_token_id
        config = getattr(transformers, arch.config_class)(vocab_size=_round_up(len(tokenizer), 8), **special_ids, **dims,
                                                          **head_facts(cfg))
    model = getattr(transformers, arch.auto_class).from_config(config, dtype=getattr(torch, load_dtype(cfg)))
    if cfg.model.config:
        if _published_untied(Path(cfg.model.config)):
            untie_output_layer(model)
        # generation defaults (EOS ids, forced BOS): their own file, or the model config's generation keys
        config_file = "generation_config.json" if (Path(cfg.model.config) / "generation_config.json").is_file() else "config.json"
        model.generation_config = transformers.GenerationConfig.from_pretrained(cfg.model.config, config_file_name=config_file)
    log.info("built %s from scratch (%s preset%s, %.2fM parameters)", arch.family, size,
             f", facts of {cfg.model.config}" if cfg.model.config else "", model.num_parameters() / 1e6)
    return model


def _published_untied(config_dir: Path) -> bool:
    """The file's own word: transformers 5 reports T5/mT5 configs as tied whatever they say."""
    return json.loads((config_dir / "config.json").read_text(encoding="utf-8")).get("tie_word_embeddings") is False


def untie_output_layer(model) -> None:
    """Give a from-config model its own random output layer, as mT5 and Flan-T5 have."""
    import torch

    if own_output_layer(model) is None:
        inputs = model.get_input_embeddings()
        model.get_output_embeddings().weight = torch.nn.Parameter(torch.randn_like(inputs.weight) * inputs.weight.std())
    keep_output_layer_untied(model)


def checkpoint_to_load(cfg: RunConfig) -> str:
    """``model.checkpoint`` as ``from_pretrained`` takes it: a GGUF (file, or ``fetched:NAME``) is imported
    once and its dense directory returned; hub ids and directories are returned as written."""
    from .gguf_import import local_checkpoint

    return local_checkpoint(cfg.model.checkpoint, cfg.model.gguf_file)


def base_record(cfg: RunConfig) -> dict:
    """run.json facts of a local pretrained base: the directory loaded, its fingerprint (predict,
    ``sumtune.load`` and export warn when it changed) and, for an imported GGUF, its source file, sha256
    and quantisation."""
    local = checkpoint_to_load(cfg) if cfg.model.init == "pretrained" else None
    if local is None or not Path(local).is_dir():
        return {}
    from .checkpoints import directory_fingerprint
    from .gguf_import import import_facts

    record = {"checkpoint_dir": local, "base_fingerprint": directory_fingerprint(local)}
    imported = import_facts(local)
    if imported:
        record["gguf"] = {key: imported[key] for key in ("source", "sha256", "quantization", "gguf_architecture")}
    return record


def warn_if_base_changed(cfg: RunConfig, manifest: dict, run_dir) -> None:
    """A run rebuilt on a local base that is not the one it trained on gives other outputs: say so."""
    trained_on = manifest.get("base_fingerprint")
    if not trained_on:
        return
    now = base_record(cfg).get("base_fingerprint")
    if now != trained_on:
        log.warning("%s was trained on the base %s with fingerprint %s, which is now %s: the base checkpoint "
                    "changed (re-fetched, re-imported or edited), so outputs may differ from the run's",
                    run_dir, manifest.get("checkpoint_dir") or cfg.model.checkpoint, trained_on, now or "missing")


def load_pretrained_model(cfg: RunConfig, quantization_config=None):
    source = checkpoint_to_load(cfg)
    ensure_available(source, cfg.model.revision)
    auto_class = getattr(transformers, cfg.arch.auto_class)
    kwargs = dict(
        revision=cfg.model.revision,
        trust_remote_code=cfg.model.trust_remote_code,
        use_safetensors=None if cfg.model.allow_pickle else True,
        dtype=load_dtype(cfg),
        **placement(cfg.model, default=quantized_device_map() if quantization_config is not None else None),
        **head_facts(cfg),
    )
    # No low_cpu_mem_usage: transformers 5 always loads that way (the model is made on the meta device and
    # each weight is read straight from the memory-mapped file into place), and drops the flag unread.
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    return auto_class.from_pretrained(source, **kwargs)


def head_facts(cfg: RunConfig) -> dict:
    """What the model's config needs to know of the task: for classification the label set (num_labels,
    id2label, label2id), which also gives a pretrained encoder its new classification head."""
    if cfg.task != "classification":
        return {}
    from .classify import model_label_facts

    return model_label_facts(cfg)


def load_dtype(cfg: RunConfig) -> str:
    """``model.dtype`` made explicit. ``auto``: bfloat16 for a pretrained base that does not train (LoRA,
    QLoRA) on a GPU that supports it; float32 otherwise — on a CPU, for weights that train (full
    fine-tuning keeps fp32 master weights; the Trainer's bf16/fp16 autocast does the fast math), and for a
    scratch model, which is built in float32."""
    import torch

    if cfg.model.dtype != "auto":
        if cfg.model.dtype == "bfloat16":
            warn_if_bf16_is_emulated()
        return cfg.model.dtype

    frozen_base = cfg.qlora.use_qlora and cfg.backend != "full" and cfg.model.init == "pretrained"
    return "bfloat16" if frozen_base and torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"


@functools.lru_cache(maxsize=None)
def warn_if_bf16_is_emulated() -> None:
    """Once per process (a load asks for its dtype more than once): bfloat16 weights on a CPU without
    AVX512-BF16 or AMX-BF16 run every matmul emulated."""
    import torch

    if not torch.cuda.is_available() and not cpu_bf16_flags():
        log.warning("model.dtype bfloat16 on a CPU without AVX512-BF16 or AMX-BF16: torch emulates bf16, so "
                    "every matmul is slower than in float32 (a tiny Llama trained 10x slower); "
                    "model.dtype: auto picks float32 here and bfloat16 on a GPU that has it")


def placement(model_cfg, default=None) -> dict:
    """``device_map`` and ``max_memory`` for ``from_pretrained``: the config's (``max_memory`` alone means
    ``device_map: auto``), else ``default``; nothing when neither is set (the caller moves the model)."""
    device_map = model_cfg.device_map
    if device_map is None and model_cfg.max_memory is not None:
        device_map = "auto"
    kwargs = {"device_map": device_map if device_map is not None else default}
    if model_cfg.max_memory is not None:  # accelerate names GPUs by number: cuda:0 -> 0
        kwargs["max_memory"] = {int(k.removeprefix("cuda:")) if k.startswith("cuda:") else k: v
                                for k, v in model_cfg.max_memory.items()}
    return {key: value for key, value in kwargs.items() if value is not None}


def quantized_device_map() -> dict:
    """Where a bitsandbytes-quantized model goes: each DDP rank's own GPU, or the CPU (bitsandbytes 4-bit runs there too)."""
    import torch

    return {"": int(os.environ.get("LOCAL_RANK", 0))} if torch.cuda.is_available() else {"": "cpu"}


# --- measured loading ------------------------------------------------------------------------------


@dataclass
class LoadClock:
    """Seconds per step of a load (``{"base": 1.23, "adapter": 0.05}``) and the peak memory after it.

        clock = LoadClock()
        with clock.step("base"):
            model = ...
        run.update(**clock.facts())    # load_time_s, load_peak_memory_mb
    """

    times: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()  # the peak of this load, not of what ran before it

    @contextmanager
    def step(self, name: str):
        started = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - started, 3)

    def facts(self) -> dict:
        return {"load_time_s": dict(self.times), "load_peak_memory_mb": peak_memory_mb()}

    def describe(self) -> str:
        """``loaded base in 1.23 s, adapter in 0.05 s, peak memory 812 MB``"""
        steps = ", ".join(f"{name} in {seconds:.2f} s" for name, seconds in self.times.items())
        return f"loaded {steps}, peak memory {peak_memory_mb():.0f} MB"


def peak_memory_mb() -> float:
    """Peak GPU memory (CUDA max allocated) when on CUDA, else the process's peak resident memory."""
    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


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
