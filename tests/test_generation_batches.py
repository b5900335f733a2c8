"""Generation batches: a token budget instead of a fixed example count (``generation.max_tokens_per_batch``),
the same summaries either way, and the KV cache on for every family, LoRA-wrapped or not."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from sumtune.backends import peft as peft_backend
from sumtune.config import GenerationConfig, load_config
from sumtune.generate import generate_summaries, generation_batches
from sumtune.loading import load_base
from sumtune.records import read_records
from tiny_runs import tiny as tiny_config

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


def budget_cost(batch: list[int], lengths: list[int], gen: GenerationConfig) -> int:
    return len(batch) * (max(lengths[i] for i in batch) + gen.max_new_tokens) * gen.num_beams


# --- the batches alone -----------------------------------------------------------------------------


@pytest.mark.parametrize("beams", [1, 3])
def test_a_token_budget_cuts_full_batches_longest_first_and_takes_every_example_once(beams):
    rng = random.Random(7)
    lengths = [rng.randint(5, 400) for _ in range(300)]
    gen = GenerationConfig(max_tokens_per_batch=6000, max_new_tokens=40, num_beams=beams)
    batches = generation_batches(lengths, gen)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))  # each exactly once
    assert all(budget_cost(batch, lengths, gen) <= gen.max_tokens_per_batch for batch in batches)
    # full: the next prompt would not have fitted, so the budget is used, not just respected
    assert all(budget_cost(batch + [nxt[0]], lengths, gen) > gen.max_tokens_per_batch
               for batch, nxt in zip(batches, batches[1:]))
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(lengths, reverse=True)  # longest first throughout
    sizes = [len(batch) for batch in batches]
    assert sizes[-1] > sizes[0]  # short prompts travel in bigger batches


def test_without_a_budget_batches_hold_batch_size_examples_and_equal_lengths_keep_input_order():
    lengths = [3, 9, 3, 9, 5, 3, 9]
    batches = generation_batches(lengths, GenerationConfig(batch_size=3))
    assert batches == [[1, 3, 6], [4, 0, 2], [5]]
    assert generation_batches([], GenerationConfig(max_tokens_per_batch=100)) == []


def test_a_prompt_over_the_budget_goes_alone_and_the_log_says_how_many(caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("sumtune"), "propagate", True)  # an earlier CLI test may have turned it off
    gen = GenerationConfig(max_tokens_per_batch=1000, max_new_tokens=100, num_beams=2)  # prompts up to 400 fit alone
    lengths = [50, 450, 60, 420, 40]
    with caplog.at_level(logging.WARNING, logger="sumtune"):
        batches = generation_batches(lengths, gen)
    assert batches[:2] == [[1], [3]]
    assert sorted(i for batch in batches for i in batch) == list(range(5))
    assert "2 prompt(s) need more than generation.max_tokens_per_batch (1000" in caplog.text


@pytest.mark.parametrize("value", [0, -5])
def test_a_budget_that_is_not_positive_is_refused_by_the_config(value, tmp_path):
    with pytest.raises(Exception, match="max_tokens_per_batch"):
        load_config(REPO / "config" / "model_configs" / "tiny_bart.yaml",
                    [f"output.root={tmp_path}", f"generation.max_tokens_per_batch={value}"])


# --- on a model ------------------------------------------------------------------------------------


def tiny(root: Path, family: str, *overrides: str):
    return tiny_config(root, family, *overrides, quick=False)


def sample_texts() -> list[str]:
    return [r[key] for r in read_records(SAMPLE / "ko_train.csv") for key in ("dialogue", "summary")]


def dialogues(n: int) -> list[str]:
    texts = [r["dialogue"] for r in read_records(SAMPLE / "ko_dev.csv") + read_records(SAMPLE / "ko_test.csv")]
    rng = random.Random(3)
    return [rng.choice(texts)[: rng.randint(20, 400)] for _ in range(n)]  # lengths all over the place


def random_model(tmp_path: Path, family: str, *overrides: str):
    """A scratch model with large random weights (its output depends on its input), greedy decoding."""
    cfg = tiny(tmp_path, family, "generation.num_beams=1", "generation.no_repeat_ngram_size=0",
               "generation.max_new_tokens=8", "generation.batch_size=4", *overrides)
    torch.manual_seed(0)
    base = load_base(cfg, sample_texts())
    with torch.no_grad():
        for parameter in base.model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    return base.model, base.tokenizer, cfg


def batch_shapes_seen(model) -> list[tuple[int, int]]:
    """(rows, padded prompt length) of every generate() call on ``model`` from now on (the list fills as it runs)."""
    seen: list[tuple[int, int]] = []
    original = model.generate

    def generate(*args, **kwargs):
        seen.append(tuple(kwargs["input_ids"].shape))
        return original(*args, **kwargs)

    model.generate = generate
    return seen


@pytest.mark.parametrize("family", ["bart", "llama"])
def test_budget_batches_give_the_same_greedy_summaries_as_fixed_batches_in_input_order(tmp_path, family):
    model, tokenizer, cfg = random_model(tmp_path, family)
    texts = dialogues(20)
    seen = batch_shapes_seen(model)
    fixed = generate_summaries(model, tokenizer, texts, cfg, progress=False)
    assert [rows for rows, _ in seen] == [4] * 5
    assert len(set(fixed)) > 3, "outputs must differ between inputs for this test to mean anything"

    budget = 1200
    cfg = cfg.model_copy(update={"generation": cfg.generation.model_copy(update={"max_tokens_per_batch": budget})})
    seen.clear()
    assert generate_summaries(model, tokenizer, texts, cfg, progress=False) == fixed
    rows = [rows for rows, _ in seen]
    assert sum(rows) == len(texts) and len(set(rows)) > 1 and max(rows) > 4  # the budget really batched differently
    assert all(rows * (length + 8) <= budget for rows, length in seen if rows > 1)  # 8 new tokens, 1 beam


@pytest.mark.parametrize("overrides, budget", [
    ((), 32768),  # the default: a token budget
    (("generation.batch_size=8",), None),  # asking for a batch size gets fixed batches
    (("generation.batch_size=8", "generation.max_tokens_per_batch=4000"), 4000),  # both named: the budget
    (("generation.max_tokens_per_batch=null",), None),
])
def test_a_config_that_names_a_batch_size_gets_fixed_batches_and_one_that_does_not_the_budget(tmp_path, overrides, budget):
    cfg = tiny(tmp_path, "bart", *overrides)
    assert cfg.generation.max_tokens_per_batch == budget
    again = type(cfg).model_validate(yaml.safe_load(cfg.to_yaml()))  # as a run's config.yaml reloads
    assert again.generation.max_tokens_per_batch == budget


def test_the_shipped_configs_that_set_a_batch_size_keep_fixed_batches(tmp_path):
    for name in ("llama_3.2_korean_3b", "qwen3_4b", "exaone_3.5_2.4b"):
        cfg = load_config(REPO / "config" / "model_configs" / f"{name}.yaml", [f"output.root={tmp_path}"])
        assert (cfg.generation.batch_size, cfg.generation.max_tokens_per_batch) == (8, None), name


def test_summarize_with_a_batch_size_uses_fixed_batches_whatever_budget_the_run_has(tmp_path, monkeypatch):
    """``sumtune predict --batch-size N`` and ``TrainedModel.summarize(batch_size=N)``: N per generate() call."""
    import sumtune.generate
    from sumtune.trained import TrainedModel

    seen = []
    monkeypatch.setattr(sumtune.generate, "generate_summaries",
                        lambda model, tokenizer, texts, cfg, progress=False: seen.append(cfg.generation) or ["s"] * len(texts))
    trained = TrainedModel(model=None, tokenizer=None, config=tiny(tmp_path, "bart", "generation.max_tokens_per_batch=500"),
                           run=tmp_path)
    trained.summarize(["x"], batch_size=3)
    trained.summarize(["x"])
    trained.summarize(["x"], batch_size=3, max_tokens_per_batch=700)
    assert [(g.batch_size, g.max_tokens_per_batch) for g in seen] == [(3, None), (16, 500), (3, 700)]


# --- KV cache --------------------------------------------------------------------------------------

FAMILIES = [("bart", "bart"), ("kobart", "kobart"), ("t5", "t5"), ("t5", "mt5"), ("gpt2", "gpt2"), ("gpt2", "kogpt2"),
            ("llama", "llama"), ("llama", "qwen2"), ("llama", "qwen3")]


def decoder_tokens_per_call(model) -> list[int]:
    """New decoder positions fed to each forward call of the transformers model under ``model``."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    fed: list[int] = []

    def record(module, args, kwargs):
        ids = kwargs.get("decoder_input_ids") if inner.config.is_encoder_decoder else kwargs.get("input_ids")
        fed.append(ids.shape[1])

    inner.register_forward_pre_hook(record, with_kwargs=True)
    return fed


