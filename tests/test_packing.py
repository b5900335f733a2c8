"""Padding-free packing of causal training batches (training.packing, sumtune/packing.py): packed examples
never see each other, and a packed batch trains exactly as the padded batch of the same examples."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from sumtune import artifacts, backends, data
from sumtune.config import ConfigError
from sumtune.packing import PackingError, check_packed_attention, resolve_packing
from sumtune.train import build_hf_trainer, train
from test_training import tiny_config

CAUSAL_FAMILIES = ["llama", "qwen3", "gpt2", "kogpt2", "qwen2", "exaone"]


def tiny_setup(tmp_path, family, *overrides):
    """(cfg, plan, loaded, encoded training rows) for a tiny scratch model of ``family``, as ``train`` builds them."""
    cfg = tiny_config(tmp_path, family, "training.eval_strategy=no", *overrides)
    splits = data.read_splits(cfg)
    plan = backends.resolve(cfg, backends.probe_machine(cfg))
    torch.manual_seed(0)
    loaded = backends.load(plan, cfg, data.tokenizer_training_texts(splits))
    rows = data.encode_examples(splits.train, cfg, loaded.tokenizer, "train")
    return cfg, plan, loaded, rows


def trainer_for(cfg, plan, model, tokenizer, rows, tmp_path, packing):
    cfg = cfg.model_copy(deep=True)
    cfg.training.packing = packing
    run = artifacts.new_run(f"{cfg.name}-{packing}", tmp_path / "runs")
    return build_hf_trainer(cfg, plan, model, tokenizer, rows, None, run)


def per_example_losses(logits, labels, starts) -> list[float]:
    """Each example's mean next-token loss over its label tokens; ``starts``: where each example begins in the row."""
    losses = []
    for row, begin, end in starts:
        target = labels[row, begin + 1:end]
        kept = target != data.IGNORE_INDEX
        losses.append(torch.nn.functional.cross_entropy(logits[row, begin:end - 1][kept].float(), target[kept]).item())
    return losses


def spans(batch, lengths, packed) -> list[tuple[int, int, int]]:
    """(row, start, end) of each example: one after another in row 0 when packed, else one row each."""
    if not packed:
        return [(row, 0, n) for row, n in enumerate(lengths)]
    ends = torch.tensor(lengths).cumsum(0).tolist()
    return [(0, end - n, end) for n, end in zip(lengths, ends)]


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_each_packed_example_has_the_loss_it_has_alone_in_a_padded_batch(tmp_path, family):
    """Through the Trainer's own loss call: with the KV cache transformers 5 makes by default, the second and
    later examples of a packed row attend to the ones before them (losses off by ~0.1 on this model)."""
    cfg, plan, loaded, rows = tiny_setup(tmp_path, family)
    features = [rows[i] for i in range(5)]
    lengths = [len(row["input_ids"]) for row in features]
    assert len(set(lengths)) > 1  # padding is really needed in the unpacked batch
    results = {}
    for packing in (False, True):
        trainer = trainer_for(cfg, plan, loaded.model, loaded.tokenizer, rows, tmp_path, packing)
        batch = trainer._prepare_inputs(trainer.data_collator(features))
        assert ("position_ids" in batch and "attention_mask" not in batch and batch["input_ids"].shape == (1, sum(lengths))) == packing
        trainer.model.eval()  # no dropout (GPT-2's default 0.1)
        with torch.no_grad():
            labelled_loss = trainer.compute_loss(trainer.model, batch)  # training.labelled_logits_only, the default
            trainer.labelled_logits_only = False  # per-example losses need every position's logits: the model's own path
            loss, outputs = trainer.compute_loss(trainer.model, batch, return_outputs=True)
        assert labelled_loss.item() == pytest.approx(loss.item(), abs=1e-5)
        results[packing] = (loss.item(), per_example_losses(outputs.logits, batch["labels"], spans(batch, lengths, packing)))
    (padded_loss, padded), (packed_loss, packed) = results[False], results[True]
    assert packed == pytest.approx(padded, abs=1e-5)
    assert packed_loss == pytest.approx(padded_loss, abs=1e-5)  # the mean over every label token, either way


