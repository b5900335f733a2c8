"""Seed-compatible entry point (the package must be installed: pip install -e ".[dev,korean]").

    python code/trainer.py --mode single --models kobart
    python code/trainer.py --mode multi_model --models kobart llama-3.2-korean-3b qwen3-4b
    python code/trainer.py --mode single --models qwen3-4b --debug      # a smoke test: 2 steps, no checkpoints
    python code/trainer.py --config config/model_configs/tiny_bart.yaml --set training.num_train_epochs=2

``--models`` takes short names from config/model_aliases.yaml (kobart, llama-3.2-korean-3b, qwen3-4b,
exaone, mt5, t5, flan-t5, bart) or file stems of config/model_configs/ (tiny_bart, kogpt2, ...).
Single mode is ``sumtune train``; multi_model mode is ``sumtune sweep``, report included.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import yaml

from sumtune.sweep import DEBUG_HELP, EXIT_BAD_INPUT, train_configs

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
MODEL_CONFIGS = CONFIG_DIR / "model_configs"
MODEL_ALIASES = CONFIG_DIR / "model_aliases.yaml"


class UnknownModel(ValueError):
    """A --models name that is neither an alias nor a config stem; the message lists the known ones."""


def config_paths(names: list[str]) -> list[Path]:
    """The config file of each short name (MODEL_ALIASES) or config stem (MODEL_CONFIGS)."""
    aliases = yaml.safe_load(MODEL_ALIASES.read_text(encoding="utf-8"))
    stems = sorted(path.stem for path in MODEL_CONFIGS.glob("*.yaml"))
    unknown = [name for name in names if name not in stems and name not in aliases]
    if unknown:
        raise UnknownModel(
            f"unknown model name(s): {', '.join(_did_you_mean(name, [*aliases, *stems]) for name in unknown)}. "
            f"Short names ({MODEL_ALIASES.name}): "
            f"{', '.join(f'{alias} ({stem})' for alias, stem in aliases.items())}. "
            f"Config stems ({MODEL_CONFIGS}): {', '.join(stems)}"
        )
    return [MODEL_CONFIGS / f"{name if name in stems else aliases[name]}.yaml" for name in names]


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"'{name}' (did you mean '{close[0]}'?)" if close else f"'{name}'"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML config (single mode; or --models NAME)")
    parser.add_argument("--mode", choices=["single", "multi_model"], default="single")
    parser.add_argument("--models", nargs="+", default=[], metavar="NAME",
                        help="short names (config/model_aliases.yaml) or config stems of config/model_configs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", action="store_true", help="continue the latest unfinished run (single mode)")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    args = parser.parse_args()

    named = ([args.config] if args.config else []) + args.models
    if args.mode == "single" and len(named) != 1:
        parser.error("single mode trains one model: give --config FILE or --models NAME "
                     "(several models: --mode multi_model --models NAME [NAME ...])")
    if args.mode == "multi_model" and (not args.models or args.config):
        parser.error("--mode multi_model takes --models NAME [NAME ...] (not --config)")
    try:
        paths = [args.config] if args.config else config_paths(args.models)
    except UnknownModel as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.mode == "single":
        return train_configs(paths, args.overrides, resume=args.resume, debug=args.debug)
    return train_configs(paths, args.overrides, sweep=True, debug=args.debug)  # same as `sumtune sweep`


if __name__ == "__main__":
    sys.exit(main())
