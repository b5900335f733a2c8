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
    sweep.add_argument("--out", type=Path, help="report directory (default: reports/{timestamp})")
    sweep.add_argument("--no-report", action="store_true", help="do not write the comparison report at the end")
    sweep.add_argument("--runs-file", type=Path, metavar="FILE",
                       help="append each run's results directory to FILE, one a line (for `sumtune report` over several sweeps)")
    sweep.set_defaults(handler=run_sweep)

    predict = commands.add_parser("predict", help="summaries for a test file from a trained run, as a submission CSV")
    predict.add_argument("run", metavar="RUN_OR_CONFIG",
                         help="models/{name}_{timestamp} directory, or a config (path or stem of config/model_configs) for its latest completed run")
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
    return train_configs(args.configs, args.overrides, sweep=True, report=not args.no_report,
                         report_dir=args.out, runs_file=args.runs_file)


def train_configs(paths: Sequence[Path], overrides: Sequence[str], resume: bool = False, sweep: bool = False,
                  report: bool = True, report_dir: Optional[Path] = None, runs_file: Optional[Path] = None) -> int:
    """Validate every config first, then train each in turn; returns non-zero if any failed.

    Without ``sweep`` an invalid config stops everything before any ML library loads (exit 2). A sweep
    records an invalid config as a failed run instead, trains the others, and ends with the report of
    all its runs (unless ``report`` is false); ``runs_file`` collects their results directories.
    """
    from .config import ConfigError, load_config

    configs, runs, failed = [], [], []
    for path in paths:
        try:
            configs.append(load_config(path, overrides))
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            if not sweep:
                return EXIT_BAD_INPUT
            runs.append(_record_invalid_config(path, overrides, exc))
            failed.append(runs[-1].name)
    _console_logging()
    if configs:
        from .train import train

    for cfg in configs:
        earlier = _run_ids(cfg)
        try:
            result = train(cfg, resume=resume)
        except KeyboardInterrupt:
            print("interrupted; continue with --resume", file=sys.stderr)
            return 130
        except Exception as exc:  # the run recorded the error and traceback in its run.json and log
            print(f"error: {cfg.name}: {exc}", file=sys.stderr)
            failed.append(cfg.name)
            runs.extend(_new_runs(cfg, earlier))
            continue
        runs.append(result.run)
        _print_run_summary(result)
    if runs_file is not None:
        with open(runs_file, "a", encoding="utf-8") as handle:
            handle.writelines(f"{run.results_dir}\n" for run in runs)
    if failed:
        print(f"{len(failed)} of {len(paths)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
    if sweep and report and runs:
        reported = _write_report([run.results_dir for run in runs], report_dir)
        if reported != EXIT_OK:
            return reported
    return EXIT_FAILED if failed else EXIT_OK


def _record_invalid_config(path: Path, overrides: Sequence[str], error: Exception):
    """A failed run for a config that did not validate, so that a sweep's report shows it."""
    import logging

    from .artifacts import new_run

    facts = _invalid_config_facts(path, overrides)
    root = facts.pop("root")
    run = new_run(facts["name"], root)
    run.attach_log()
    try:
        logging.getLogger("sumtune").error("config %s is invalid:\n%s", path, error)
        run.update(**facts, run_id=run.run_id, config_file=str(path), status="failed",
                   error=f"{type(error).__name__}: {error}", log=str(run.log_path), results_dir=str(run.results_dir))
    finally:
        run.detach_log()
    return run


def _invalid_config_facts(path: Path, overrides: Sequence[str]) -> dict:
    """Name, output root (and model, when the schema is valid) of a config that failed validation."""
    import re

    from .config import ConfigError, apply_overrides, load_config, read_yaml_with_bases

    try:  # only the data files are wrong
        cfg = load_config(path, overrides, check_files=False)
        return dict(name=cfg.name, root=cfg.output.root, architecture=cfg.model.architecture,
                    checkpoint=cfg.model.checkpoint or f"scratch:{cfg.model.size}")
    except ConfigError:
        pass
    try:
        raw = apply_overrides(read_yaml_with_bases(path), list(overrides))
    except ConfigError:
        raw = {}
    name = raw.get("name")
    output = raw.get("output")
    root = output.get("root") if isinstance(output, dict) else None
    if not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name)):
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).stem) or "config"
    return dict(name=name, root=Path(root) if isinstance(root, str) else Path("."))


def _run_ids(cfg) -> set[str]:
    from .artifacts import find_runs

    return {run.run_id for run in find_runs(cfg.name, cfg.output.root)}


def _new_runs(cfg, earlier: set[str]) -> list:
    """Runs of this config created since ``earlier`` was taken (the one a failed train() made)."""
    from .artifacts import find_runs

    return [run for run in find_runs(cfg.name, cfg.output.root) if run.run_id not in earlier]


def _write_report(run_dirs: Sequence[Path], out: Optional[Path]) -> int:
    from .report import ReportError, write_report

    try:
        directory = write_report(run_dirs, out)
    except ReportError as exc:
        print(f"error: report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"\nreport: {directory / 'comparison.md'} (also comparison.html, comparison.csv, rouge.png)")
    return EXIT_OK


def run_predict(args) -> int:
    from .config import ConfigError
    from .predict import PredictError, predict

    _console_logging()
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
    return _write_report(args.runs, args.out)


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


def run_doctor(args) -> int:
    from .doctor import run_doctor as report

    return report(args.configs, args.overrides)


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
