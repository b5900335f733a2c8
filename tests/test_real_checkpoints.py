"""Every shipped config on its own checkpoint's tokenizer: the preprocessing contract, training, and
generation that stops where training taught it to; for classification configs, [CLS] text [SEP] within
the model's positions, training and the run's labels.

A config that names a real checkpoint runs here as a tiny random model with that checkpoint's real
facts: the published config.json in tests/fixtures/checkpoints/ (vocabulary size, special ids,
decoder start, tied or untied output layer) and its tokenizer — the real one for KoBART
(../shared/fixtures), an imitation of the published behaviour for the others
(tests/checkpoint_tokenizers.py). EXAONE 3.5's remote-code model cannot be imitated offline: its
tokenizer and chat template are, on sumtune's native Exaone4 layout. tiny_* configs keep the
tokenizer sumtune trains for them.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

import sumtune
from checkpoint_tokenizers import CONFIG_CHECKPOINT, build_tokenizer, fixture_dir, sample_texts
from sumtune.checkpoints import FETCHED_PREFIX, cache_root, fetched_checkpoint
from sumtune.config import load_config
from sumtune.data import IGNORE_INDEX, build_prompt, encode_examples, encode_prompt, read_examples, tokenizer_training_texts, read_splits
from sumtune.generate import decoder_start_token_id, stop_token_ids
from sumtune.loading import load_tokenizer, add_special_tokens
from sumtune.train import train

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "config" / "model_configs"
SAMPLE = REPO / "data" / "sample"
TASKS = {path.stem: load_config(path, check_files=False).task for path in CONFIGS.glob("*.yaml")}
# configs that name a checkpoint `sumtune fetch` gets: their real tokenizer and config.json at the tiny preset,
# in the realweights lane (skipped, with the reason, until it is fetched)
FETCHED = {path.stem: cfg.model.checkpoint.removeprefix(FETCHED_PREFIX)
           for path in CONFIGS.glob("*.yaml")
           if (cfg := load_config(path, check_files=False)).model.checkpoint and cfg.model.checkpoint.startswith(FETCHED_PREFIX)}


def with_lanes(stems):
    return [pytest.param(stem, marks=pytest.mark.realweights) if stem in FETCHED else stem for stem in stems]


STEMS = with_lanes(sorted(stem for stem, task in TASKS.items() if task == "summarization"))
CLASSIFIER_STEMS = with_lanes(sorted(stem for stem, task in TASKS.items() if task == "classification"))


def checkpoint_key(stem: str):
    """What END_TOKEN and the published-vocabulary checks know the config's checkpoint by."""
    return CONFIG_CHECKPOINT.get(stem) or FETCHED.get(stem)


def fetched_shape(stem: str) -> list[str]:
    """Overrides that build a tiny random model from the fetched checkpoint's own config.json and tokenizer."""
    from sumtune.gguf_import import local_checkpoint

    if fetched_checkpoint(FETCHED[stem]) is None:
        pytest.skip(f"{FETCHED[stem]} is not fetched (sumtune fetch {FETCHED[stem]}; cache {cache_root()})")
    directory = local_checkpoint(f"{FETCHED_PREFIX}{FETCHED[stem]}")
    return ["model.init=scratch", "model.checkpoint=null", "model.size=tiny", f"model.tokenizer={directory}",
            f"model.config={directory}"]

