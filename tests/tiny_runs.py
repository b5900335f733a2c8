"""The shipped tiny_* configs as tests use them: data paths made absolute (no test depends on the working
directory) and, by default, a quick run (4 steps, no checkpoints, 3 dev examples, 12 new tokens)."""

from __future__ import annotations

from pathlib import Path

from sumtune.config import load_config

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
QUICK = ["training.max_steps=4", "training.eval_strategy=no", "training.save_strategy=no", "training.logging_steps=2",
         "evaluation.max_examples=3", "generation.max_new_tokens=12"]


def tiny(root: Path, family: str, *overrides: str, quick: bool = True):
    """``config/model_configs/tiny_{family}.yaml`` writing under ``root``, on the Korean sample data."""
    data = [f"data.{key}_file={SAMPLE / f'ko_{split}.csv'}" for key, split in (("train", "train"), ("eval", "dev"), ("test", "test"))]
    return load_config(REPO / "config" / "model_configs" / f"tiny_{family}.yaml",
                       [f"output.root={root}", *data, *(QUICK if quick else []), *overrides])