@pytest.mark.parametrize("lora", [False, True], ids=["plain", "lora"])
@pytest.mark.parametrize("config, family", FAMILIES, ids=[family for _, family in FAMILIES])
def test_generation_feeds_one_new_token_per_step_even_when_the_cache_is_switched_off_in_the_model(tmp_path, config, family, lora):
    """The KV cache is used for every family, wrapped in LoRA or not, even after training left
    ``model.config.use_cache`` False (the Trainer does) and a checkpoint's generation config says False."""
    cfg = tiny(tmp_path, config, f"model.architecture={family}", "generation.max_new_tokens=6",
               "generation.num_beams=2", "generation.no_repeat_ngram_size=0")
    loaded = peft_backend.load(cfg, SimpleNamespace(quantization=None), sample_texts()) if lora else load_base(cfg, sample_texts())
    model = loaded.model
    inner = model.get_base_model() if lora else model
    inner.config.use_cache = False
    inner.generation_config.use_cache = False
    fed = decoder_tokens_per_call(model)
    generate_summaries(model, loaded.tokenizer, dialogues(2), cfg, progress=False)
    assert len(fed) > 2
    assert fed[1:] == [1] * (len(fed) - 1), f"{family}: positions fed per step {fed} (recomputed without the cache)"


# --- beam search returns the best finished summary ------------------------------------------------