# What each published tokenizer or chat template writes after a summary: the token a model learns to end on.
END_TOKEN = {
    "bart-base": "</s>", "kobart-base-v2": "</s>", "t5-base": "</s>", "flan-t5-base": "</s>", "mt5-base": "</s>",
    "kogpt2-base-v2": "</s>",  # its model card declares eos_token='</s>'
    "llama-3.2-korean-bllossom-3b": "<|eot_id|>",  # end of turn, although its declared EOS is <|end_of_text|>
    "qwen3-4b-instruct-2507": "<|im_end|>",
    "exaone-3.5-2.4b-instruct": "[|endofturn|]",
    "smollm2-135m-instruct": "<|im_end|>",  # ChatML, as its GGUF's template and metadata say
    "gemma3-270m": "<end_of_turn>",  # the registry's Gemma turn format (the base model ships no template)
    None: "</s>",  # sumtune's scratch tokenizer and chat template
}
SOURCE_LIMIT, TARGET_LIMIT = 160, 24  # small, so that the longest sample dialogues and summaries are cut
MAX_NEW_TOKENS = TARGET_LIMIT + 16  # more than the memorised summary can take
# learning rate, steps, schedule: measured to memorise one example. Seq2seq decays: at a constant 1e-2 Adam
# drove the KoBART-shape loss to 0.0015 by step 50, then back up to 0.3-1.7; at 3e-3 mT5 and T5 did not memorise
MEMORISE = {"seq2seq": (1e-2, 200, "linear"), "causal": (3e-3, 100, "constant")}


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """slug -> a directory with that checkpoint's tokenizer (built once per session)."""
    built: dict[str, Path] = {}
    texts = sample_texts()

    def get(slug: str) -> Path:
        if slug not in built:
            built[slug] = build_tokenizer(slug, tmp_path_factory.mktemp(slug), texts)
        return built[slug]

    return get


def real_shaped(stem: str, root: Path, tokenizer_dir, *overrides: str):
    """The shipped config ``stem``, with a tiny random model of its checkpoint's shape."""
    slug = CONFIG_CHECKPOINT.get(stem)
    shape = fetched_shape(stem) if stem in FETCHED else []
    if slug is not None:
        shape = ["model.init=scratch", "model.checkpoint=null", "model.size=tiny", "model.trust_remote_code=false",
                 f"model.tokenizer={tokenizer_dir(slug)}"]
        if (fixture_dir(slug) / "config.json").is_file():
            shape.append(f"model.config={fixture_dir(slug)}")
    shipped = load_config(CONFIGS / f"{stem}.yaml", check_files=False).data  # its own language's sample data
    data = [f"data.train_file={REPO / shipped.train_file}", f"data.eval_file={REPO / shipped.eval_file}",
            "data.test_file=null", "data.train_rows=null", "data.eval_rows=null",
            f"data.max_source_length={SOURCE_LIMIT}", f"data.max_target_length={TARGET_LIMIT}"]
    fast = ["training.save_strategy=no", "training.eval_strategy=no", "training.logging_steps=1",
            "training.early_stopping_patience=null", "training.gradient_checkpointing=false",
            "training.precision=fp32", "generation.precision=fp32"]  # as tiny.yaml: bf16 does not pay at the tiny preset
    return load_config(CONFIGS / f"{stem}.yaml", [f"output.root={root}", *data, *fast, *shape, *overrides])


def real_shaped_classifier(stem: str, root: Path, tokenizer_dir, *overrides: str):
    """The shipped classification config ``stem`` with a tiny random model of its checkpoint's shape, as
    ``real_shaped`` (its own sample data: a dev file, or the eval_split share of train)."""
    slug = CONFIG_CHECKPOINT.get(stem)
    shape = fetched_shape(stem) if stem in FETCHED else []
    if slug is not None:
        shape = ["model.init=scratch", "model.checkpoint=null", "model.size=tiny",
                 f"model.tokenizer={tokenizer_dir(slug)}", f"model.config={fixture_dir(slug)}"]
    shipped = load_config(CONFIGS / f"{stem}.yaml", check_files=False).data
    data = [f"data.train_file={REPO / shipped.train_file}"]
    if shipped.eval_file is not None:
        data.append(f"data.eval_file={REPO / shipped.eval_file}")
    fast = ["training.save_strategy=no", "training.eval_strategy=no", "training.logging_steps=1",
            "training.early_stopping_patience=null", "training.max_steps=3"]
    return load_config(CONFIGS / f"{stem}.yaml", [f"output.root={root}", *data, *fast, *shape, *overrides])


def loaded_tokenizer(cfg):
    """The tokenizer exactly as a run prepares it (special tokens declared, speaker tags added)."""
    texts = tokenizer_training_texts(read_splits(cfg))
    tokenizer = load_tokenizer(cfg, texts)
    add_special_tokens(tokenizer, cfg, texts)
    return tokenizer


