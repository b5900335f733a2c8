"""Full fine-tuning: every weight of the base model trains."""

from __future__ import annotations

from ..loading import BaseModel, load_base


def load(cfg, plan, texts, scratch_dir=None) -> BaseModel:
    # A fully trained model is saved whole (checkpoints too), so a scratch run keeps its tokenizer, not its init.
    return load_base(cfg, texts, scratch_dir=scratch_dir, keep_initial_weights=False)