PAD, EOS, A, B, C = 0, 1, 3, 4, 5
# next-token log-probabilities by how many tokens were generated: the best summary is A B C, while an
# empty one (EOS first) and a cut one (A EOS) finish sooner with low scores. A tiny KoBART memorising one
# summary did this, and its 2-beam search returned the summary cut one token short
SCRIPT = [{A: 0.0, EOS: -9.0}, {B: 0.0, EOS: -9.0}, {C: 0.0, EOS: -9.0}, {EOS: 0.0}]


def scripted_lm(prompt_length: int):
    from transformers import GenerationMixin, GPT2Config, GPT2PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutputWithPast

    class Scripted(GPT2PreTrainedModel, GenerationMixin):
        def __init__(self, config):
            super().__init__(config)
            self.anchor = torch.nn.Parameter(torch.zeros(1))  # a device and a dtype for generate()

        def forward(self, input_ids=None, attention_mask=None, **kwargs):
            generated = attention_mask.shape[1] - prompt_length
            logits = torch.full((*input_ids.shape, self.config.vocab_size), -30.0)
            for token, value in SCRIPT[min(generated, len(SCRIPT) - 1)].items():
                logits[:, -1, token] = value
            return CausalLMOutputWithPast(logits=logits)

    return Scripted(GPT2Config(vocab_size=8, n_embd=8, n_layer=1, n_head=1, pad_token_id=PAD, eos_token_id=EOS)).eval()


def test_beam_search_with_sumtunes_settings_returns_the_best_summary_not_the_first_finished(tmp_path):
    from sumtune.generate import generation_settings

    cfg = tiny(tmp_path, "gpt2", "generation.num_beams=2", "generation.max_new_tokens=10")
    prompt = torch.tensor([[2, 6]])
    model = scripted_lm(prompt_length=prompt.shape[1])
    settings = generation_settings(model, SimpleNamespace(pad_token_id=PAD, eos_token_id=EOS), cfg)

    def summary(**change):
        return model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), **{**settings, **change})[0, 2:].tolist()

    assert summary() == [A, B, C, EOS]
    assert summary(early_stopping="never") == [A, B, C, EOS]
    # early_stopping=True stops once num_beams hypotheses have finished: the empty one and the cut one
    assert summary(early_stopping=True) == [A, EOS]