@pytest.mark.parametrize("stem", STEMS)
def test_every_example_keeps_the_contract_on_the_checkpoints_tokenizer(stem, tmp_path, tokenizer_dir):
    cfg = real_shaped(stem, tmp_path, tokenizer_dir)
    tokenizer = loaded_tokenizer(cfg)
    end_id = tokenizer.convert_tokens_to_ids(END_TOKEN[checkpoint_key(stem)])
    examples = read_examples(cfg.data.train_file, cfg.data) + read_examples(cfg.data.eval_file, cfg.data)
    rows = encode_examples(examples, cfg, tokenizer, "all")
    assert len(rows) == len(examples)
    tail, n_tail = None, template_tail_length(cfg, tokenizer)  # what follows the dialogue is never cut
    cut_dialogues = cut_summaries = 0
    for example, row in zip(examples, rows):
        target = [t for t in row["labels"] if t != IGNORE_INDEX]
        prompt = row["input_ids"][: len(row["input_ids"]) - len(target)] if cfg.arch.kind == "causal" else row["input_ids"]
        assert len(prompt) <= SOURCE_LIMIT and len(target) <= TARGET_LIMIT, example.id
        assert target[-1] == end_id and target.count(end_id) == 1, (example.id, tokenizer.decode(target))
        if cfg.arch.kind == "causal":
            assert row["labels"][: len(prompt)] == [IGNORE_INDEX] * len(prompt)
        for ids in (row["input_ids"], target):
            assert "\ufffd" not in tokenizer.decode(ids, skip_special_tokens=False), example.id
        tail = tail or prompt[-n_tail:]
        assert prompt[-n_tail:] == tail, (example.id, tokenizer.decode(prompt[-n_tail - 3:]))
        full_dialogue = len(tokenizer(example.dialogue, add_special_tokens=False)["input_ids"])
        cut_dialogues += full_dialogue > SOURCE_LIMIT
        cut_summaries += tokenizer.decode(target, skip_special_tokens=True).strip() != example.summary.strip()
    assert cut_dialogues > 0 and cut_summaries > 0, "the limits must make this test cut some dialogues and summaries"


def template_tail_length(cfg, tokenizer) -> int:
    """How many prompt tokens follow the dialogue (TL;DR text, chat turn end and assistant header, EOS);
    one fewer when several, as the first may merge with the dialogue's last characters."""
    marker = "QQQ"
    prompt = build_prompt(marker, cfg.arch, cfg.preprocessing, tokenizer)
    after = prompt[prompt.index(marker) + len(marker):]
    n = len(tokenizer(after, add_special_tokens=False)["input_ids"]) if after else 0
    n += cfg.arch.kind == "seq2seq"  # the source's EOS
    return max(1, n - 1) if n > 1 else n


MEMORISED = {
    "ko": {"fname": "m1", "dialogue": "#Person1#: 내일 회의는 몇 시에 시작해요?\n#Person2#: 오전 열 시에 시작해요.",
           "summary": "#Person2#는 열 시라고 답한다."},
    "en": {"fname": "m1", "dialogue": "#Person1#: When does the meeting start tomorrow?\n#Person2#: At ten in the morning.",
           "summary": "#Person2# says it starts at ten."},
}


def memorised_set(path: Path, language: str = "ko") -> Path:
    """One short example, written here, with a summary that fits the target limit: its end is the real end."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(MEMORISED[language]))
        writer.writeheader()
        writer.writerow(MEMORISED[language])
    return path


class NoDropout(TrainerCallback):
    """Dropout off (the published configs have 0.1), so that a tiny model memorises in few steps."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0


def generated_ids(trained, dialogue: str, max_new_tokens: int) -> list[int]:
    """Greedy generation with sumtune's stop ids and decoder start; the new tokens only."""
    cfg, tokenizer, model = trained.config, trained.tokenizer, trained.model
    prompt = encode_prompt(dialogue, cfg, tokenizer)
    settings = dict(max_new_tokens=max_new_tokens, num_beams=1, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=stop_token_ids(model, tokenizer, cfg))
    if cfg.arch.kind == "seq2seq":
        settings["decoder_start_token_id"] = decoder_start_token_id(model)
    with torch.inference_mode():
        out = model.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             **settings)[0].tolist()
    return out[len(prompt):] if cfg.arch.kind == "causal" else out[1:]


