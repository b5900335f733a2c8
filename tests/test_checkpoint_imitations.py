"""The offline imitations of the real checkpoints behave like the published tokenizers and configs.

Every expected number below is a published fact (sources in tests/fixtures/checkpoints/README.md),
written out here rather than read back from checkpoint_tokenizers, so that a wrong imitation fails.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
from transformers import AutoConfig, AutoTokenizer, GenerationConfig, PreTrainedTokenizerFast  # noqa: E402

import checkpoint_tokenizers as ct  # noqa: E402

SEQ2SEQ = ["bart-base", "kobart-base-v2", "t5-base", "flan-t5-base", "mt5-base"]
BYTE_LEVEL = ["bart-base", "llama-3.2-korean-bllossom-3b", "qwen3-4b-instruct-2507", "exaone-3.5-2.4b-instruct"]
METASPACE = ["kobart-base-v2", "kogpt2-base-v2", "t5-base", "flan-t5-base", "mt5-base"]
WORDPIECE = ["koelectra-small-v3-discriminator", "kcbert-base"]
WITH_CONFIG = [slug for slug in ct.CHECKPOINTS if slug != "exaone-3.5-2.4b-instruct"]

# slug -> len(tokenizer) of the published tokenizer
PUBLISHED_LEN = {
    "bart-base": 50265, "kobart-base-v2": 30000, "t5-base": 32100, "flan-t5-base": 32100, "mt5-base": 250100,
    "kogpt2-base-v2": 51200, "llama-3.2-korean-bllossom-3b": 128256, "qwen3-4b-instruct-2507": 151669,
    "exaone-3.5-2.4b-instruct": 102400, "koelectra-small-v3-discriminator": 35000, "kcbert-base": 30000,
}
# slug -> (vocab_size in config.json, tie_word_embeddings as published)
PUBLISHED_CONFIG = {
    "bart-base": (50265, True), "kobart-base-v2": (30000, True), "t5-base": (32128, True),
    "flan-t5-base": (32128, False), "mt5-base": (250112, False), "kogpt2-base-v2": (51200, True),
    "llama-3.2-korean-bllossom-3b": (128256, True), "qwen3-4b-instruct-2507": (151936, True),
    "koelectra-small-v3-discriminator": (35000, True), "kcbert-base": (30000, True),
}
# token -> id, as published
PUBLISHED_IDS = {
    "bart-base": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 50264},
    "kobart-base-v2": {"<s>": 0, "</s>": 1, "<usr>": 2, "<pad>": 3, "<sys>": 4, "<unk>": 5, "<mask>": 6},
    "t5-base": {"<pad>": 0, "</s>": 1, "<unk>": 2, "<extra_id_99>": 32000, "<extra_id_0>": 32099},
    "flan-t5-base": {"<pad>": 0, "</s>": 1, "<unk>": 2, "<extra_id_99>": 32000, "<extra_id_0>": 32099},
    "mt5-base": {"<pad>": 0, "</s>": 1, "<unk>": 2, "<extra_id_99>": 250000, "<extra_id_0>": 250099},
    "kogpt2-base-v2": {"<s>": 0, "</s>": 1, "<usr>": 2, "<pad>": 3, "<sys>": 4, "<unk>": 5, "<mask>": 6},
    "llama-3.2-korean-bllossom-3b": {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001,
                                     "<|start_header_id|>": 128006, "<|end_header_id|>": 128007,
                                     "<|eom_id|>": 128008, "<|eot_id|>": 128009,
                                     "<|reserved_special_token_247|>": 128255},
    "qwen3-4b-instruct-2507": {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
                               "<think>": 151667, "</think>": 151668},
    "exaone-3.5-2.4b-instruct": {"[PAD]": 0, "[BOS]": 1, "[|endofturn|]": 361},
    "koelectra-small-v3-discriminator": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4},
    "kcbert-base": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4},
}
# declared roles -> token (None: not declared)
PUBLISHED_DECLARED = {
    "bart-base": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
    "kobart-base-v2": {"bos_token": None, "eos_token": None, "pad_token": None, "unk_token": None},
    "t5-base": {"bos_token": None, "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
    "flan-t5-base": {"bos_token": None, "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
    "mt5-base": {"bos_token": None, "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
    "kogpt2-base-v2": {"bos_token": None, "eos_token": None, "pad_token": None, "unk_token": None},
    # eos: Bllossom's declaration is unverified; the imitation takes the harder case (see README)
    "llama-3.2-korean-bllossom-3b": {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                                     "pad_token": None},
    "qwen3-4b-instruct-2507": {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "exaone-3.5-2.4b-instruct": {"bos_token": "[BOS]", "eos_token": "[|endofturn|]", "pad_token": "[PAD]",
                                 "unk_token": "[UNK]"},
    **{slug: {"bos_token": None, "eos_token": None, "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
              "sep_token": "[SEP]", "mask_token": "[MASK]"} for slug in WORDPIECE},
}
# slug -> (model_max_length in tokenizer_config.json, max_position_embeddings in config.json), as published
PUBLISHED_MAX_LENGTH = {"koelectra-small-v3-discriminator": (512, 512), "kcbert-base": (300, 300)}
TEXT = "#Person1#: 내일 오후 3시에 예약했는데 시간을 바꿀 수 있을까요? Sure, no problem."
RARE_SYLLABLE = "뷁"  # absent from the sample data: byte-level tokenizers must split it into bytes


@pytest.fixture(scope="session")
def texts() -> list[str]:
    found = ct.sample_texts()
    assert len(found) >= 100, "the bundled sample data should give a few hundred training strings"
    return found


@pytest.fixture(scope="session")
def built(tmp_path_factory, texts):
    """slug -> directory of its built tokenizer, each built once per session (with its build time)."""
    cache: dict[str, Path] = {}
    seconds: dict[str, float] = {}

    def get(slug: str) -> Path:
        if slug not in cache:
            if slug == "kobart-base-v2" and not (ct.KOBART_TOKENIZER_DIR / "tokenizer.json").is_file():
                pytest.skip(f"the real KoBART tokenizer is not at {ct.KOBART_TOKENIZER_DIR}")
            start = time.perf_counter()
            cache[slug] = ct.build_tokenizer(slug, tmp_path_factory.mktemp(slug), texts)
            seconds[slug] = time.perf_counter() - start
        return cache[slug]

    get.seconds = seconds
    return get


# KoGPT2's hub repository (config.json of model_type gpt2, no tokenizer_config.json) makes AutoTokenizer
# guess GPT-2's byte-level tokenizer; its model card loads it as PreTrainedTokenizerFast, as sumtune does.
LOADER_CLASS = {"kogpt2-base-v2": PreTrainedTokenizerFast}


def published_loader(slug: str):
    return LOADER_CLASS.get(slug, AutoTokenizer)


@pytest.fixture(scope="session")
def load(built):
    cache = {}

    def get(slug: str):
        if slug not in cache:
            cache[slug] = published_loader(slug).from_pretrained(built(slug))
        return cache[slug]

    return get


# --- tables and fixture files -----------------------------------------------------------------------


def test_every_checkpoint_config_maps_to_a_slug(repo_root):
    yaml = pytest.importorskip("yaml")
    named = {}
    for path in sorted((repo_root / "config" / "model_configs").glob("*.yaml")):
        checkpoint = ((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("model") or {}).get("checkpoint")
        if checkpoint and not checkpoint.startswith("fetched:"):  # fetched ones are real, not imitated
            named[path.stem] = checkpoint
    assert named, "no config names a checkpoint"
    assert set(ct.CONFIG_CHECKPOINT) == set(named)
    for stem, checkpoint in named.items():
        assert ct.CHECKPOINTS[ct.CONFIG_CHECKPOINT[stem]] == checkpoint, stem


@pytest.mark.parametrize("slug", ct.CHECKPOINTS)
def test_fixture_dir_points_into_tests_fixtures(slug):
    assert ct.fixture_dir(slug) == Path(__file__).parent / "fixtures" / "checkpoints" / slug
    if slug in WITH_CONFIG:
        assert (ct.fixture_dir(slug) / "config.json").is_file()
    else:  # remote-code model: AutoConfig cannot read its config offline, so there is none
        assert not (ct.fixture_dir(slug) / "config.json").exists()


# --- configs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", WITH_CONFIG)
def test_config_loads_offline_with_published_facts(slug):
    vocab_size, tied = PUBLISHED_CONFIG[slug]
    raw = json.loads((ct.fixture_dir(slug) / "config.json").read_text(encoding="utf-8"))
    assert raw.get("tie_word_embeddings", True) is tied  # absent means the (tied) default of the class
    config = AutoConfig.from_pretrained(ct.fixture_dir(slug))
    assert config.vocab_size == vocab_size
    if slug in ("flan-t5-base", "mt5-base"):
        # transformers 5 forces T5Config/MT5Config.tie_word_embeddings to True whatever config.json says:
        # whether the output embedding is separate must be read from config.json (see README)
        assert config.tie_word_embeddings is True
    else:
        assert config.tie_word_embeddings is tied


@pytest.mark.parametrize("slug, expected", [
    ("bart-base", {"bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "decoder_start_token_id": 2,
                   "forced_eos_token_id": 2}),
    ("kobart-base-v2", {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 3, "decoder_start_token_id": 1,
                        "forced_eos_token_id": 1}),
    ("t5-base", {"eos_token_id": 1, "pad_token_id": 0, "decoder_start_token_id": 0}),
    ("flan-t5-base", {"eos_token_id": 1, "pad_token_id": 0, "decoder_start_token_id": 0}),
    ("mt5-base", {"eos_token_id": 1, "pad_token_id": 0, "decoder_start_token_id": 0}),
    ("kogpt2-base-v2", {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 3}),
    ("llama-3.2-korean-bllossom-3b", {"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}),
    ("qwen3-4b-instruct-2507", {"bos_token_id": 151643, "eos_token_id": 151645}),
    ("koelectra-small-v3-discriminator", {"pad_token_id": 0, "embedding_size": 128, "hidden_size": 256}),
    ("kcbert-base", {"pad_token_id": 0, "hidden_size": 768}),
])
def test_config_special_ids(slug, expected):
    config = AutoConfig.from_pretrained(ct.fixture_dir(slug))
    assert {key: getattr(config, key) for key in expected} == expected
    assert bool(getattr(config, "is_encoder_decoder", False)) is (slug in SEQ2SEQ)


@pytest.mark.parametrize("slug, eos, pad", [
    ("llama-3.2-korean-bllossom-3b", [128001, 128008, 128009], None),
    ("qwen3-4b-instruct-2507", [151645, 151643], 151643),
    ("flan-t5-base", 1, 0),
])
def test_generation_config_files(slug, eos, pad):
    generation = GenerationConfig.from_pretrained(ct.fixture_dir(slug))
    assert generation.eos_token_id == eos
    assert generation.pad_token_id == pad


def test_bart_generation_defaults_live_in_config_json():
    """bart-base ships its generation settings inside config.json; transformers 5 drops them from the model
    config, so a model built from the config alone would lose forced_bos_token_id=0."""
    directory = ct.fixture_dir("bart-base")
    assert not (directory / "generation_config.json").exists()
    assert GenerationConfig.from_model_config(AutoConfig.from_pretrained(directory)).forced_bos_token_id is None
    generation = GenerationConfig.from_pretrained(directory, config_file_name="config.json")
    assert (generation.forced_bos_token_id, generation.forced_eos_token_id) == (0, 2)
    assert (generation.num_beams, generation.no_repeat_ngram_size) == (4, 3)


def test_flan_t5_scratch_model_is_tied_unless_the_config_is_fixed():
    """A random model from flan-t5-base's config is tied in transformers 5 (the real one is not)."""
    torch = pytest.importorskip("torch")
    tiny = dict(d_model=16, d_ff=32, d_kv=4, num_heads=2, num_layers=1, num_decoder_layers=1)
    config = AutoConfig.from_pretrained(ct.fixture_dir("flan-t5-base"), **tiny)
    model = transformers.AutoModelForSeq2SeqLM.from_config(config)
    assert model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()
    config.tie_word_embeddings = False  # what config.json says
    torch.manual_seed(0)
    model = transformers.AutoModelForSeq2SeqLM.from_config(config)
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
    assert model.lm_head.weight.shape[0] == 32128


