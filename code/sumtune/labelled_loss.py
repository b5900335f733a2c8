"""The causal LM loss with the output layer run only where labels are.

A chat prompt leaves 12-15 % of a summarization example's positions with labels, and a real vocabulary is
large (SmolLM2 49,152; Qwen3 151,936; Gemma-3 262,144): the model's own forward turns every position into
a full row of logits (and the loss an fp32 copy and a log-softmax of them) before the prompt's positions
are thrown away. Here the decoder runs as usual, its last hidden states are kept only at the positions
whose next token is labelled, and the output layer and cross-entropy run on those rows, a chunk at a
time. Each chunk's logits are recomputed in the backward pass instead of being kept (activation
checkpointing of the chunk), so at most one chunk of logits exists at once.

The loss is the model's own: the mean over labelled positions, or their sum over ``num_items_in_batch``
when the Trainer counts the labels across gradient-accumulation steps (``tests/test_labelled_loss.py``
checks loss and gradients against the model's forward, tied and untied heads, padded and packed rows,
trainable added-token rows and logit soft-capping).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .data import IGNORE_INDEX

CHUNK_ROWS = 1024  # labelled positions per output-layer call: 1024 x 262,144 fp32 logits = 1 GiB at most


def labelled_positions_loss(model, inputs: dict, num_items_in_batch: Optional[torch.Tensor | int] = None,
                            chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """The causal LM loss of ``model`` (a transformers ...ForCausalLM, or a PEFT model around one) on
    ``inputs`` (with ``labels``), computing logits only for labelled positions."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(causal_lm, causal_lm.base_model_prefix)
    labels = inputs["labels"]
    hidden = decoder(**{key: value for key, value in inputs.items() if key != "labels"}).last_hidden_state
    targets = labels[:, 1:]
    labelled = targets != IGNORE_INDEX
    rows, wanted = hidden[:, :-1][labelled], targets[labelled]
    head = causal_lm.get_output_embeddings()  # PEFT's trainable-token wrapper when added rows train
    adjust = logit_adjustment(causal_lm.config)
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, rows.shape[0], chunk_rows):
        part = slice(start, start + chunk_rows)
        total = total + checkpoint(_chunk_loss, head, adjust, rows[part], wanted[part], use_reentrant=False)
    count = num_items_in_batch if num_items_in_batch is not None else max(int(labelled.sum()), 1)
    if torch.is_tensor(count):
        count = count.to(total.device)
    return total / count


def _chunk_loss(head, adjust, rows: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    logits = adjust(head(rows).float())
    return F.cross_entropy(logits, wanted, reduction="sum")


def logit_adjustment(config):
    """What a family does to its logits after the output layer, as its ...ForCausalLM forward does:
    Gemma-2's ``final_logit_softcapping`` (cap * tanh(logits / cap)), Cohere's ``logit_scale``
    (multiply), Granite's ``logits_scaling`` (divide); nothing for the others."""
    cap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None)
    divide = getattr(config, "logits_scaling", None)

    def adjust(logits: torch.Tensor) -> torch.Tensor:
        if scale is not None:
            logits = logits * scale
        if divide is not None:
            logits = logits / divide
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return adjust
