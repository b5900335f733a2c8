"""Seed-compatible entry point (the package must be installed: pip install -e ".[dev,korean]").

    python code/trainer.py --config config/model_configs/tiny_bart.yaml
    python code/trainer.py --config config/model_configs/tiny_bart.yaml --set training.num_train_epochs=2
    python code/trainer.py --mode multi_model --models tiny_bart tiny_t5 tiny_gpt2 tiny_llama

``--models`` takes file stems of config/model_configs/. Equivalent to ``sumtune train`` / ``sumtune sweep``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sumtune.sweep import EXIT_BAD_INPUT, train_configs

MODEL_CONFIGS = Path(__file__).resolve().parents[1] / "config" / "model_configs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML config (single mode)")
    parser.add_argument("--mode", choices=["single", "multi_model"], default="single")
    parser.add_argument("--models", nargs="+", default=[], metavar="NAME", help="config stems in config/model_configs (multi_model mode)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", action="store_true", help="continue the latest unfinished run (single mode)")
    args = parser.parse_args()

    if args.mode == "single":
        if args.config is None:
            parser.error("--config is required in single mode")
        return train_configs([args.config], args.overrides, resume=args.resume)
    if not args.models:
        parser.error("--mode multi_model needs --models NAME [NAME ...]")
    paths = [MODEL_CONFIGS / f"{name}.yaml" for name in args.models]
    missing = [p.stem for p in paths if not p.is_file()]
    if missing:
        available = ", ".join(sorted(p.stem for p in MODEL_CONFIGS.glob("*.yaml")))
        print(f"unknown model config(s): {', '.join(missing)}. Available: {available}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return train_configs(paths, args.overrides, sweep=True)  # same as `sumtune sweep`, report included


if __name__ == "__main__":
    sys.exit(main())