@pytest.mark.parametrize("stem", STEMS)
def test_a_memorised_example_stops_on_the_taught_end_token(stem, tmp_path, tokenizer_dir):
    # LoRA as the config says, 3 steps: the real-shaped model trains, saves and generates
    lora = train(real_shaped(stem, tmp_path / "lora", tokenizer_dir, "training.max_steps=3",
                             "evaluation.max_examples=1", "generation.max_new_tokens=4")).run
    assert (lora.model_dir / "adapter_model.safetensors").is_file()

    # all weights on one short example until it is memorised
    shipped = load_config(CONFIGS / f"{stem}.yaml", check_files=False)
    english = shipped.data.train_file.name.startswith("en_") or "en_dialogsum" in shipped.data.train_file.parts
    memorise = memorised_set(tmp_path / "one.csv", "en" if english else "ko")
    kind = shipped.arch.kind
    learning_rate, steps, schedule = MEMORISE[kind]
    cfg = real_shaped(stem, tmp_path / "full", tokenizer_dir, "qlora.use_qlora=false", "qlora.load_in_4bit=false",
                      "backend=auto", f"data.train_file={memorise}", f"data.eval_file={memorise}",
                      f"training.max_steps={steps}", f"training.learning_rate={learning_rate}", "training.warmup_ratio=0",
                      f"training.lr_scheduler_type={schedule}", "generation.num_beams=1",
                      f"generation.max_new_tokens={MAX_NEW_TOKENS}")
    run = train(cfg, callbacks=[NoDropout()]).run
    trained = sumtune.load(run.model_dir)
    end_id = trained.tokenizer.convert_tokens_to_ids(END_TOKEN[checkpoint_key(stem)])
    taught = encode_examples(read_examples(memorise, cfg.data), cfg, trained.tokenizer, "memorised")
    for example, row in zip(read_examples(memorise, cfg.data), taught):
        target = [t for t in row["labels"] if t != IGNORE_INDEX]
        generated = generated_ids(trained, example.dialogue, MAX_NEW_TOKENS)
        assert generated == target, (trained.tokenizer.decode(generated), trained.tokenizer.decode(target))
        assert generated[-1] == end_id and len(generated) < MAX_NEW_TOKENS
    with (run.results_dir / "predictions.csv").open(encoding="utf-8") as handle:
        predictions = [row["prediction"] for row in csv.DictReader(handle)]
    assert all(p.strip() and "\ufffd" not in p for p in predictions), predictions


# --- one fact at a time ----------------------------------------------------------------------------


