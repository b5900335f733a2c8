"""tokenizer_from_gguf: tiny GGUF files written here pin each rule; the real checkpoints (marked
realweights, skipped when absent) pin the published encodings."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from sumtune.gguf_tokenizer import tokenizer_from_gguf

CONTROL, USER_DEFINED, BYTE, NORMAL = 3, 4, 6, 1
CHATML = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"


def write_gguf(path: Path, *, model: str, tokens: list[str], **keys) -> Path:
    """A GGUF file with tokenizer metadata (``keys`` name GGUFWriter's ``add_<key>`` methods:
    ``token_merges=[...]``, ``add_bos_token=True``) and one tiny tensor. GGUFWriter needs none, but a
    file without tensors ends in alignment padding whose loss GGUFReader cannot notice; after a tensor,
    cutting even the last byte is an error, as in a real checkpoint."""
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_tokenizer_model(model)
    writer.add_token_list(tokens)
    for key, value in keys.items():
        getattr(writer, f"add_{key}")(value)
    writer.add_tensor("token_embd.weight", np.zeros(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --- byte-level BPE (tokenizer.ggml.model = gpt2) -------------------------------------------------

GPT2_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "c", "ab", "bc", "Ġ", "Ġa", "1", "2", "12"]


def gpt2_gguf(tmp_path: Path, merges=("b c", "a b", "Ġ a", "1 2"), **keys) -> Path:
    metadata = dict(token_types=[CONTROL] * 3 + [NORMAL] * 10, token_merges=list(merges), tokenizer_pre="smollm",
                    bos_token_id=1, eos_token_id=2, pad_token_id=2, unk_token_id=0, add_bos_token=False,
                    chat_template=CHATML)
    return write_gguf(tmp_path / "bpe.gguf", model="gpt2", tokens=GPT2_TOKENS, **(metadata | keys))


def pieces(tokenizer, text: str, **kwargs) -> list[str]:
    return tokenizer.convert_ids_to_tokens(tokenizer(text, **kwargs).input_ids)


def added_tokens(tokenizer) -> dict[int, tuple[str, bool, bool]]:
    return {index: (token.content, token.special, token.normalized) for index, token in tokenizer.added_tokens_decoder.items()}


@pytest.mark.parametrize(("merges", "expected"), [(["b c", "a b"], ["a", "bc"]), (["a b", "b c"], ["ab", "c"])])
def test_byte_level_merges_apply_in_file_order(tmp_path, merges, expected):
    assert pieces(tokenizer_from_gguf(gpt2_gguf(tmp_path, merges=merges)), "abc") == expected


def test_byte_level_specials_template_and_no_bos(tmp_path):
    tokenizer = tokenizer_from_gguf(gpt2_gguf(tmp_path))
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == (
        "<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>")
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (2, 2)
    assert tokenizer.add_bos_token is False
    assert pieces(tokenizer, "a<|im_end|>bc a") == ["a", "<|im_end|>", "bc", "Ġa"]  # no bos, control kept whole
    assert tokenizer.decode(tokenizer("a<|im_end|> a").input_ids, skip_special_tokens=True) == "a a"
    assert tokenizer.apply_chat_template([{"role": "user", "content": "ab"}], tokenize=False) == (
        "<|im_start|>user\nab<|im_end|>\n")


@pytest.mark.parametrize(("pre", "expected"), [("smollm", ["1", "2"]), ("gpt-2", ["12"])])
def test_byte_level_pre_tokenizer_follows_tokenizer_ggml_pre(tmp_path, pre, expected):
    assert pieces(tokenizer_from_gguf(gpt2_gguf(tmp_path, tokenizer_pre=pre)), "12") == expected


def test_unknown_pre_tokenizer_is_refused(tmp_path):
    path = gpt2_gguf(tmp_path, tokenizer_pre="llama-bpe")
    with pytest.raises(ValueError, match=r"bpe\.gguf.*'llama-bpe'.*'smollm'"):
        tokenizer_from_gguf(path)


# --- SentencePiece BPE (tokenizer.ggml.model = llama) ---------------------------------------------

SPM_HEAD = [("<pad>", CONTROL), ("<eos>", CONTROL), ("<bos>", CONTROL), ("<unk>", CONTROL),
            ("<start_of_turn>", CONTROL), ("\n", USER_DEFINED), ("  ", USER_DEFINED)]  # "▁▁" as llama.cpp writes it
SPM_BYTES = [(f"<0x{byte:02X}>", BYTE) for byte in range(256)]


def spm_gguf(tmp_path: Path, normal: dict[str, float] | None = None, **keys) -> Path:
    """Gemma-like: control tokens, user-defined "\\n" and "▁▁", byte fallback, normal pieces with scores."""
    normal = normal or {"▁": -1, "a": -2, "b": -3, "c": -4, "ab": -5, "bc": -6, "▁a": -7}
    entries = SPM_HEAD + SPM_BYTES + [(piece, NORMAL) for piece in normal]
    scores = [-1000.0] * len(SPM_HEAD) + [0.0] * len(SPM_BYTES) + [float(score) for score in normal.values()]
    metadata = dict(token_types=[kind for _, kind in entries], token_scores=scores, bos_token_id=2, eos_token_id=1,
                    unk_token_id=3, pad_token_id=0, add_bos_token=True, add_eos_token=False, add_space_prefix=False)
    return write_gguf(tmp_path / "spm.gguf", model="llama", tokens=[token for token, _ in entries], **(metadata | keys))


@pytest.mark.parametrize(("scores", "expected"), [
    ({"ab": -5, "bc": -6}, ["ab", "c"]),
    ({"ab": -6, "bc": -5}, ["a", "bc"]),  # the later id wins on its score
])
def test_sentencepiece_merges_follow_scores(tmp_path, scores, expected):
    normal = {"a": -1, "b": -2, "c": -3} | scores
    assert pieces(tokenizer_from_gguf(spm_gguf(tmp_path, normal)), "abc", add_special_tokens=False) == expected


def test_sentencepiece_added_tokens_stay_whole(tmp_path):
    tokenizer = tokenizer_from_gguf(spm_gguf(tmp_path))
    assert pieces(tokenizer, "<start_of_turn>a\nb a") == ["<bos>", "<start_of_turn>", "a", "\n", "b", "▁a"]
    assert pieces(tokenizer, "a  b", add_special_tokens=False) == ["a", "▁▁", "b"]
    ids = tokenizer("<start_of_turn>a  b\n").input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a  b\n"  # control dropped, user-defined kept
    assert {token.content: token.special for token in tokenizer.added_tokens_decoder.values()} == {
        "<pad>": True, "<eos>": True, "<bos>": True, "<unk>": True, "<start_of_turn>": True, "\n": False, "▁▁": False}


def test_sentencepiece_byte_fallback_round_trips(tmp_path):
    tokenizer = tokenizer_from_gguf(spm_gguf(tmp_path))
    assert pieces(tokenizer, "aé", add_special_tokens=False) == ["a", "<0xC3>", "<0xA9>"]
    assert tokenizer.decode(tokenizer("aé b").input_ids, skip_special_tokens=True) == "aé b"


def test_bos_once_at_the_start_when_add_bos(tmp_path):
    tokenizer = tokenizer_from_gguf(spm_gguf(tmp_path))
    assert tokenizer.add_bos_token is True
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id) == (2, 1, 3, 0)
    ids = tokenizer("ab c").input_ids
    assert ids[0] == 2 and ids.count(2) == 1 and 1 not in ids
    assert 2 not in tokenizer("ab c", add_special_tokens=False).input_ids
    assert tokenizer(["a", "b"], ["c", "a"]).input_ids[0].count(2) == 2  # a pair gets one per sequence


@pytest.mark.parametrize("keys", [dict(add_bos_token=False), dict(add_bos_token=False, add_eos_token=True)])
def test_no_bos_unless_add_bos_eos_only_with_add_eos(tmp_path, keys):
    tokenizer = tokenizer_from_gguf(spm_gguf(tmp_path, **keys))
    vocab = tokenizer.get_vocab()
    eos = [1] if keys.get("add_eos_token") else []
    assert tokenizer("ab\nab").input_ids == [vocab["ab"], vocab["\n"], vocab["ab"]] + eos
    assert tokenizer.add_bos_token is False


def test_absent_add_bos_key_adds_no_bos(tmp_path):
    path = write_gguf(tmp_path / "bare.gguf", model="llama", tokens=["<unk>", "a", "b", "ab"],
                      token_scores=[0.0, -1.0, -2.0, -3.0], add_space_prefix=False)
    assert pieces(tokenizer_from_gguf(path), "ab") == ["ab"]


def test_dummy_prefix_when_add_space_prefix(tmp_path):
    tokenizer = tokenizer_from_gguf(spm_gguf(tmp_path, add_space_prefix=True, add_bos_token=False))
    assert pieces(tokenizer, "a b") == ["▁a", "▁", "b"]
    assert tokenizer.decode(tokenizer("a b").input_ids) == "a b"


@pytest.mark.parametrize("make", [spm_gguf, gpt2_gguf])
def test_save_pretrained_round_trip(tmp_path, make):
    tokenizer = tokenizer_from_gguf(make(tmp_path))
    tokenizer.save_pretrained(tmp_path / "saved")
    texts = ["abc", "<start_of_turn>a\n  b", "a<|im_end|>bc", "aé 12"]
    for loaded in (PreTrainedTokenizerFast.from_pretrained(tmp_path / "saved"), AutoTokenizer.from_pretrained(tmp_path / "saved")):
        assert [loaded(text).input_ids for text in texts] == [tokenizer(text).input_ids for text in texts]
        assert loaded.special_tokens_map == tokenizer.special_tokens_map
        assert added_tokens(loaded) == added_tokens(tokenizer)
        assert loaded.chat_template == tokenizer.chat_template
        assert loaded.decode(loaded(f"a{loaded.eos_token} b").input_ids, skip_special_tokens=True) == "a b"


# --- errors ---------------------------------------------------------------------------------------

def test_unsupported_model_names_file_value_and_choices(tmp_path):
    path = write_gguf(tmp_path / "wordpiece.gguf", model="bert", tokens=["[UNK]", "a"])
    with pytest.raises(ValueError, match=r"wordpiece\.gguf.*'bert'.*'gpt2'.*'llama'"):
        tokenizer_from_gguf(path)


def test_missing_scores_names_the_key(tmp_path):
    path = write_gguf(tmp_path / "noscores.gguf", model="llama", tokens=["<unk>", "a"])
    with pytest.raises(ValueError, match=r"noscores\.gguf.*tokenizer\.ggml\.scores"):
        tokenizer_from_gguf(path)


@pytest.mark.parametrize("keep", [0, 3, 20, 0.5, -1])
def test_truncated_or_foreign_file_names_the_file(tmp_path, keep):
    data = spm_gguf(tmp_path).read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=r"cut\.gguf is not a readable GGUF"):
        tokenizer_from_gguf(cut)


def test_text_file_is_not_gguf(tmp_path):
    path = tmp_path / "notes.gguf"
    path.write_text("not a model\n" * 10)
    with pytest.raises(ValueError, match=r"notes\.gguf is not a readable GGUF"):
        tokenizer_from_gguf(path)


# --- the real checkpoints -------------------------------------------------------------------------

SMOLLM2 = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "gemma3-270m/gemma-3-270m-q4_k_m.gguf"


def real_checkpoint(relative: str) -> Path:
    """A fetched checkpoint file under $SUMTUNE_CHECKPOINTS (default ~/.cache/sumtune/checkpoints)."""
    return Path(os.environ.get("SUMTUNE_CHECKPOINTS", "~/.cache/sumtune/checkpoints")).expanduser() / relative


def real_tokenizer(relative: str) -> PreTrainedTokenizerFast:
    path = real_checkpoint(relative)
    if not path.is_file():
        pytest.skip(f"{path} is absent (sumtune fetch puts it there; SUMTUNE_CHECKPOINTS moves the root)")
    return tokenizer_from_gguf(path)


@pytest.fixture(scope="module")
def gemma():
    return real_tokenizer(GEMMA3)


@pytest.fixture(scope="module")
def smollm():
    return real_tokenizer(SMOLLM2)


KOREAN = "#Person1#: 내일 회의 몇 시예요?\n#Person2#: 오전 열 시요. 😀"


@pytest.mark.realweights
def test_gemma3_published_encodings(gemma):
    assert pieces(gemma, "Hello world") == ["<bos>", "Hello", "▁world"]
    assert gemma("<start_of_turn>user\n", add_special_tokens=False).input_ids == [105, 2364, 107]
    assert gemma.convert_tokens_to_ids("<end_of_turn>") == 106
    assert pieces(gemma, "<end_of_turn>") == ["<bos>", "<end_of_turn>"]
    # SentencePiece's own pieces for Gemma 3's tokenizer.model (publicly reported): user-defined and
    # control tokens whole, merges by score, byte fallback for a character missing from the vocabulary
    assert pieces(gemma, "<start_of_turn>user\nWho are you?<end_of_turn>\n<start_of_turn>model", add_special_tokens=False) == [
        "<start_of_turn>", "user", "\n", "Who", "▁are", "▁you", "?", "<end_of_turn>", "\n", "<start_of_turn>", "model"]
    assert pieces(gemma, "<unused10> blahblahblah", add_special_tokens=False) == ["<unused10>", "▁blah", "blah", "blah"]
    assert pieces(gemma, "Heyllo", add_special_tokens=False) == ["Hey", "llo"]
    assert pieces(gemma, "🫩", add_special_tokens=False) == ["<0xF0>", "<0x9F>", "<0xAB>", "<0xA9>"]
    # user-defined runs of spaces (written with " " in the GGUF) and tabs are single pieces
    assert pieces(gemma, "a  b\tc", add_special_tokens=False) == ["a", "▁▁", "b", "\t", "c"]


@pytest.mark.realweights
def test_gemma3_specials_and_bos(gemma):
    assert (gemma.bos_token_id, gemma.eos_token_id, gemma.unk_token_id, gemma.pad_token_id) == (2, 1, 3, 0)
    assert gemma.add_bos_token is True and gemma.chat_template is None
    ids = gemma(KOREAN).input_ids
    assert ids[0] == 2 and ids.count(2) == 1
    assert gemma.decode(ids, skip_special_tokens=True) == KOREAN
    added = gemma.added_tokens_decoder.values()
    assert sum(token.special for token in added) == 6249 and sum(not token.special for token in added) == 165
    assert len(gemma) == 262144


@pytest.mark.realweights
def test_gemma3_round_trip(gemma, tmp_path):
    gemma.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in [KOREAN, "Hello world", "<start_of_turn>user\n  indented\tcode<end_of_turn>"]:
        assert loaded(text).input_ids == gemma(text).input_ids
    assert loaded("").input_ids == [2]  # the bos survives the reload (transformers 5 reads add_bos_token as False)


@pytest.mark.realweights
def test_smollm2_specials_and_chat_template(smollm):
    assert (smollm.eos_token, smollm.pad_token, smollm.eos_token_id, smollm.pad_token_id) == ("<|im_end|>",) * 2 + (2, 2)
    assert smollm.add_bos_token is False
    ids = smollm("<|im_start|>user\nHi<|im_end|>").input_ids
    assert (ids[0], ids[-1], len(ids)) == (1, 2, 5)  # no bos added; both markers single ids
    text = smollm.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert smollm.decode(smollm(KOREAN).input_ids) == KOREAN


@pytest.mark.realweights
def test_smollm2_encodes_as_transformers_gguf_conversion(smollm, tmp_path):
    path = real_checkpoint(SMOLLM2)
    theirs = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    texts = [KOREAN, "Hello world, this is a summary.", "def f(x):\n    return x ** 2  # 1234", "  spaces\t\ttabs\n\n",
             "<|im_start|>assistant\n요약: 두 사람이 회의 시간을 정한다.<|im_end|>"]
    assert [smollm(text).input_ids for text in texts] == [theirs(text).input_ids for text in texts]
    smollm.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert [loaded(text).input_ids for text in texts] == [smollm(text).input_ids for text in texts]
    assert (loaded.eos_token_id, loaded.pad_token_id, loaded.chat_template) == (2, 2, smollm.chat_template)
