"""``labelled_loss``: the causal loss from logits at labelled positions only equals the model's own loss,
in value and gradients, and the output layer sees only the labelled rows."""

from __future__ import annotations

import pytest
import torch
import transformers

from sumtune.data import IGNORE_INDEX
from sumtune.labelled_loss import labelled_positions_loss

VOCAB = 96


def tiny_llama(tied: bool = True):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    model = transformers.LlamaForCausalLM(config)
    if not tied:
        model.lm_head.weight.data.normal_(std=0.5)
    return model


def tiny_softcapped():
    torch.manual_seed(0)
    config = transformers.Gemma3TextConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=4, num_key_value_heads=1, head_dim=8,
                                           final_logit_softcapping=3.0, layer_types=["full_attention"] * 2)
    return transformers.Gemma3ForCausalLM(config)


def padded_batch():
    """Two rows, the second right-padded; a prompt (no labels) then a summary in each."""
    torch.manual_seed(1)
    ids = torch.randint(3, VOCAB, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    labels = ids.clone()
    labels[:, :7] = IGNORE_INDEX
    labels[1, 9:] = IGNORE_INDEX
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def packed_row():
    """Three examples in one row: positions restart at each, only each summary is labelled."""
    torch.manual_seed(2)
    ids = torch.randint(3, VOCAB, (1, 15))
    position_ids = torch.tensor([list(range(5)) + list(range(6)) + list(range(4))])
    labels = ids.clone()
    for prompt in (slice(0, 3), slice(5, 8), slice(11, 13)):
        labels[0, prompt] = IGNORE_INDEX
    return {"input_ids": ids, "position_ids": position_ids, "labels": labels}


def gradients(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def assert_same_loss_and_gradients(model, inputs, num_items=None):
    own_kwargs = {"num_items_in_batch": num_items} if num_items is not None else {}
    own = model(**inputs, **own_kwargs).loss
    own_grads = gradients(model, own)
    ours = labelled_positions_loss(model, inputs, num_items, chunk_rows=4)  # several chunks
    our_grads = gradients(model, ours)
    torch.testing.assert_close(ours, own, rtol=1e-5, atol=1e-5)
    assert own_grads.keys() == our_grads.keys() and own_grads
    for name in own_grads:
        torch.testing.assert_close(our_grads[name], own_grads[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("batch", [padded_batch, packed_row], ids=["padded", "packed"])
def test_loss_and_gradients_equal_the_models_own(tied, batch):
    assert_same_loss_and_gradients(tiny_llama(tied), batch())


def test_a_count_across_accumulation_steps_divides_the_sum_as_the_model_does():
    inputs = padded_batch()
    assert_same_loss_and_gradients(tiny_llama(), inputs, num_items=torch.tensor(40))


def test_logit_soft_capping_is_applied_as_the_family_does():
    assert_same_loss_and_gradients(tiny_softcapped(), padded_batch())


def test_lora_with_trainable_added_token_rows_gets_the_same_gradients():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(tied=False), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
        trainable_token_indices={"embed_tokens": [90, 91], "lm_head": [90, 91]}))
    inputs = padded_batch()
    inputs["input_ids"][:, 8] = 90  # an added token in every summary
    inputs["labels"][:, 8] = 90
    for parameter in model.parameters():  # a LoRA B of zeros gives zero gradients to its A: make them differ
        if parameter.requires_grad:
            parameter.data.normal_(std=0.1)
    assert_same_loss_and_gradients(model, inputs)


def test_the_output_layer_receives_only_the_labelled_rows():
    model = tiny_llama()
    inputs = padded_batch()
    seen = []
    hook = model.get_output_embeddings().register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    try:
        labelled_positions_loss(model, inputs, chunk_rows=4)
    finally:
        hook.remove()
    labelled = int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert labelled == 5 + 2 - 0  # row 0: positions 7..11 predicted from 6..10; row 1: 7, 8
    assert sum(shape[0] for shape in seen) == labelled and all(len(shape) == 2 and shape[0] <= 4 for shape in seen)


def test_under_sumtunes_trainer_the_decoder_runs_in_the_training_precision(tmp_path):
    """The accelerator puts autocast around the model's forward only; the decoder that the labelled loss
    calls from the inside must run in it too (in fp32 it took more memory than the full logits)."""
    from pathlib import Path

    from sumtune import artifacts, backends, data
    from sumtune.config import load_config
    from sumtune.train import build_hf_trainer

    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(repo / "config" / "model_configs" / "tiny_llama.yaml",
                      [f"output.root={tmp_path}", f"data.train_file={repo / 'data/sample/ko_train.csv'}",
                       "data.eval_file=null", "data.test_file=null", "training.precision=bf16", "training.max_steps=1",
                       "data.max_train_samples=4", "training.per_device_train_batch_size=4"])
    splits = data.read_splits(cfg)
    plan = backends.resolve(cfg, backends.probe_machine(cfg))
    loaded = backends.load(plan, cfg, data.tokenizer_training_texts(splits))
    train_set = data.encode_examples(splits.train, cfg, loaded.tokenizer, "train")
    run = artifacts.new_run(cfg.name, tmp_path)
    trainer = build_hf_trainer(cfg, plan, loaded.model, loaded.tokenizer, train_set, None, run)
    assert trainer.labelled_logits_only and run.manifest["labelled_logits_only"] is True
    dtypes = []
    layer = loaded.model.get_base_model().model.layers[0].mlp
    hook = layer.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.accelerator.prepare_model(trainer.model)
    try:
        trainer.compute_loss(model, batch)
    finally:
        hook.remove()
    assert dtypes == [torch.bfloat16]