class OutputRows(TrainerCallback):
    """The output layer's effective weight (base rows with PEFT's trained token rows put in) at the start
    and end of training."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = effective_output_weight(model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = effective_output_weight(model)


def effective_output_weight(model) -> torch.Tensor:
    layer = model.get_output_embeddings()
    wrapper = getattr(layer, "token_adapter", None)  # PEFT's TrainableTokensWrapper keeps the rows aside
    weight = layer.weight if wrapper is None else layer.token_adapter.get_merged_weights(layer.token_adapter.active_adapters)
    return weight.detach().clone()


def test_added_tags_train_on_the_output_side_of_an_untied_model_and_only_their_rows(tmp_path, tokenizer_dir):
    """Flan-T5 is untied and its 32,100-token tokenizer leaves 28 spare rows, where the tags land."""
    watcher = OutputRows()
    run = train(real_shaped("flan_t5_base", tmp_path, tokenizer_dir, "training.max_steps=4", "training.learning_rate=1e-2",
                            "evaluation.max_examples=1", "generation.max_new_tokens=4"), callbacks=[watcher]).run
    added = json.loads(run.run_json.read_text())["added_token_ids"]
    assert added and min(added) == 32100 and max(added) < 32128  # on the spare rows: no resize
    changed = (watcher.before != watcher.after).any(dim=1).nonzero().flatten().tolist()
    assert changed == added  # every tag row trained, no other row moved
    adapter = load_file(str(run.model_dir / "adapter_model.safetensors"))
    token_rows = {key: tensor.shape for key, tensor in adapter.items() if "trainable_tokens" in key}
    assert any(key.startswith("base_model.model.lm_head.") for key in token_rows), token_rows
    assert all(shape[0] == len(added) for shape in token_rows.values())
    assert max(tensor.shape[0] for tensor in adapter.values()) < 32100  # no copy of an embedding matrix


def test_the_loader_keeps_the_trained_output_rows_of_an_untied_model(tmp_path, tokenizer_dir):
    cfg = real_shaped("mt5_base", tmp_path, tokenizer_dir, "training.max_steps=2", "training.learning_rate=1e-2",
                      "evaluation.max_examples=2", "generation.max_new_tokens=6", "generation.num_beams=1")
    run = train(cfg).run
    trained = sumtune.load(run.model_dir)
    base = trained.model.get_base_model()
    assert base.lm_head.weight is not base.shared.weight  # still untied after the rebuild
    with (run.results_dir / "predictions.csv").open(encoding="utf-8") as handle:
        during_training = [row["prediction"] for row in csv.DictReader(handle)]
    dialogues = [e.dialogue for e in read_examples(cfg.data.eval_file, cfg.data)][:2]
    assert trained.summarize(dialogues) == during_training


def test_llama_generation_stops_on_every_end_id_the_checkpoint_and_template_use(tmp_path, tokenizer_dir):
    from sumtune.loading import load_base

    cfg = real_shaped("llama_3.2_korean_3b", tmp_path, tokenizer_dir)
    base = load_base(cfg, tokenizer_training_texts(read_splits(cfg)))
    assert base.tokenizer.eos_token == "<|end_of_text|>"  # the imitation's declared EOS is not the end of a turn
    assert set(stop_token_ids(base.model, base.tokenizer, cfg)) == {128001, 128008, 128009}


def test_a_tokenizer_without_eos_is_refused_before_any_model_with_the_fix(tmp_path, tokenizer_dir):
    """KoGPT2's published tokenizer declares no special tokens: the kogpt2 row declares them; another
    family's row does not, and the run stops naming the key that fixes it."""
    from sumtune.loading import load_tokenizer

    bare = tmp_path / "bare"  # tokenizer.json alone, so that no class is guessed from a config.json
    bare.mkdir()
    shutil.copy(tokenizer_dir("kogpt2-base-v2") / "tokenizer.json", bare / "tokenizer.json")
    as_gpt2 = real_shaped("kogpt2", tmp_path, tokenizer_dir, "model.architecture=gpt2", f"model.tokenizer={bare}")
    with pytest.raises(ValueError, match=r"declares no eos_token.*model\.special_tokens_map"):
        load_tokenizer(as_gpt2, [])
    fixed = real_shaped("kogpt2", tmp_path, tokenizer_dir, "model.architecture=gpt2", f"model.tokenizer={bare}",
                        "model.special_tokens_map={eos_token: '</s>', pad_token: '<pad>'}")
    tokenizer = load_tokenizer(fixed, [])
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 3)
    kogpt2 = load_tokenizer(real_shaped("kogpt2", tmp_path, tokenizer_dir), [])
    assert (kogpt2.bos_token, kogpt2.eos_token_id, kogpt2.pad_token_id) == ("</s>", 1, 3)  # as its model card says