# --- tokenizers: ids, length, spare rows ------------------------------------------------------------


@pytest.mark.parametrize("slug", ct.CHECKPOINTS)
def test_len_and_special_ids(load, slug):
    tokenizer = load(slug)
    assert len(tokenizer) == PUBLISHED_LEN[slug]
    for token, token_id in PUBLISHED_IDS[slug].items():
        assert tokenizer.convert_tokens_to_ids(token) == token_id, token
        assert tokenizer.convert_ids_to_tokens(token_id) == token


@pytest.mark.parametrize("slug, spare", [
    ("bart-base", 0), ("kobart-base-v2", 0), ("t5-base", 28), ("flan-t5-base", 28), ("mt5-base", 12),
    ("kogpt2-base-v2", 0), ("llama-3.2-korean-bllossom-3b", 0), ("qwen3-4b-instruct-2507", 267),
    ("koelectra-small-v3-discriminator", 0), ("kcbert-base", 0),
])
def test_spare_embedding_rows(load, slug, spare):
    config = AutoConfig.from_pretrained(ct.fixture_dir(slug))
    assert config.vocab_size - len(load(slug)) == spare


@pytest.mark.parametrize("slug", ct.CHECKPOINTS)
def test_declared_special_tokens(load, slug):
    tokenizer = load(slug)
    for role, token in PUBLISHED_DECLARED[slug].items():
        assert getattr(tokenizer, role) == token, role