def test_a_packed_training_step_gives_the_gradients_of_the_padded_one(tmp_path):
    """Every weight trained (a fresh LoRA's A matrices would get zero gradients), gradients compared one by one."""
    cfg, plan, loaded, rows = tiny_setup(tmp_path, "llama", "qlora.use_qlora=false")
    features = [rows[i] for i in range(6)]
    grads, counts, losses = {}, {}, {}
    for packing in (False, True):
        trainer = trainer_for(cfg, plan, copy.deepcopy(loaded.model), loaded.tokenizer, rows, tmp_path, packing)
        batch = trainer.data_collator(features)
        counts[packing] = int(trainer._get_num_items_in_batch([batch], trainer.args.device))
        losses[packing] = trainer.training_step(trainer.model, batch, counts[packing]).item()
        grads[packing] = {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert counts[True] == counts[False] == sum(sum(label != -100 for label in row["labels"]) for row in features)
    assert losses[True] == pytest.approx(losses[False], abs=1e-5)
    assert grads[True].keys() == grads[False].keys() and grads[True]
    for name, grad in grads[False].items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(grads[True][name], grad, rtol=1e-4, atol=1e-7, msg=name)


def test_packed_batches_come_from_the_length_buckets_within_the_token_budget_each_example_once(tmp_path):
    budget = 600
    cfg, plan, loaded, rows = tiny_setup(tmp_path, "gpt2", f"training.max_tokens_per_batch={budget}")
    trainer = trainer_for(cfg, plan, loaded.model, loaded.tokenizer, rows, tmp_path, True)
    lengths = sorted(len(row["input_ids"]) for row in rows)
    seen, examples_per_batch = [], []
    for batch in trainer.get_train_dataloader():
        assert set(batch) == {"input_ids", "labels", "position_ids"} and batch["input_ids"].shape[0] == 1
        starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist() + [batch["input_ids"].shape[1]]
        seen += [end - start for start, end in zip(starts, starts[1:])]
        examples_per_batch.append(len(starts) - 1)
        assert batch["input_ids"].shape[1] <= budget or len(starts) == 2  # an over-budget example goes alone
    assert sorted(seen) == lengths  # every example exactly once, unpadded
    assert len(set(examples_per_batch)) > 1  # cut by the token budget, not by per_device_train_batch_size


def test_a_packed_run_trains_to_the_loss_and_token_count_of_an_unpacked_one(tmp_path):
    manifests = {}
    for packing in ("false", "true"):
        cfg = tiny_config(tmp_path / packing, "llama", f"training.packing={packing}", "training.max_steps=3",
                          "training.eval_strategy=no", "evaluation.max_examples=1")
        manifests[packing] = json.loads(train(cfg).run.run_json.read_text())
    packed, padded = manifests["true"], manifests["false"]
    assert packed["packing"] == {"requested": "true", "used": True, "reason": "training.packing: true"}
    assert padded["packing"]["used"] is False
    assert packed["train_loss"] == pytest.approx(padded["train_loss"], abs=1e-4)
    assert packed["train_tokens"] == padded["train_tokens"]  # every packed token is real; none counted twice or lost


def test_packed_examples_see_each_other_while_the_model_keeps_a_kv_cache_and_the_check_catches_it(tmp_path):
    """transformers 5 builds the packed mask only without a KV cache; a model as loaded has use_cache on. The
    HF Trainer turns it off when built; a forward that keeps its cache anyway (as remote code may) is refused
    before training."""
    cfg, plan, loaded, rows = tiny_setup(tmp_path, "llama")
    model = loaded.model
    assert model.config.use_cache
    with pytest.raises(PackingError, match=r"lets packed examples see each other.*Set training.packing: false"):
        check_packed_attention(model)
    assert model.training  # the check leaves the model in the mode it found it
    trainer = trainer_for(cfg, plan, model, loaded.tokenizer, rows, tmp_path, True)  # passes the check
    assert not model.config.use_cache and check_packed_attention(model) <= 1e-6
    forward = model.forward
    model.forward = lambda *args, **kwargs: forward(*args, **{**kwargs, "use_cache": True})
    with pytest.raises(PackingError, match="lets packed examples see each other"):
        trainer_for(cfg, plan, model, loaded.tokenizer, rows, tmp_path, True)
    assert trainer_for(cfg, plan, model, loaded.tokenizer, rows, tmp_path, False)  # not checked when not packing
    assert trainer


@pytest.mark.parametrize("family", ["bart", "t5"])
def test_packing_an_encoder_decoder_model_is_a_config_error_naming_the_fix(tmp_path, family):
    with pytest.raises(ConfigError, match=r"training.packing: packs decoder-only \(causal\) models only; "
                                          rf"'{family}' is an encoder-decoder.*Set training.packing: false or auto"):
        tiny_config(tmp_path, family, "training.packing=true")
    assert tiny_config(tmp_path, family, "training.packing=auto").training.packing == "auto"


def test_packing_accepts_true_false_and_auto_only(tmp_path):
    assert tiny_config(tmp_path, "gpt2").training.packing == "auto"
    assert tiny_config(tmp_path, "gpt2", "training.packing=yes").training.packing is True
    with pytest.raises(ConfigError, match="training.packing"):
        tiny_config(tmp_path, "gpt2", "training.packing=always")


def test_auto_packs_only_where_attention_runs_packed_examples_as_variable_length_sequences():
    assert resolve_packing("auto", "causal", "flash_attention_2").used
    for attention in ("sdpa", "eager", None):
        off = resolve_packing("auto", "causal", attention)
        assert not off.used and "dense block mask" in off.reason and "flash attention" in off.reason
    assert resolve_packing(True, "causal", "sdpa").used  # asked for: packed (and checked) even where slower
    assert not resolve_packing("auto", "seq2seq", "flash_attention_2").used
    assert resolve_packing(False, "causal", "flash_attention_2").facts() == {
        "requested": "false", "used": False, "reason": "training.packing: false"}