def test_tiny_kobart_with_the_real_tokenizer_stops_and_predict_reproduces_it(tmp_path):
    """The acceptance run from the command line: train on a memorised set, then `sumtune predict`.
    (At a constant 1e-2, dropout on, the loss of some seeds jumps from 0.001 back to 0.1 near the end.)"""
    import subprocess
    import sys

    data = memorised_set(tmp_path / "one.csv")
    train_done = subprocess.run(
        [sys.executable, "-m", "sumtune.cli", "train", "config/model_configs/tiny_kobart.yaml",
         "--set", f"output.root={tmp_path}", "--set", f"data.train_file={data}", "--set", f"data.eval_file={data}",
         "--set", "qlora.use_qlora=false", "--set", "training.max_steps=80", "--set", "training.learning_rate=5e-3",
         "--set", "training.lr_scheduler_type=constant", "--set", "training.save_strategy=no",
         "--set", "training.eval_strategy=no", "--set", "generation.max_new_tokens=40"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert train_done.returncode == 0, train_done.stderr[-3000:]
    [run_dir] = (tmp_path / "models").iterdir()
    [results] = (tmp_path / "outputs").iterdir()
    with (results / "results" / "predictions.csv").open(encoding="utf-8") as handle:
        [row] = list(csv.DictReader(handle))
    tokenizer = sumtune.load(run_dir).tokenizer
    assert len(tokenizer(row["prediction"], add_special_tokens=False)["input_ids"]) < 40  # stopped, not cut
    assert row["prediction"].replace(" ", "") == MEMORISED["ko"]["summary"].replace(" ", "")  # KoBART decodes a space after a tag
    predict_done = subprocess.run(
        [sys.executable, "-m", "sumtune.cli", "predict", str(run_dir), "--input", str(data),
         "--output", str(tmp_path / "submission.csv")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert predict_done.returncode == 0, predict_done.stderr[-3000:]
    with (tmp_path / "submission.csv").open(encoding="utf-8") as handle:
        assert [r["summary"] for r in csv.DictReader(handle)] == [row["prediction"]]


# --- classification configs ---------------------------------------------------------------------------


@pytest.mark.parametrize("stem", CLASSIFIER_STEMS)
def test_every_classification_config_trains_on_its_checkpoints_shape(stem, tmp_path, tokenizer_dir):
    """LoRA as the config says, 3 steps, on the checkpoint's published config and tokenizer: the model has a
    row per token of the tokenizer, every text is [CLS] ... [SEP] with no Korean word lost to [UNK], and the
    run's metrics name its labels."""
    from sumtune.classify import encode_texts

    run = train(real_shaped_classifier(stem, tmp_path, tokenizer_dir)).run
    trained = sumtune.load(run.model_dir)
    base = trained.model.get_base_model()
    embedding_rows = base.get_input_embeddings().weight.shape[0]
    if CONFIG_CHECKPOINT.get(stem):  # the published vocabulary: one row per token, no resize
        published = json.loads((fixture_dir(CONFIG_CHECKPOINT[stem]) / "config.json").read_text())["vocab_size"]
        assert embedding_rows == len(trained.tokenizer) == published
    assert embedding_rows >= len(trained.tokenizer)
    assert base.config.id2label == {i: str(label) for i, label in enumerate(trained.config.data.labels)}
    splits = read_splits(trained.config)
    rows = encode_texts(splits.train + splits.eval, trained.config, trained.tokenizer, base, "all")
    cls, sep = trained.tokenizer.cls_token_id, trained.tokenizer.sep_token_id
    assert all(row["input_ids"][0] == cls and row["input_ids"][-1] == sep for row in rows)
    if CONFIG_CHECKPOINT.get(stem):  # the published vocabularies hold every common syllable
        words = {word for example in splits.train + splits.eval for word in re.findall(r"[가-힣A-Za-z0-9]+", example.text)}
        assert not [word for word in words if trained.tokenizer.unk_token in trained.tokenizer.tokenize(word)]
    metrics = json.loads((run.results_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["labels"] == [str(label) for label in trained.config.data.labels]


def test_kcbert_texts_are_cut_at_its_300_positions(tmp_path, tokenizer_dir):
    """KcBERT has 300 positions: max_source_length 512 must cut a long text at 300 tokens, not index past
    the position table."""
    from sumtune.classify import encode_texts

    long_text = "오늘 회의 자료 확인 부탁드립니다 " * 120
    data = tmp_path / "long.csv"
    with data.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"])
        writer.writerows([(f"r{i}", long_text if i % 3 == 0 else "짧은 리뷰 좋아요", i % 2) for i in range(12)])
    cfg = real_shaped_classifier("kcbert_base_sentiment", tmp_path, tokenizer_dir, f"data.train_file={data}",
                                 "data.max_source_length=512", "data.eval_split=0.5")
    run = train(cfg).run
    trained = sumtune.load(run.model_dir)
    splits = read_splits(cfg)
    rows = encode_texts(splits.train + splits.eval, cfg, trained.tokenizer, trained.model.get_base_model(), "all")
    assert max(len(row["input_ids"]) for row in rows) == 300
    assert len(trained.classify([long_text])) == 1
