"""Rebuild, from a GGUF file's metadata alone, the tokenizer its checkpoint was trained with.

    from sumtune.gguf_tokenizer import tokenizer_from_gguf
    tokenizer = tokenizer_from_gguf("~/.cache/sumtune/checkpoints/gemma3-270m/gemma-3-270m-q4_k_m.gguf")
    tokenizer.save_pretrained(model_dir)  # AutoTokenizer.from_pretrained(model_dir) gives it back

``gguf.GGUFReader`` maps the file and parses its header; no tensor is read or dequantized. What is
built depends on ``tokenizer.ggml.model``:

* ``gpt2``, byte-level BPE (SmolLM2): ``tokenizer.ggml.tokens`` and ``tokenizer.ggml.merges`` as a
  ``tokenizers`` BPE, behind the regex split llama.cpp names in ``tokenizer.ggml.pre``. Built here
  rather than through transformers' own GGUF conversion, which picks its converter by
  ``general.architecture`` instead of by the tokenizer (SmolLM2, a "llama", gets the SentencePiece
  converter bent to byte level) and declares eos = bos = ``<|im_start|>`` with no pad. Its encodings are
  right (the tests compare them with ours); building from the metadata directly costs as few lines as
  repairing its special tokens would, and reads the file once.
* ``llama``, SentencePiece BPE with byte fallback (Gemma 3): the file has no merges; the scores are the
  merge priorities (a piece's score ranks the merge that builds it), so the merges come from
  transformers' ``generate_merges``, the function its GemmaConverter applies to a tokenizer.model.
  transformers' GGUF conversion reads the same scores as Unigram log-probabilities, which splits words
  wrongly ("▁w", "or", "ld"), registers 5 of the 6,414 added tokens and never adds ``<bos>``.

Both then register every CONTROL and USER_DEFINED token as an added token (matched whole, never split),
take bos/eos/unk/pad from the metadata ids, add bos/eos where ``add_bos_token``/``add_eos_token`` say so
and carry ``tokenizer.chat_template``. The returned tokenizer's ``add_bos_token`` tells a caller whose
chat template writes ``{{ bos_token }}`` that a second one would follow. transformers 5 does not save
that attribute (tokenizer.json's post-processor alone keeps the fact), so a reloaded tokenizer still
adds the bos but reads ``add_bos_token`` as False: after a reload, ask ``tokenizer("").input_ids``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import generate_merges

KEYS = gguf.Keys.Tokenizer
NORMAL, CONTROL, USER_DEFINED = gguf.TokenType.NORMAL, gguf.TokenType.CONTROL, gguf.TokenType.USER_DEFINED

# The splits llama.cpp makes before byte-level BPE, by tokenizer.ggml.pre, as tokenizers pre-tokenizers
# placed ahead of ByteLevel (which applies GPT-2's regex). "smollm" isolates every digit first (llama.cpp:
# "\p{N}", then GPT-2's regex), as SmolLM's own tokenizer.json does with Digits(individual_digits=True).
# Other values name other regexes; refusing them beats encoding silently differently.
BYTE_LEVEL_SPLITS: dict[str, list[pre_tokenizers.PreTokenizer]] = {
    "gpt-2": [],
    "smollm": [pre_tokenizers.Digits(individual_digits=True)],
}


def tokenizer_from_gguf(path: str | Path) -> PreTrainedTokenizerFast:
    """The fast tokenizer of the checkpoint in GGUF file ``path``, built from its metadata alone.

    Raises ValueError (naming the file) when the file is not a readable GGUF, lacks the tokenizer keys
    its ``tokenizer.ggml.model`` needs, or has a model or pre-tokenizer that is not supported.
    """
    path = Path(path).expanduser()
    metadata = _tokenizer_metadata(path)
    builders = {"gpt2": _byte_level_bpe, "llama": _sentencepiece_bpe}
    kind = metadata.get(KEYS.MODEL)
    if kind not in builders:
        raise ValueError(
            f"{path}: {KEYS.MODEL} is {kind!r}; supported: 'gpt2' (byte-level BPE with merges) and 'llama' "
            "(SentencePiece BPE with scores)"
        )
    tokens = _required(metadata, KEYS.LIST, path)
    token_types = metadata.get(KEYS.TOKEN_TYPE) or [NORMAL] * len(tokens)
    backend, pieces = builders[kind](path, metadata, tokens, token_types)
    # CONTROL tokens are special: skip_special_tokens drops them from decoded text, as the published
    # tokenizers do (llama.cpp writes CONTROL for the tokens its source tokenizer marks special, and for
    # a few that only look special, such as Gemma's <unusedN>). USER_DEFINED tokens ("\n", runs of spaces
    # or tabs, "<b>", "[multimodal]") are text that must stay whole and survive decoding, so they are not
    # special (llama.cpp writes USER_DEFINED for added tokens not marked special; SentencePiece's
    # user-defined symbols are not special either).
    # They are matched in the normalized text, as SentencePiece matches them after spaces became "▁"
    # (a byte-level tokenizer has no normalizer, so there it makes no difference).
    typed = list(zip(pieces, token_types))
    backend.add_special_tokens([AddedToken(p, special=True, normalized=False) for p, kind in typed if kind == CONTROL])
    backend.add_tokens([AddedToken(p, special=False, normalized=True) for p, kind in typed if kind == USER_DEFINED])

    def token_at(key: str) -> str | None:
        index = metadata.get(key)
        if index is not None and not 0 <= index < len(pieces):
            raise ValueError(f"{path}: {key} is {index}, outside the {len(pieces)} tokens of {KEYS.LIST}")
        return None if index is None else pieces[index]

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=token_at(KEYS.BOS_ID),
        eos_token=token_at(KEYS.EOS_ID),
        unk_token=token_at(KEYS.UNK_ID),
        pad_token=token_at(KEYS.PAD_ID),
        # Absent keys add nothing: a token the metadata does not ask for is never invented.
        add_bos_token=bool(metadata.get(KEYS.ADD_BOS, False)),
        add_eos_token=bool(metadata.get(KEYS.ADD_EOS, False)),
        chat_template=metadata.get(KEYS.CHAT_TEMPLATE),
        clean_up_tokenization_spaces=False,  # decode gives back the text, " ." included
    )


def _tokenizer_metadata(path: Path) -> dict[str, Any]:
    """The ``tokenizer.*`` metadata of GGUF file ``path`` as Python values."""
    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, IndexError, KeyError) as error:  # what GGUFReader raises on a bad or cut-off file
        raise ValueError(f"{path} is not a readable GGUF file (not GGUF, or truncated): {error}") from error
    return {name: field.contents() for name, field in reader.fields.items() if name.startswith("tokenizer.")}


def _required(metadata: dict[str, Any], key: str, path: Path) -> Any:
    if key not in metadata:
        raise ValueError(f"{path}: {metadata.get(KEYS.MODEL)!r} tokenizer metadata has no {key}")
    return metadata[key]


def _byte_level_bpe(path: Path, metadata: dict[str, Any], tokens: list[str], token_types: list[int]):
    """GPT-2-style byte-level BPE: merges in file order, the pre-tokenizer named by tokenizer.ggml.pre."""
    pre = metadata.get(KEYS.PRE, "gpt-2")
    if pre not in BYTE_LEVEL_SPLITS:
        supported = ", ".join(map(repr, BYTE_LEVEL_SPLITS))
        raise ValueError(f"{path}: {KEYS.PRE} is {pre!r}; supported with 'gpt2': {supported}")
    merges = [tuple(merge.split(" ")) for merge in _required(metadata, KEYS.MERGES, path)]
    backend = Tokenizer(models.BPE({token: index for index, token in enumerate(tokens)}, merges))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [*BYTE_LEVEL_SPLITS[pre], pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    backend.decoder = decoders.ByteLevel()
    return backend, tokens


def _sentencepiece_bpe(path: Path, metadata: dict[str, Any], tokens: list[str], token_types: list[int]):
    """SentencePiece BPE: spaces become "▁", merges ranked by the merged piece's score, byte fallback."""
    scores = _required(metadata, KEYS.SCORES, path)
    # llama.cpp writes the "▁" of a USER_DEFINED token as " " (Gemma's "▁▁" as two spaces); the piece
    # is the one with "▁", as in the published tokenizer.
    pieces = [token.replace(" ", "▁") if kind == USER_DEFINED else token for token, kind in zip(tokens, token_types)]
    vocab = {piece: index for index, piece in enumerate(pieces)}
    # Merges build normal pieces only: control and user-defined tokens are matched whole before BPE
    # runs, byte tokens come only from byte fallback.
    not_merged = {piece for piece, kind in zip(pieces, token_types) if kind != NORMAL}
    merges = generate_merges(vocab, list(zip(pieces, scores)), skip_tokens=not_merged)
    unk_id = metadata.get(KEYS.UNK_ID)
    unk_token = pieces[unk_id] if unk_id is not None and 0 <= unk_id < len(pieces) else None  # else token_at raises
    backend = Tokenizer(models.BPE(vocab, merges, unk_token=unk_token, fuse_unk=True, byte_fallback=True))
    # llama.cpp's default for a SentencePiece model is a dummy "▁" before the text (Llama 2); Gemma says false.
    dummy_prefix = bool(metadata.get(KEYS.ADD_PREFIX, True))
    prepend = [normalizers.Prepend("▁")] if dummy_prefix else []
    strip = [decoders.Strip(content=" ", left=1, right=0)] if dummy_prefix else []
    backend.normalizer = normalizers.Sequence([*prepend, normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), *strip])
    return backend, pieces
