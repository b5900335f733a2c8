"""Offline stand-ins for the tokenizers of the real checkpoints named in config/model_configs/*.yaml.

The real tokenizer files cannot be downloaded in tests (no hub access), except KoBART's, which lies
beside the project in ../shared/fixtures/tokenizers/kobart. For every other checkpoint,
:func:`build_tokenizer` trains a small vocabulary on the given texts and lays it out so that
``transformers.AutoTokenizer.from_pretrained(out_dir)`` behaves like the published tokenizer where
preprocessing and generation depend on it:

* the same special tokens at the same ids, and the same ``len(tokenizer)`` (the gap between the
  trained vocabulary and the first special id is filled with unreachable filler entries);
* the same post-processor (what ``tokenizer(text)`` and ``tokenizer(text_target=...)`` append);
* the same declared / undeclared special tokens and the same tokenizer class (transformers 5
  rebuilds some classes from vocab + merges, so the class decides the pre-tokenizer in use);
* the same chat-template layout (templates written here, not copied);
* byte-level BPE where the real one is byte-level (a Hangul syllable can split into several
  tokens), Metaspace where it is SentencePiece-style, cased WordPiece for the BERT-style encoders
  (their hub layout: vocab.txt and a two-key tokenizer_config.json beside the model's config.json).

The vocabulary itself (which merges, which pieces) is learned from ``texts``, not the real one.
tests/fixtures/checkpoints/README.md lists the source of every fact used here.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
FIXTURES_DIR = TESTS_DIR / "fixtures" / "checkpoints"
KOBART_TOKENIZER_DIR = REPO_ROOT.parent / "shared" / "fixtures" / "tokenizers" / "kobart"

CHECKPOINTS: dict[str, str] = {
    "bart-base": "facebook/bart-base",
    "kobart-base-v2": "gogamza/kobart-base-v2",
    "t5-base": "google-t5/t5-base",
    "flan-t5-base": "google/flan-t5-base",
    "mt5-base": "google/mt5-base",
    "kogpt2-base-v2": "skt/kogpt2-base-v2",
    "llama-3.2-korean-bllossom-3b": "Bllossom/llama-3.2-Korean-Bllossom-3B",
    "qwen3-4b-instruct-2507": "Qwen/Qwen3-4B-Instruct-2507",
    "exaone-3.5-2.4b-instruct": "LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct",
    "koelectra-small-v3-discriminator": "monologg/koelectra-small-v3-discriminator",
    "kcbert-base": "beomi/kcbert-base",
}

# config stem in config/model_configs/ -> slug (only the configs that name a real checkpoint)
CONFIG_CHECKPOINT: dict[str, str] = {
    "bart_base": "bart-base",
    "kobart_unsloth": "kobart-base-v2",
    "t5_base": "t5-base",
    "flan_t5_base": "flan-t5-base",
    "mt5_base": "mt5-base",
    "kogpt2": "kogpt2-base-v2",
    "llama_3.2_korean_3b": "llama-3.2-korean-bllossom-3b",
    "qwen3_4b": "qwen3-4b-instruct-2507",
    "exaone_3.5_2.4b": "exaone-3.5-2.4b-instruct",
    "koelectra_small_spam": "koelectra-small-v3-discriminator",
    "kcbert_base_sentiment": "kcbert-base",
}

# Bllossom's own tokenizer_config.json could not be read; indirect evidence says it declares
# <|eot_id|> (like Llama-3.2-Instruct). As briefed, the imitation takes the harder case for a
# trainer: the declared eos is <|end_of_text|> while the template ends turns with <|eot_id|>.
LLAMA_DECLARED_EOS = "<|end_of_text|>"

# Filler entries pad the model vocabulary up to the first special id. They start with a Unicode
# noncharacter: byte-level pre-tokenizers can never produce it, and no merge builds it, so no
# input text reaches them; in the Unigram models they also carry the lowest score.
FILLER_MARK = "\ufdd0"
TRAINED_VOCAB = 1500  # size of the learned part; small on purpose (rare Hangul stays split)

def fixture_dir(slug: str) -> Path:
    """tests/fixtures/checkpoints/{slug}: config.json (+ generation_config.json) of the checkpoint."""
    if slug not in CHECKPOINTS:
        raise KeyError(f"unknown checkpoint slug {slug!r}; known: {', '.join(CHECKPOINTS)}")
    return FIXTURES_DIR / slug


def sample_texts(data_dir: Path | None = None) -> list[str]:
    """Dialogues and summaries of the bundled sample data (data/sample/*.csv)."""
    data_dir = data_dir or REPO_ROOT / "data" / "sample"
    texts: list[str] = []
    for path in sorted(data_dir.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                texts.extend(row[column] for column in ("dialogue", "summary") if row.get(column))
    return texts


def build_tokenizer(slug: str, out_dir: Path, texts: list[str]) -> Path:
    """Train the imitation of ``slug``'s published tokenizer on ``texts`` and save it to ``out_dir``.

    Returns ``out_dir``; ``transformers.AutoTokenizer.from_pretrained(out_dir)`` loads it offline.
    KoBART is not imitated: its real tokenizer.json (and LICENSE) are copied as they are.
    """
    builders = {
        "bart-base": _build_bart,
        "kobart-base-v2": _copy_kobart,
        "t5-base": _build_t5,
        "flan-t5-base": _build_t5,
        "mt5-base": _build_mt5,
        "kogpt2-base-v2": _build_kogpt2,
        "llama-3.2-korean-bllossom-3b": _build_llama,
        "qwen3-4b-instruct-2507": _build_qwen3,
        "exaone-3.5-2.4b-instruct": _build_exaone,
        "koelectra-small-v3-discriminator": _build_koelectra_small_v3,
        "kcbert-base": _build_kcbert_base,
    }
    if slug not in builders:
        raise KeyError(f"unknown checkpoint slug {slug!r}; known: {', '.join(CHECKPOINTS)}")
    if slug != "kobart-base-v2" and not texts:
        raise ValueError("build_tokenizer needs training texts (e.g. sample_texts())")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    builders[slug](out_dir, list(texts))
    return out_dir


# --- shared pieces --------------------------------------------------------------------------------


def _added(content: str, token_id: int, special: bool = True, lstrip: bool = False) -> dict:
    return {"id": token_id, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": False,
            "normalized": False, "special": special}


def _decoder_entry(token: dict) -> dict:
    return {key: token[key] for key in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}


def _fillers(count: int, taken: set[str]) -> list[str]:
    out, i = [], 0
    while len(out) < count:
        piece = f"{FILLER_MARK}{i}"
        if piece not in taken:
            out.append(piece)
        i += 1
    return out


def _train_bpe(texts: list[str], pre_tokenizer, normalizer=None,
               alphabet: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Learned tokens (in id order) and merges ("a b") of a BPE trained on ``texts``.

    ``alphabet`` defaults to the 256 byte-level symbols; every symbol of it gets a token.
    """
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    alphabet = pre_tokenizers.ByteLevel.alphabet() if alphabet is None else alphabet
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + TRAINED_VOCAB, min_frequency=2,
                                  initial_alphabet=alphabet, limit_alphabet=len(alphabet) + 1000,
                                  special_tokens=[], show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    tokens = [token for token, _ in sorted(model["vocab"].items(), key=lambda item: item[1])]
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in model["merges"]]
    return tokens, merges


def _split_byte_level_bpe(texts: list[str], split_regex: str, first_special: int, trim_offsets: bool,
                          normalizer=None) -> tuple:
    """(pre-tokenizer, vocab, merges) of a regex-split byte-level BPE (Llama-3, Qwen) whose learned tokens
    are padded with fillers up to ``first_special``."""
    split = pre_tokenizers.Split(Regex(split_regex), behavior="isolated", invert=False)
    pre = pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=trim_offsets,
                                                                   use_regex=False)])
    learned, merges = _train_bpe(texts, pre, normalizer=normalizer)
    tokens = learned + _fillers(first_special - len(learned), set(learned))
    return pre, {token: i for i, token in enumerate(tokens)}, merges


def _bpe_json(vocab: dict[str, int], merges: list[str], *, ignore_merges: bool = False,
              unk_token: str | None = None) -> dict:
    return {"type": "BPE", "dropout": None, "unk_token": unk_token, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
            "vocab": vocab, "merges": merges}


def _write(out_dir: Path, tokenizer_json: dict, tokenizer_config: dict | None) -> None:
    # round-trip through tokenizers so that the file is one it can read, in its own serialisation
    tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json, ensure_ascii=False))
    tokenizer.save(str(out_dir / "tokenizer.json"))
    if tokenizer_config is not None:
        with (out_dir / "tokenizer_config.json").open("w", encoding="utf-8") as handle:
            json.dump(tokenizer_config, handle, ensure_ascii=False, indent=2)
            handle.write("\n")


def _component(slot: str, obj) -> dict | None:
    """The JSON form of a tokenizers component (normalizer, pre_tokenizer, post_processor, decoder)."""
    if obj is None:
        return None
    probe = Tokenizer(models.BPE())
    setattr(probe, slot, obj)
    return json.loads(probe.to_str())[slot]


def _tokenizer_json(model: dict, added: list[dict], *, normalizer=None, pre_tokenizer=None, post_processor=None,
                    decoder=None) -> dict:
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": _component("normalizer", normalizer),
            "pre_tokenizer": _component("pre_tokenizer", pre_tokenizer),
            "post_processor": _component("post_processor", post_processor),
            "decoder": _component("decoder", decoder), "model": model}


# --- encoder-decoder -------------------------------------------------------------------------------


def _copy_kobart(out_dir: Path, texts: list[str]) -> None:
    source = KOBART_TOKENIZER_DIR / "tokenizer.json"
    if not source.is_file():
        raise FileNotFoundError(
            f"the real KoBART tokenizer is expected at {source} (../shared/fixtures/tokenizers/kobart from the "
            "project root); it is copied, not imitated")
    shutil.copyfile(source, out_dir / "tokenizer.json")
    if (KOBART_TOKENIZER_DIR / "LICENSE").is_file():
        shutil.copyfile(KOBART_TOKENIZER_DIR / "LICENSE", out_dir / "LICENSE")


def _build_bart(out_dir: Path, texts: list[str]) -> None:
    """facebook/bart-base: RoBERTa's byte-level BPE; <s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask>=50264."""
    size, specials = 50265, ["<s>", "<pad>", "</s>", "<unk>"]
    learned, merges = _train_bpe(texts, pre_tokenizers.ByteLevel(add_prefix_space=False))
    tokens = specials + learned
    tokens += _fillers(size - 1 - len(tokens), set(tokens)) + ["<mask>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    added = [_added(token, vocab[token]) for token in specials] + [_added("<mask>", size - 1, lstrip=True)]
    post = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    tokenizer_json = _tokenizer_json(_bpe_json(vocab, merges), added,
                                     pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False),
                                     post_processor=post, decoder=decoders.ByteLevel())
    config = {"tokenizer_class": "BartTokenizer", "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
              "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
              "add_prefix_space": False, "trim_offsets": True, "errors": "replace", "model_max_length": 1024,
              "added_tokens_decoder": {str(t["id"]): _decoder_entry(t) for t in added}}
    _write(out_dir, tokenizer_json, config)


def _unigram_pieces(texts: list[str], pre_tokenizer) -> list[list]:
    """[piece, score] for a Unigram model; <pad>=0 </s>=1 <unk>=2 first (T5 layout).

    The pieces are those a BPE learns on ``texts``: tokenizers' UnigramTrainer picks different pieces
    from run to run, and a test fixture must not. Every piece scores -1 plus a little per learning
    rank, so segmentation takes the fewest pieces and, among equals, the earliest learned.
    """
    learned, _ = _train_bpe(texts, pre_tokenizer, alphabet=[])
    scored = [[piece, -1.0 - rank / len(learned)] for rank, piece in enumerate(learned)]
    return [["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0]] + scored


def _build_t5_family(out_dir: Path, texts: list[str], regular: int, model_max_length: int) -> None:
    """SentencePiece-Unigram T5 layout: <pad>=0 </s>=1 <unk>=2, pieces, then <extra_id_99>..<extra_id_0>."""
    pre = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                   pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    pieces = _unigram_pieces(texts, pre)
    lowest = min(score for _, score in pieces[3:]) - 10.0
    taken = {piece for piece, _ in pieces}
    pieces += [[piece, lowest] for piece in _fillers(regular - len(pieces), taken)]
    extra = [f"<extra_id_{i}>" for i in range(99, -1, -1)]  # <extra_id_0> is the last id
    pieces += [[token, 0.0] for token in extra]
    added = [_added(token, i) for i, token in enumerate(["<pad>", "</s>", "<unk>"])]
    added += [_added(token, regular + i) for i, token in enumerate(extra)]
    model = {"type": "Unigram", "unk_id": 2, "vocab": pieces, "byte_fallback": False}
    post = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    tokenizer_json = _tokenizer_json(model, added, pre_tokenizer=pre, post_processor=post,
                                     decoder=decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True))
    config = {"tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
              "extra_ids": 100, "additional_special_tokens": [f"<extra_id_{i}>" for i in range(100)],
              "model_max_length": model_max_length,
              "added_tokens_decoder": {str(t["id"]): _decoder_entry(t) for t in added}}
    _write(out_dir, tokenizer_json, config)


def _build_t5(out_dir: Path, texts: list[str]) -> None:
    """google-t5/t5-base and google/flan-t5-base share one tokenizer: 32,000 pieces + 100 sentinels."""
    _build_t5_family(out_dir, texts, regular=32000, model_max_length=512)


def _build_mt5(out_dir: Path, texts: list[str]) -> None:
    """google/mt5-base: 250,000 pieces + 100 sentinels (250,100; the model has 250,112 rows)."""
    _build_t5_family(out_dir, texts, regular=250000, model_max_length=1000000000000000019884624838656)


# --- decoder-only ----------------------------------------------------------------------------------


def _build_kogpt2(out_dir: Path, texts: list[str]) -> None:
    """skt/kogpt2-base-v2: SKT's Metaspace character BPE (like KoBART's), 51,200 entries.

    Ids 0..6 are <s> </s> <usr> <pad> <sys> <unk> <mask>, then <unused0>..<unused99>. There is no
    post-processor and no tokenizer_config.json: the published tokenizer declares no special token.
    Its config.json is copied beside it, as in the hub repository.
    """
    specials = ["<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>"] + [f"<unused{i}>" for i in range(100)]
    normalizer = normalizers.NFKC()
    pre = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    # a character BPE has no byte fallback: give it every Hangul syllable and printable ASCII, as the
    # real 51,200-entry vocabulary has, so that Korean text never loses characters
    alphabet = [chr(c) for c in range(0xAC00, 0xD7A4)] + [chr(c) for c in range(0x21, 0x7F)] + ["▁"]
    learned, merges = _train_bpe(texts, pre, normalizer=normalizer, alphabet=alphabet)
    tokens = specials + [token for token in learned if token not in specials]
    tokens += _fillers(51200 - len(tokens), set(tokens))
    vocab = {token: i for i, token in enumerate(tokens)}
    added = [_added(token, i) for i, token in enumerate(specials)]
    tokenizer_json = _tokenizer_json(_bpe_json(vocab, merges), added, normalizer=normalizer, pre_tokenizer=pre,
                                     decoder=decoders.Metaspace(replacement="▁", prepend_scheme="always"))
    _write(out_dir, tokenizer_json, None)
    # the hub repository keeps the model's config.json beside tokenizer.json (model_type gpt2), which
    # is what makes AutoTokenizer mistake this tokenizer for GPT-2's byte-level one
    shutil.copy(fixture_dir("kogpt2-base-v2") / "config.json", out_dir / "config.json")


LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _llama3_specials() -> list[str]:
    """The 256 special tokens of Llama 3.1/3.2 (ids 128000..128255) in id order."""
    named = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 4: "<|finetune_right_pad_id|>",
             6: "<|start_header_id|>", 7: "<|end_header_id|>", 8: "<|eom_id|>", 9: "<|eot_id|>",
             10: "<|python_tag|>"}
    out, reserved = [], 0
    for offset in range(256):
        if offset in named:
            out.append(named[offset])
        else:
            out.append(f"<|reserved_special_token_{reserved}|>")
            reserved += 1
    return out


# Written for these fixtures: renders the layout of the Llama-3.2-Instruct template for plain
# system/user/assistant messages (system header with the knowledge/today date lines always present;
# contents trimmed; every turn closed by <|eot_id|>). Tools and image content are not handled.
LLAMA_CHAT_TEMPLATE = (
    "{%- set ns = namespace(system='', turns=messages) -%}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set ns.system = messages[0]['content'] | trim -%}{%- set ns.turns = messages[1:] -%}"
    "{%- endif -%}"
    "{%- if date_string is not defined -%}"
    "{%- if strftime_now is defined -%}{%- set date_string = strftime_now('%d %b %Y') -%}"
    "{%- else -%}{%- set date_string = '26 Jul 2024' -%}{%- endif -%}"
    "{%- endif -%}"
    "{{- bos_token -}}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' -}}"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: ' ~ date_string ~ '\\n\\n' ~ ns.system -}}"
    "{{- '<|eot_id|>' -}}"
    "{%- for turn in ns.turns -%}"
    "{{- '<|start_header_id|>' ~ turn['role'] ~ '<|end_header_id|>\\n\\n' ~ (turn['content'] | trim) ~ '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}"
)


def _build_llama(out_dir: Path, texts: list[str]) -> None:
    """Bllossom/llama-3.2-Korean-Bllossom-3B: Llama-3 byte-level BPE, 128,000 regular + 256 special ids."""
    pre, vocab, merges = _split_byte_level_bpe(texts, LLAMA3_SPLIT, first_special=128000, trim_offsets=True)
    specials = _llama3_specials()
    added = [_added(token, 128000 + i) for i, token in enumerate(specials)]
    post = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", 128000)]),
    ])
    tokenizer_json = _tokenizer_json(_bpe_json(vocab, merges, ignore_merges=True), added, pre_tokenizer=pre,
                                     post_processor=post, decoder=decoders.ByteLevel())
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
              "eos_token": LLAMA_DECLARED_EOS, "clean_up_tokenization_spaces": True,
              "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 131072,
              "chat_template": LLAMA_CHAT_TEMPLATE,
              "added_tokens_decoder": {str(t["id"]): _decoder_entry(t) for t in added}}
    _write(out_dir, tokenizer_json, config)


QWEN3_ADDED = [  # (content, special) for ids 151643..151668
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
    ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
]

# Written for these fixtures: the ChatML layout of Qwen3-Instruct-2507 for plain messages
# (no default system turn; tools and <think> handling of the published template are left out).
QWEN_CHAT_TEMPLATE = (
    "{%- for turn in messages -%}"
    "{{- '<|im_start|>' ~ turn['role'] ~ '\\n' ~ turn['content'] ~ '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def _build_qwen3(out_dir: Path, texts: list[str]) -> None:
    """Qwen/Qwen3-4B-Instruct-2507: byte-level BPE, 151,643 regular ids, 26 added tokens (151,669)."""
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    pre, vocab, merges = _split_byte_level_bpe(texts, PRETOKENIZE_REGEX, first_special=151643, trim_offsets=False,
                                               normalizer=normalizers.NFC())
    added = [_added(content, 151643 + i, special=special) for i, (content, special) in enumerate(QWEN3_ADDED)]
    tokenizer_json = _tokenizer_json(_bpe_json(vocab, merges), added, normalizer=normalizers.NFC(),
                                     pre_tokenizer=pre, post_processor=processors.ByteLevel(trim_offsets=False),
                                     decoder=decoders.ByteLevel())
    config = {"tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|im_end|>",
              "pad_token": "<|endoftext|>", "unk_token": None, "errors": "replace", "add_prefix_space": False,
              "split_special_tokens": False, "clean_up_tokenization_spaces": False, "model_max_length": 262144,
              "additional_special_tokens": [content for content, special in QWEN3_ADDED[1:14]],
              "chat_template": QWEN_CHAT_TEMPLATE,
              "added_tokens_decoder": {str(t["id"]): _decoder_entry(t) for t in added}}
    _write(out_dir, tokenizer_json, config)


# Written for these fixtures: the EXAONE-3.5 layout (an empty system turn when the conversation does
# not open with one; a user turn ends with a newline, every other turn with [|endofturn|] + newline).
EXAONE_CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] != 'system' -%}{{- '[|system|][|endofturn|]\\n' -}}{%- endif -%}"
    "{%- for turn in messages -%}"
    "{%- set closing = '\\n' if turn['role'] == 'user' else '[|endofturn|]\\n' -%}"
    "{{- '[|' ~ turn['role'] ~ '|]' ~ turn['content'] ~ closing -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '[|assistant|]' -}}{%- endif -%}"
)

# id -> token for EXAONE 3.5; only 0, 1 and 361 are verified (config: pad 0, bos 1, eos 361).
EXAONE_SPECIALS = {0: "[PAD]", 1: "[BOS]", 2: "[EOS]", 3: "[UNK]", 361: "[|endofturn|]",
                   362: "[|system|]", 363: "[|user|]", 364: "[|assistant|]"}


def _build_exaone(out_dir: Path, texts: list[str]) -> None:
    """LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct: byte-level BPE of 102,400 entries, specials inside the vocabulary."""
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    learned, merges = _train_bpe(texts, pre)
    first_free = max(EXAONE_SPECIALS) + 1
    reserved = _fillers(first_free - len(EXAONE_SPECIALS), set(learned))  # ids 4..360 not known: unreachable
    slots = iter(reserved)
    tokens = [EXAONE_SPECIALS.get(i) or next(slots) for i in range(first_free)] + learned
    tokens += _fillers(102400 - len(tokens), set(tokens))
    vocab = {token: i for i, token in enumerate(tokens)}
    added = [_added(token, i) for i, token in sorted(EXAONE_SPECIALS.items())]
    tokenizer_json = _tokenizer_json(_bpe_json(vocab, merges), added, pre_tokenizer=pre,
                                     post_processor=processors.ByteLevel(trim_offsets=False),
                                     decoder=decoders.ByteLevel())
    config = {"tokenizer_class": "GPT2Tokenizer", "bos_token": "[BOS]", "eos_token": "[|endofturn|]",
              "pad_token": "[PAD]", "unk_token": "[UNK]", "clean_up_tokenization_spaces": False,
              "model_max_length": 32768, "chat_template": EXAONE_CHAT_TEMPLATE,
              "added_tokens_decoder": {str(t["id"]): _decoder_entry(t) for t in added}}
    _write(out_dir, tokenizer_json, config)


# --- encoders (sequence classification) ----------------------------------------------------------

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4 in both published vocabularies


def _wordpiece_alphabet() -> list[str]:
    """Characters every imitated WordPiece vocabulary holds, word-initial and as ``##`` continuation: printable
    ASCII, the Hangul compatibility jamo (ㅋ, ㅎ, ...) and the 2,350 Hangul syllables of KS X 1001.

    The published vocabularies were built to cover their corpora's characters (KoELECTRA: limit_alphabet 6000);
    without this, a syllable missing from the few training texts would turn its whole word into [UNK].
    """
    printable = [chr(c) for c in range(0x21, 0x7F)]
    jamo = [chr(c) for c in range(0x3131, 0x3164)]
    # the 2,350 precomposed syllables of KS X 1001 are the ones EUC-KR writes in two bytes
    syllables = [chr(c) for c in range(0xAC00, 0xD7A4) if len(chr(c).encode("euc_kr", errors="ignore")) == 2]
    return printable + jamo + syllables


def _build_wordpiece(out_dir: Path, texts: list[str], slug: str, size: int, model_max_length: int,
                     tail: list[str]) -> None:
    """A cased BERT WordPiece laid out as on the hub: vocab.txt, tokenizer_config.json and the model's config.json.

    vocab.txt: [PAD] [UNK] [CLS] [SEP] [MASK] at 0..4, the pieces learned from ``texts``, the covered alphabet,
    fillers, then ``tail`` as the last entries; ``size`` lines in all. Fillers are ``[`` + mark + n + ``]``:
    the BERT pre-tokenizer splits off brackets, so no input text reaches them (nor ``[unused*]``). The published
    tokenizer_config.json names no class: AutoTokenizer takes it from config.json's model_type (BertTokenizer
    in transformers 5 for both bert and electra; ElectraTokenizer is an alias), which rebuilds the normalizer
    from do_lower_case, so the published ``false`` is what keeps case and Hangul intact.
    """
    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                            lowercase=False)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=4 * TRAINED_VOCAB, min_frequency=2, special_tokens=[],
                                        limit_alphabet=6000, continuing_subword_prefix="##", show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    vocab = json.loads(tok.to_str())["model"]["vocab"]
    tokens = BERT_SPECIALS + [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    taken = set(tokens)
    alphabet = _wordpiece_alphabet()
    tokens += [piece for piece in alphabet + ["##" + char for char in alphabet] if piece not in taken]
    fillers = [f"[{filler}]" for filler in _fillers(size - len(tokens) - len(tail), set())]
    tokens += fillers + tail
    assert len(tokens) == size == len(set(tokens)), (slug, len(tokens), len(set(tokens)))
    (out_dir / "vocab.txt").write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
    config = {"do_lower_case": False, "model_max_length": model_max_length}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config) + "\n", encoding="utf-8")
    shutil.copy(fixture_dir(slug) / "config.json", out_dir / "config.json")


def _build_koelectra_small_v3(out_dir: Path, texts: list[str]) -> None:
    """monologg/koelectra-small-v3-discriminator: cased WordPiece of 35,000 entries, model_max_length 512.

    Like KoELECTRA's published vocabularies, the last 200 entries are [unused0]..[unused199].
    """
    _build_wordpiece(out_dir, texts, "koelectra-small-v3-discriminator", size=35000, model_max_length=512,
                     tail=[f"[unused{i}]" for i in range(200)])


def _build_kcbert_base(out_dir: Path, texts: list[str]) -> None:
    """beomi/kcbert-base: cased WordPiece of 30,000 entries, model_max_length 300 (= its 300 positions)."""
    _build_wordpiece(out_dir, texts, "kcbert-base", size=30000, model_max_length=300, tail=[])
