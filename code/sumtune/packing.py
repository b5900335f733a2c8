"""Padding-free packing of causal training batches (``training.packing``).

A packed batch is one row: the batch's examples one after another, no padding, ``position_ids``
restarting at 0 for each example and no ``attention_mask`` (transformers' ``DataCollatorWithFlattening``,
built by ``data.data_collator``). transformers reads the example boundaries from the restarting position
ids and keeps each token's attention inside its own example: flash-attention kernels run the examples as
variable-length sequences; sdpa and eager attention (CPU) get a dense block-diagonal causal mask over the
whole row, so their attention costs (sum of lengths)² instead of the sum of each row's length² —
0.70× the speed of exact length bucketing on CPU (docs/benchmarks/causal_train_throughput.md). Labels
are the example's own (prompt -100); the first label of each example becomes -100, which a causal loss
never reads (it predicts token t+1 from token t), so the loss and its token count are those of the
padded batch.

transformers 5 builds the packed mask only when a forward has neither an attention mask nor a KV cache:
with ``use_cache`` on (the config default of most families) every example attends to the ones before it
in the row (measured: logits off by 0.1 on a tiny Llama). The HF Trainer sets ``model.config.use_cache``
to ``TrainingArguments.use_cache`` (False) when it is built; ``check_packed_attention`` then proves on the
loaded model, through the same forward training calls, that an example's logits do not depend on the
example packed before it — for any family, remote code or attention kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

# attention implementations that run a packed row as variable-length sequences (no dense mask)
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3", "kernels-community/flash-attn2",
                    "kernels-community/flash-attn3", "kernels-community/vllm-flash-attn3")

AUTO_OFF = ("attention '{attention}' gives a packed row a dense block mask over the whole row, whose attention "
            "costs (sum of lengths)² instead of each example's length²: packing trained at 0.70x the speed of exact "
            "length bucketing on CPU (docs/benchmarks/causal_train_throughput.md). Packing pays with flash "
            "attention, which runs the examples as variable-length sequences")


class PackingError(RuntimeError):
    """Packing was asked for on a model whose attention does not keep packed examples apart."""


@dataclass(frozen=True)
class Packing:
    """What ``training.packing`` resolved to for this run, and why (run.json's ``packing``)."""

    requested: str
    used: bool
    reason: str

    def facts(self) -> dict:
        return dict(requested=self.requested, used=self.used, reason=self.reason)


def resolve_packing(setting, kind: str, attention: str) -> Packing:
    """``setting``: training.packing (true, false or "auto"); ``kind``: the family's kind (config
    validation already refused true for seq2seq); ``attention``: the loaded model's
    ``config._attn_implementation``. auto packs causal models whose attention is variable-length."""
    requested = str(setting).lower()
    if kind != "causal":
        return Packing(requested, False, f"{kind} models are never packed")
    if setting != "auto":
        return Packing(requested, bool(setting), f"training.packing: {requested}")
    if attention in VARLEN_ATTENTION:
        return Packing(requested, True, f"attention '{attention}' runs packed examples as variable-length sequences")
    return Packing(requested, False, AUTO_OFF.format(attention=attention))


def check_packed_attention(model) -> float:
    """Prove on ``model`` that packed examples do not see each other, before any training step.

    Two packed rows share their second example and differ in the first: with attention kept inside
    each example, the second example's logits are the same in both rows (the masked keys weigh exactly
    0). Returns the largest difference seen; raises ``PackingError`` when it shows the second example
    attending to the first.
    """
    import torch

    vocab = model.config.vocab_size
    device = next(model.parameters()).device
    first, other_first, second = [[(start + i) % vocab for i in range(n)] for start, n in ((3, 6), (101, 6), (57, 5))]
    positions = torch.tensor([list(range(6)) + list(range(5))], device=device)
    was_training = model.training
    model.eval()  # no dropout: both rows must go through the same function
    try:
        with torch.no_grad():
            logits = [model(input_ids=torch.tensor([ids + second], device=device), position_ids=positions).logits[0, 6:].float()
                      for ids in (first, other_first)]
    finally:
        model.train(was_training)
    difference = (logits[0] - logits[1]).abs().max().item()
    scale = logits[0].abs().max().item()
    if not difference <= 1e-4 * scale + 1e-6:
        raise PackingError(
            f"training.packing: this model's attention lets packed examples see each other (an example's logits "
            f"changed by {difference:.3g}, at logit scale {scale:.3g}, when the example packed before it changed): "
            f"its attention implementation ('{model.config._attn_implementation}') or remote code ignores the "
            "restarting position ids. Set training.packing: false (exact length bucketing, the default, keeps "
            "padding low without packing)"
        )
    return difference