@pytest.mark.parametrize("slug", ["kogpt2-base-v2", "kobart-base-v2"])
def test_undeclared_specials_as_the_model_card_loads_them(built, slug):
    """Neither SKT tokenizer declares an eos or pad; the model cards name them at load time."""
    plain = published_loader(slug).from_pretrained(built(slug))
    assert (plain.eos_token, plain.pad_token, plain.bos_token) == (None, None, None)
    card = PreTrainedTokenizerFast.from_pretrained(built(slug), bos_token="</s>", eos_token="</s>",
                                                   unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    assert (card.bos_token_id, card.eos_token_id, card.pad_token_id, card.unk_token_id,
            card.mask_token_id) == (1, 1, 3, 5, 6)
    assert len(card) == len(plain)
    assert card("안녕하세요").input_ids[-1] != 1  # declaring </s> still appends nothing


def test_kogpt2_autotokenizer_beside_its_config_is_not_the_published_tokenizer(built, tmp_path):
    """The hub repo has config.json (model_type gpt2) and tokenizer.json but no tokenizer_config.json: in
    transformers 5 AutoTokenizer then rebuilds it as a byte-level GPT2Tokenizer with a new <|endoftext|>.
    Code that loads KoGPT2 must name the class (PreTrainedTokenizerFast), as the model card does."""
    directory = tmp_path / "kogpt2"
    shutil.copytree(built("kogpt2-base-v2"), directory)
    shutil.copy(ct.fixture_dir("kogpt2-base-v2") / "config.json", directory / "config.json")
    auto = AutoTokenizer.from_pretrained(directory)
    assert type(auto).__name__ == "GPT2Tokenizer"
    assert len(auto) == 51201 and auto.eos_token == "<|endoftext|>"
    named = PreTrainedTokenizerFast.from_pretrained(directory)
    assert len(named) == 51200 and named.tokenize("안녕하세요")[0].startswith("▁")
    assert auto.tokenize("안녕하세요") != named.tokenize("안녕하세요")


def test_kobart_autotokenizer_beside_its_config_keeps_the_published_tokenizer(built, tmp_path):
    """kobart-base-v2's config.json names tokenizer_class PreTrainedTokenizerFast, so AutoTokenizer is safe."""
    directory = tmp_path / "kobart"
    shutil.copytree(built("kobart-base-v2"), directory)
    shutil.copy(ct.fixture_dir("kobart-base-v2") / "config.json", directory / "config.json")
    auto = AutoTokenizer.from_pretrained(directory)
    assert len(auto) == 30000 and auto.eos_token is None
    assert auto("안녕하세요 반갑습니다").input_ids == [22465, 23935, 29343, 20225]


# --- tokenizers: what is appended ---------------------------------------------------------------------


@pytest.mark.parametrize("slug, first, last", [
    ("bart-base", 0, 2),                       # <s> ... </s>
    ("kobart-base-v2", None, None),            # post_processor null: nothing
    ("t5-base", None, 1),                      # ... </s>
    ("flan-t5-base", None, 1),
    ("mt5-base", None, 1),
    ("kogpt2-base-v2", None, None),            # nothing
    ("llama-3.2-korean-bllossom-3b", 128000, None),  # <|begin_of_text|> ..., no end token
    ("qwen3-4b-instruct-2507", None, None),    # nothing
    ("exaone-3.5-2.4b-instruct", None, None),
    ("koelectra-small-v3-discriminator", 2, 3),  # [CLS] ... [SEP]
    ("kcbert-base", 2, 3),
])
def test_what_encoding_appends(load, slug, first, last):
    tokenizer = load(slug)
    bare = tokenizer(TEXT, add_special_tokens=False).input_ids
    for encoded in (tokenizer(TEXT).input_ids, tokenizer(text_target=TEXT).input_ids):
        expected = ([first] if first is not None else []) + bare + ([last] if last is not None else [])
        assert encoded == expected


# --- tokenizers: pre-tokenization -----------------------------------------------------------------------


@pytest.mark.parametrize("slug", BYTE_LEVEL)
def test_byte_level_splits_a_hangul_syllable(load, slug):
    tokenizer = load(slug)
    ids = tokenizer(RARE_SYLLABLE, add_special_tokens=False).input_ids
    assert len(ids) >= 2
    assert tokenizer.decode(ids) == RARE_SYLLABLE
    assert "\ufffd" in tokenizer.decode(ids[:1])  # cutting inside the syllable leaves a replacement char


@pytest.mark.parametrize("slug", METASPACE)
def test_metaspace_marks_word_starts(load, slug):
    tokenizer = load(slug)
    pieces = tokenizer.tokenize("오늘 회의")
    assert pieces[0].startswith("▁")
    assert any(piece.startswith("▁") for piece in pieces[1:])
    assert "\ufffd" not in "".join(pieces)


# --- encoders: cased WordPiece ----------------------------------------------------------------------

CARD_TEXT = "[CLS] 한국어 ELECTRA를 공유합니다. [SEP]"  # KoELECTRA's model card tokenizes this example


@pytest.mark.parametrize("slug", WORDPIECE)
def test_wordpiece_class_and_layout_as_on_the_hub(built, load, slug, tmp_path):
    """Both hub repos ship vocab.txt and a tokenizer_config.json without a class beside config.json; AutoTokenizer
    takes the class from config.json's model_type (ElectraTokenizer is BertTokenizer in transformers 5)."""
    tokenizer = load(slug)
    assert type(tokenizer) is transformers.BertTokenizer and isinstance(tokenizer, transformers.ElectraTokenizer)
    files = sorted(path.name for path in built(slug).iterdir())
    assert files == ["config.json", "tokenizer_config.json", "vocab.txt"]
    assert json.loads((built(slug) / "tokenizer_config.json").read_text(encoding="utf-8")) == {
        "do_lower_case": False, "model_max_length": PUBLISHED_MAX_LENGTH[slug][0]}
    alone = tmp_path / "alone"  # the tokenizer files without the model's config.json name no class
    alone.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(built(slug) / name, alone / name)
    with pytest.raises(ValueError):
        AutoTokenizer.from_pretrained(alone)


@pytest.mark.parametrize("slug", WORDPIECE)
def test_wordpiece_keeps_case_and_hangul(load, slug):
    """Both are cased (do_lower_case false): upper case survives and Hangul syllables are never decomposed."""
    tokenizer = load(slug)
    pieces = tokenizer.tokenize(CARD_TEXT)
    assert pieces[0] == "[CLS]" and pieces[-2:] == [".", "[SEP]"]
    assert "".join(piece.removeprefix("##") for piece in pieces[1:-2]) == "한국어ELECTRA를공유합니다"
    assert any(piece.startswith("##") for piece in pieces)  # words go on in ##-continuations
    ids = tokenizer(CARD_TEXT, add_special_tokens=False).input_ids  # [CLS]/[SEP] written in the text are special
    assert (ids[0], ids[-1], len(ids)) == (2, 3, len(pieces))
    assert tokenizer("KT 고객님").input_ids != tokenizer("kt 고객님").input_ids
    assert tokenizer.unk_token_id not in tokenizer("오늘 회의 몇 시예요? 대.출 무_료 ㅇㅋ ㅋㅋ").input_ids


@pytest.mark.parametrize("slug", WORDPIECE)
def test_wordpiece_lower_casing_would_break_hangul(built, slug):
    """Why the published do_lower_case false matters: BertTokenizer's default (true) also strips accents, which
    decomposes Hangul syllables into jamo that the vocabulary does not hold, so Korean words become [UNK]."""
    default = transformers.BertTokenizer.from_pretrained(built(slug), do_lower_case=True)
    assert default.tokenize("안녕하세요 KT") == ["[UNK]", "k", "##t"]


@pytest.mark.parametrize("slug", WORDPIECE)
def test_wordpiece_max_length_is_the_models_positions(load, slug):
    """model_max_length equals max_position_embeddings: 512 for KoELECTRA, only 300 for KcBERT, so truncation
    at the tokenizer's limit always fits the model."""
    tokenizer = load(slug)
    model_max_length, positions = PUBLISHED_MAX_LENGTH[slug]
    assert AutoConfig.from_pretrained(ct.fixture_dir(slug)).max_position_embeddings == positions
    assert tokenizer.model_max_length == model_max_length == positions
    ids = tokenizer("오늘 회의 " * 400, truncation=True).input_ids
    assert len(ids) == positions and ids[0] == 2 and ids[-1] == 3


@pytest.mark.parametrize("slug", WORDPIECE)
def test_wordpiece_single_text_and_pair(load, slug):
    """A single text is [CLS] A [SEP] with token_type_ids 0; a pair is [CLS] A [SEP] B [SEP] with B's ids 1."""
    tokenizer = load(slug)
    single = tokenizer("내일 봐")
    assert set(single.token_type_ids) == {0} and set(single.attention_mask) == {1}
    pair = tokenizer("내일 봐", "응 알았어")
    n_a = len(single.input_ids)
    assert pair.input_ids[:n_a] == single.input_ids and pair.input_ids[-1] == 3
    assert pair.token_type_ids == [0] * n_a + [1] * (len(pair.input_ids) - n_a)


@pytest.mark.parametrize("slug", WORDPIECE)
def test_wordpiece_unknown_character_and_unreachable_entries(load, slug):
    """WordPiece gives a word with one unknown character a single [UNK]; filler and [unused*] entries (which
    pad the vocabulary to its published size) are never produced from text, as brackets are split off."""
    tokenizer = load(slug)
    pieces = tokenizer.tokenize("가나다\u0b95 오늘")  # a Tamil letter: in neither published vocabulary
    assert pieces[0] == "[UNK]" and "[UNK]" not in pieces[1:]
    last = len(tokenizer) - 1
    entry = tokenizer.convert_ids_to_tokens(last)
    assert entry.startswith("[") and entry.endswith("]") and len(entry) > 2
    assert last not in tokenizer(f"{entry} 오늘 {entry}", add_special_tokens=False).input_ids


@pytest.mark.parametrize("slug", ct.CHECKPOINTS)
def test_round_trip_and_save_pretrained(load, slug, tmp_path):
    tokenizer = load(slug)
    text = "#Person1#: 내일 회의 몇 시예요?"
    ids = tokenizer(text).input_ids
    decoded, expected = tokenizer.decode(ids, skip_special_tokens=True).strip(), text
    if slug in WORDPIECE:  # BERT's WordPiece decoding puts spaces around punctuation ("# Person1 # :")
        decoded, expected = decoded.replace(" ", ""), text.replace(" ", "")
    if slug not in ("t5-base", "flan-t5-base"):  # T5's vocabulary has no Hangul (<unk>)
        assert decoded == expected
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text).input_ids == ids and len(again) == len(tokenizer)
    assert (again.eos_token_id, again.pad_token_id) == (tokenizer.eos_token_id, tokenizer.pad_token_id)


