"""The ``sumtune`` command. Only the standard library is imported here; each command imports what it
needs when it runs, so ``sumtune --help`` and ``sumtune validate`` return at once.

    sumtune validate config/model_configs/*.yaml
    sumtune train config/model_configs/tiny_bart.yaml --set training.num_train_epochs=2
    sumtune train config/model_configs/tiny_bart.yaml --resume
    sumtune score --predictions outputs/RUN/results/predictions.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_BAD_INPUT
    return args.handler(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sumtune",
        description="Fine-tune seq2seq and causal LMs for dialogue summarization (Korean and English) from one YAML.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    train = commands.add_parser("train", help="train one config, evaluate on its dev split, save artifacts")
    train.add_argument("config", type=Path, help="YAML file, e.g. config/model_configs/tiny_bart.yaml")
    _add_overrides(train)
    train.add_argument("--resume", action="store_true", help="continue the latest unfinished run of this config's name from its last checkpoint")
    train.set_defaults(handler=run_train)

    sweep = commands.add_parser("sweep", help="train and evaluate several configs in turn; a failure does not stop the others")
    sweep.add_argument("configs", type=Path, nargs="+", help="YAML files")
    _add_overrides(sweep)
    sweep.set_defaults(handler=run_sweep)

    validate = commands.add_parser("validate", help="check configs (keys, types, data files, columns) without loading any model")
    validate.add_argument("configs", type=Path, nargs="+", help="YAML files")
    _add_overrides(validate)
    validate.set_defaults(handler=run_validate)

    score = commands.add_parser("score", help="ROUGE of a predictions file against references (Korean-aware)")
    score.add_argument("--predictions", type=Path, required=True, help="CSV or JSONL with predictions")
    score.add_argument("--references", type=Path, help="CSV or JSONL with references (default: the predictions file)")
    score.add_argument("--prediction-column", default="prediction", help="default: prediction (or summary)")
    score.add_argument("--reference-columns", nargs="+", help="default: reference, summary, or summary1..N")
    score.add_argument("--tokenizer", default="auto", choices=["auto", "kiwi", "mecab", "whitespace", "english"])
    score.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    score.set_defaults(handler=run_score)
    return parser


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set training.learning_rate=1e-4 (repeatable)")


def run_validate(args) -> int:
    from .config import validate_files

    problems = validate_files(args.configs, args.overrides)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {len(args.configs)} file(s)", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{len(args.configs)} config(s) valid")
    return EXIT_OK


def run_train(args) -> int:
    return train_configs([args.config], args.overrides, resume=args.resume)


def run_sweep(args) -> int:
    return train_configs(args.configs, args.overrides)


def train_configs(paths: Sequence[Path], overrides: Sequence[str], resume: bool = False) -> int:
    """Validate every config first, then train each in turn; returns non-zero if any failed."""
    from .config import ConfigError, load_config

    try:
        configs = [load_config(path, overrides) for path in paths]
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    _console_logging()
    from .train import train

    failed = []
    for cfg in configs:
        try:
            result = train(cfg, resume=resume)
        except KeyboardInterrupt:
            print("interrupted; continue with --resume", file=sys.stderr)
            return 130
        except Exception as exc:  # the run recorded the error and traceback in its run.json and log
            print(f"error: {cfg.name}: {exc}", file=sys.stderr)
            failed.append(cfg.name)
            continue
        _print_run_summary(result)
    if failed:
        print(f"{len(failed)} of {len(configs)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _print_run_summary(result) -> None:
    run = result.run
    print(f"\nrun {run.run_id} {result.status}")
    if result.metrics:
        m = result.metrics
        print(f"  ROUGE-1 {m['rouge1']:.4f}  ROUGE-2 {m['rouge2']:.4f}  ROUGE-L {m['rougeL']:.4f}  score {m['score']:.4f}")
    print(f"  model:       {run.model_dir}")
    print(f"  metrics:     {run.results_dir / 'metrics.json'}")
    print(f"  predictions: {run.results_dir / 'predictions.csv'}")
    print(f"  manifest:    {run.run_json}")
    print(f"  log:         {run.log_path}")


def run_score(args) -> int:
    from .metrics import format_table, score_files

    try:
        result = score_files(
            args.predictions,
            args.references,
            prediction_column=args.prediction_column,
            reference_columns=args.reference_columns,
            tokenizer=args.tokenizer,
        )
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        import json

        print(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        print(format_table(result))
    return EXIT_OK


def _console_logging() -> None:
    import logging

    logger = logging.getLogger("sumtune")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[sumtune] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


if __name__ == "__main__":
    sys.exit(main())
