"""Training several configs in turn (``sumtune train``/``sweep``, ``python code/trainer.py``).

Every config is validated before any ML library loads. A sweep records an invalid or failing config
as a failed run and goes on with the others, then writes the comparison report of all its runs.
Only the standard library is imported at the top, so a sweep of invalid configs stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEBUG_HELP = ("smoke test: 2 steps on 16 examples, 2 dev examples, no checkpoints; the run is named {name}-debug, "
              "so predict, sumtune.load and --resume never take it for {name}'s newest run")


def train_configs(paths: Sequence[Path], overrides: Sequence[str], resume: bool = False, sweep: bool = False,
                  report: bool = True, report_dir: Optional[Path] = None, runs_file: Optional[Path] = None,
                  debug: bool = False) -> int:
    """Validate every config first, then train each in turn; returns non-zero if any failed.

    Without ``sweep`` an invalid config stops everything before any ML library loads (exit 2). A sweep
    records an invalid config as a failed run instead, trains the others, and ends with the report of
    all its runs (unless ``report`` is false); ``runs_file`` collects their results directories.
    ``debug`` makes each a smoke test (``config.DEBUG_OVERRIDES`` and those of its task, before ``overrides``).
    """
    from .artifacts import RunHeld
    from .config import ConfigError, load_config

    configs, runs, failed = [], [], []
    for path in paths:
        try:
            configs.append(load_config(path, overrides, debug=debug))
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            if not sweep:
                return EXIT_BAD_INPUT
            runs.append(_record_invalid_config(path, overrides, exc))
            failed.append(runs[-1].name)
    console_logging()
    if configs:
        from .train import train

    for cfg in configs:
        earlier = _run_ids(cfg)
        try:
            result = train(cfg, resume=resume)
        except KeyboardInterrupt:
            print("interrupted; continue with --resume", file=sys.stderr)
            return 130
        except RunHeld as exc:  # another live process trains this run; nothing of it was touched
            print(f"error: {exc}", file=sys.stderr)
            if not sweep:
                return EXIT_FAILED
            failed.append(cfg.name)
            continue
        except Exception as exc:  # the run recorded the error and traceback in its run.json and log
            print(f"error: {cfg.name}: {exc}", file=sys.stderr)
            failed.append(cfg.name)
            runs.extend(_new_runs(cfg, earlier))
            continue
        runs.append(result.run)
        _print_run_summary(result)
    if runs_file is not None:
        from .records import write_text_atomic

        earlier = runs_file.read_text(encoding="utf-8") if runs_file.is_file() else ""
        write_text_atomic(runs_file, earlier + "".join(f"{run.results_dir}\n" for run in runs))
    if failed:
        print(f"{len(failed)} of {len(paths)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
    if sweep and report and runs:
        reported = write_report([run.results_dir for run in runs], report_dir)
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
    """Name, output root, task (when it names a known one, so the report puts the run in its section) and
    model (when the schema is valid) of a config that failed validation."""
    import re

    from .artifacts import default_root
    from .config import ConfigError, apply_overrides, load_config, read_yaml_with_bases
    from .report import SECTIONS

    try:
        raw = apply_overrides(read_yaml_with_bases(path), list(overrides))
    except ConfigError:
        raw = {}
    task = {"task": raw["task"]} if isinstance(raw.get("task"), str) and raw["task"] in SECTIONS else {}
    try:  # only the data files are wrong
        cfg = load_config(path, overrides, check_files=False)
        return dict(name=cfg.name, root=cfg.output.root, architecture=cfg.model.architecture,
                    checkpoint=cfg.model.checkpoint or f"scratch:{cfg.model.size}", **task)
    except ConfigError:
        pass
    name = raw.get("name")
    output = raw.get("output")
    root = output.get("root") if isinstance(output, dict) else None
    if not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name)):
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).stem) or "config"
    return dict(name=name, root=Path(root) if isinstance(root, str) else default_root()[0], **task)


def _run_ids(cfg) -> set[str]:
    from .artifacts import find_runs

    return {run.run_id for run in find_runs(cfg.name, cfg.output.root)}


def _new_runs(cfg, earlier: set[str]) -> list:
    """Runs of this config created since ``earlier`` was taken (the one a failed train() made)."""
    from .artifacts import find_runs

    return [run for run in find_runs(cfg.name, cfg.output.root) if run.run_id not in earlier]


def write_report(run_dirs: Sequence[Path], out: Optional[Path]) -> int:
    from .report import ReportError, write_report

    try:
        directory = write_report(run_dirs, out)
    except ReportError as exc:
        print(f"error: report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    written = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != "comparison.md")
    charts = [name for name in written if name.startswith("confusion_")]
    also = [name for name in written if name not in charts] + ([f"{len(charts)} confusion matrix PNG(s)"] if charts else [])
    print(f"\nreport: {directory / 'comparison.md'} (also {', '.join(also)})")
    return EXIT_OK


SCORE_LINES = {  # the task of a run's metrics -> its one-line summary
    "summarization": lambda m: (f"ROUGE-1 {m['rouge1']:.4f}  ROUGE-2 {m['rouge2']:.4f}  ROUGE-L {m['rougeL']:.4f}  "
                                f"score {m['score']:.4f}"),
    "classification": lambda m: (f"accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  (always "
                                 f"{m['majority_label']!r}: macro-F1 {m['majority_macro_f1']:.4f})"),
}


def _print_run_summary(result) -> None:
    run = result.run
    print(f"\nrun {run.run_id} {result.status}")
    if result.metrics:
        print("  " + SCORE_LINES[result.metrics.get("task", "summarization")](result.metrics))
    print(f"  model:       {run.model_dir}")
    print(f"  metrics:     {run.results_dir / 'metrics.json'}")
    print(f"  predictions: {run.results_dir / 'predictions.csv'}")
    print(f"  manifest:    {run.run_json}")
    print(f"  log:         {run.log_path}")


def console_logging() -> None:
    import logging

    logger = logging.getLogger("sumtune")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[sumtune] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    from .artifacts import keep_library_noise_off_the_console

    keep_library_noise_off_the_console()
