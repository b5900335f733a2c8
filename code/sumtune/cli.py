"""The ``sumtune`` command. Only the standard library is imported here; each command imports what it
needs when it runs, so ``sumtune --help`` and ``sumtune validate`` return at once.

    sumtune validate config/model_configs/*.yaml
    sumtune train config/model_configs/tiny_bart.yaml --set training.num_train_epochs=2
    sumtune train config/model_configs/tiny_bart.yaml --resume
    sumtune score --predictions outputs/RUN/results/predictions.csv
    sumtune sweep config/model_configs/tiny_*.yaml --out reports/tiny
    sumtune predict models/tiny_bart_20250101-120000 --input data/sample/ko_test.csv --output submission.csv
    sumtune report models/tiny_bart_20250101-120000 outputs/tiny_t5_20250101-120130
    sumtune doctor config/model_configs/*.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .sweep import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK  # a stdlib-only module


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
    sweep.add_argument("--out", type=Path, help="report directory (default: reports/{timestamp})")
    sweep.add_argument("--no-report", action="store_true", help="do not write the comparison report at the end")
    sweep.add_argument("--runs-file", type=Path, metavar="FILE",
                       help="append each run's results directory to FILE, one a line (for `sumtune report` over several sweeps)")
    sweep.set_defaults(handler=run_sweep)

    predict = commands.add_parser("predict", help="summaries for a test file from a trained run, as a submission CSV")
    predict.add_argument("run", metavar="RUN_OR_CONFIG",
                         help="models/{name}_{timestamp} directory, a run id, or a config (path or stem of config/model_configs) or run name for its latest completed run")
    predict.add_argument("--input", type=Path, required=True, help="CSV or JSONL with the run's id and dialogue columns")
    predict.add_argument("--output", type=Path, required=True, help="CSV to write: {id column},summary in input order")
    predict.add_argument("--batch-size", type=int, help="examples per generate() call (default: the run's generation.batch_size)")
    predict.set_defaults(handler=run_predict)

    report = commands.add_parser("report", help="compare runs: Markdown, CSV and HTML tables and a ROUGE chart")
    report.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="models/{run_id} or outputs/{run_id} directories")
    report.add_argument("--out", type=Path, help="output directory (default: reports/{timestamp})")
    report.set_defaults(handler=run_report)

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

    doctor = commands.add_parser("doctor", help="this machine's GPU, libraries and unsloth status, and the backend each config would get here")
    doctor.add_argument("configs", type=Path, nargs="*", help="YAML files to resolve on this machine (optional)")
    _add_overrides(doctor)
    doctor.set_defaults(handler=run_doctor)
    return parser


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set training.learning_rate=1e-4 (repeatable)")


def run_validate(args) -> int:
    from .config import validate_files
    from .sweep import console_logging

    console_logging()  # data warnings (dropped rows, duplicate ids) and a non-UTF-8 encoding
    problems = validate_files(args.configs, args.overrides)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {len(args.configs)} file(s)", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{len(args.configs)} config(s) valid")
    return EXIT_OK


def run_train(args) -> int:
    from .sweep import train_configs

    return train_configs([args.config], args.overrides, resume=args.resume)


def run_sweep(args) -> int:
    from .sweep import train_configs

    return train_configs(args.configs, args.overrides, sweep=True, report=not args.no_report,
                         report_dir=args.out, runs_file=args.runs_file)


def run_predict(args) -> int:
    from .config import ConfigError
    from .predict import PredictError, predict

    from .sweep import console_logging

    console_logging()
    try:
        path = predict(args.run, args.input, args.output, batch_size=args.batch_size)
    except (PredictError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        from .loading import CheckpointNotFound

        if not isinstance(exc, CheckpointNotFound):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {path}")
    return EXIT_OK


def run_report(args) -> int:
    from .sweep import write_report

    return write_report(args.runs, args.out)


def run_score(args) -> int:
    from .metrics import format_table, score_files
    from .sweep import console_logging

    console_logging()  # warnings (many empty predictions, ignored references) go to stderr
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


def run_doctor(args) -> int:
    from .doctor import run_doctor as report

    return report(args.configs, args.overrides)


if __name__ == "__main__":
    sys.exit(main())
