"""Full fine-tuning: every weight of the base model trains."""

from __future__ import annotations

from ..loading import BaseModel, load_base


def load(cfg, plan, texts, scratch_dir=None) -> BaseModel:
    # A fully trained model is saved whole, so its scratch initialisation need not be kept.
    return load_base(cfg, texts)