def test_fillers_are_unreachable(load):
    tokenizer = load("qwen3-4b-instruct-2507")
    filler = tokenizer.convert_ids_to_tokens(151642)
    assert filler.startswith(ct.FILLER_MARK)
    assert 151642 not in tokenizer(filler + " " + TEXT, add_special_tokens=False).input_ids


# --- chat templates -----------------------------------------------------------------------------------

MESSAGES = [{"role": "system", "content": "요약 도우미입니다."},
            {"role": "user", "content": "다음 대화를 요약하세요."},
            {"role": "assistant", "content": "두 사람이 약속을 잡는다."}]


def _chat_ids(tokenizer, messages, **kwargs) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, **kwargs)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def test_llama_template_layout_and_turn_end(load):
    tokenizer = load("llama-3.2-korean-bllossom-3b")
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    assert "<|start_header_id|>user<|end_header_id|>\n\n다음 대화를 요약하세요.<|eot_id|>" in text
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n"
                         "두 사람이 약속을 잡는다.<|eot_id|>")
    prompt = tokenizer.apply_chat_template(MESSAGES[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n") and text.startswith(prompt)
    ids = _chat_ids(tokenizer, MESSAGES)
    assert ids[0] == 128000 and ids.count(128000) == 1  # one <|begin_of_text|>, from the template
    assert ids[-1] == 128009  # the assistant turn ends with <|eot_id|> ...
    assert tokenizer.eos_token_id != 128009  # ... which is not the declared eos (harder case)
    generation = GenerationConfig.from_pretrained(ct.fixture_dir("llama-3.2-korean-bllossom-3b"))
    assert 128009 in generation.eos_token_id  # generation must stop on it
    # a system turn is always rendered, even when the conversation has none
    assert "<|start_header_id|>system<|end_header_id|>" in tokenizer.apply_chat_template(MESSAGES[1:2], tokenize=False)


def test_qwen_template_layout_and_turn_end(load):
    tokenizer = load("qwen3-4b-instruct-2507")
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert text == ("<|im_start|>system\n요약 도우미입니다.<|im_end|>\n"
                    "<|im_start|>user\n다음 대화를 요약하세요.<|im_end|>\n"
                    "<|im_start|>assistant\n두 사람이 약속을 잡는다.<|im_end|>\n")
    prompt = tokenizer.apply_chat_template(MESSAGES[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and text.startswith(prompt)
    assert not tokenizer.apply_chat_template(MESSAGES[1:2], tokenize=False).startswith("<|im_start|>system")
    ids = _chat_ids(tokenizer, MESSAGES)
    assert ids[-2] == 151645 == tokenizer.eos_token_id  # <|im_end|>, then a newline token
    assert tokenizer.decode(ids[-1:]) == "\n"
    generation = GenerationConfig.from_pretrained(ct.fixture_dir("qwen3-4b-instruct-2507"))
    assert generation.eos_token_id == [151645, 151643]


def test_exaone_template_layout_and_turn_end(load):
    tokenizer = load("exaone-3.5-2.4b-instruct")
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert text == ("[|system|]요약 도우미입니다.[|endofturn|]\n[|user|]다음 대화를 요약하세요.\n"
                    "[|assistant|]두 사람이 약속을 잡는다.[|endofturn|]\n")
    without_system = tokenizer.apply_chat_template(MESSAGES[1:2], tokenize=False, add_generation_prompt=True)
    assert without_system == "[|system|][|endofturn|]\n[|user|]다음 대화를 요약하세요.\n[|assistant|]"
    ids = _chat_ids(tokenizer, MESSAGES)
    assert ids[-2] == 361 == tokenizer.eos_token_id
    assert tokenizer.decode(ids[-1:]) == "\n"


@pytest.mark.parametrize("slug", SEQ2SEQ + ["kogpt2-base-v2"] + WORDPIECE)
def test_no_chat_template_where_none_is_published(load, slug):
    assert not load(slug).chat_template


# --- cost -------------------------------------------------------------------------------------------


def test_builds_are_fast(built):
    for slug in ct.CHECKPOINTS:
        built(slug)
    slow = {slug: round(seconds, 2) for slug, seconds in built.seconds.items() if seconds > 10}
    assert not slow, f"building these imitations took too long: {slow}"
