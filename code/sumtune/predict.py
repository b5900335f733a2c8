"""Summaries for a test file from a trained run: the submission CSV (id, summary) in input order.

    sumtune predict models/tiny_bart_20250101-120000 --input data/sample/ko_test.csv --output submission.csv
    sumtune predict config/model_configs/tiny_bart.yaml --input data/sample/ko_test.csv --output submission.csv --batch-size 32

A run is a ``models/{name}_{ts}`` directory, or a config (path, or a stem of config/model_configs/)
whose latest *completed* run under its ``output.root`` is used. The run's own ``config.yaml`` decides
the architecture, prompt and generation settings; the input is checked before any model is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from . import artifacts
from .config import RunConfig, load_config
from .data import clean_text
from .records import read_records, write_csv_atomic

log = logging.getLogger("sumtune")

MODEL_CONFIGS = Path("config") / "model_configs"
SUMMARY_COLUMN = "summary"


class PredictError(ValueError):
    """The run cannot be found or loaded, or the input file cannot be used; the message says why."""


@dataclass(frozen=True)
class InputRows:
    ids: list[str]
    dialogues: list[str]


def predict(target: str | Path, input_path: Path, output_path: Path, batch_size: Optional[int] = None) -> Path:
    """Write ``{id_column},summary`` for every row of ``input_path``, in input order; return the path."""
    if batch_size is not None and batch_size < 1:
        raise PredictError(f"--batch-size must be at least 1 (got {batch_size})")
    run_dir = find_run_dir(target)
    cfg = load_run_config(run_dir)
    if batch_size is not None:
        cfg.generation.batch_size = batch_size
    rows = read_test_rows(Path(input_path), cfg)
    log.info("predicting %d rows of %s with %s", len(rows.ids), input_path, run_dir)
    model, tokenizer = load_trained(run_dir, cfg)

    from .generate import generate_summaries

    summaries = generate_summaries(model, tokenizer, rows.dialogues, cfg)
    records = [{cfg.data.id_column: i, SUMMARY_COLUMN: s} for i, s in zip(rows.ids, summaries)]
    return write_csv_atomic(output_path, records, [cfg.data.id_column, SUMMARY_COLUMN])


# --- which run -------------------------------------------------------------------------------------


def find_run_dir(target: str | Path) -> Path:
    """A run's model directory from itself, or from a config path / config stem (latest completed run)."""
    path = Path(target)
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise PredictError(
                f"{path} is not a trained run's model directory (no config.yaml); pass models/{{name}}_{{timestamp}} "
                "or a config file"
            )
        return path
    config_path = path if path.is_file() else MODEL_CONFIGS / f"{target}.yaml"
    if not config_path.is_file():
        raise PredictError(
            f"'{target}' is neither a run directory (models/{{name}}_{{timestamp}}) nor a config file, and "
            f"{config_path} does not exist"
        )
    cfg = load_config(config_path, check_files=False)
    return latest_completed_run(cfg.name, cfg.output.root).model_dir


def latest_completed_run(name: str, root: Path) -> artifacts.Run:
    runs = artifacts.find_runs(name, root)
    for run in reversed(runs):
        if artifacts.load_manifest(run).get("status") == "completed":
            return run
    where = Path(root) / "models"
    if not runs:
        raise PredictError(f"no run of '{name}' under {where}; train it first: sumtune train CONFIG")
    statuses = ", ".join(f"{run.run_id} ({artifacts.load_manifest(run).get('status', 'no run.json')})" for run in runs)
    raise PredictError(f"no completed run of '{name}' under {where}; found {statuses}. Pass a run directory to use one")


def load_run_config(run_dir: Path) -> RunConfig:
    """The config the run was trained with (saved as config.yaml); its data files need not exist here."""
    return RunConfig.model_validate(yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")))


# --- input -----------------------------------------------------------------------------------------


def read_test_rows(path: Path, cfg: RunConfig) -> InputRows:
    """Ids and dialogues in file order; every row must have an id and a non-empty dialogue."""
    if not path.is_file():
        raise PredictError(f"input file not found: {path}")
    try:
        records = read_records(path)
    except ValueError as exc:
        raise PredictError(str(exc)) from None
    if not records:
        raise PredictError(f"{path}: no rows")
    data = cfg.data
    missing = [column for column in (data.id_column, data.dialogue_column) if column not in records[0]]
    if missing:
        raise PredictError(
            f"{path}: no column {', '.join(repr(c) for c in missing)}; it has {', '.join(records[0])} "
            "(the run's data.id_column / data.dialogue_column)"
        )
    ids = [record[data.id_column] for record in records]
    dialogues = [clean_text(r[data.dialogue_column]) if data.clean else r[data.dialogue_column] for r in records]
    empty = [f"{i or '(no id)'} (line {n})" for n, (i, d) in enumerate(zip(ids, dialogues), start=2) if not d.strip()]
    if empty:
        raise PredictError(f"{path}: {len(empty)} row(s) with an empty {data.dialogue_column}: {', '.join(empty)}")
    return InputRows(ids, dialogues)


# --- model -----------------------------------------------------------------------------------------


def load_trained(run_dir: Path, cfg: RunConfig):
    """(model, tokenizer) of a run: base + LoRA adapter when the run saved one, else the full model."""
    import torch
    import transformers

    from .loading import load_pretrained_model

    if cfg.model.trust_remote_code:
        log.warning("trust_remote_code is ON for %s: code shipped with the checkpoint will run", cfg.model.checkpoint)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(run_dir), trust_remote_code=cfg.model.trust_remote_code)
    auto_class = getattr(transformers, cfg.arch.auto_class)
    if (run_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        if cfg.model.init == "scratch":  # built with the run's tokenizer: no resize
            base = auto_class.from_pretrained(str(run_dir / "base_model"))
        else:
            base = load_pretrained_model(cfg)
            if tokenizer_grew(tokenizer, cfg) or len(tokenizer) > base.get_input_embeddings().num_embeddings:
                base.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=8)  # as loading.load_base did
        model = PeftModel.from_pretrained(base, str(run_dir))
    else:
        model = auto_class.from_pretrained(str(run_dir), trust_remote_code=cfg.model.trust_remote_code)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, tokenizer


def tokenizer_grew(tokenizer, cfg: RunConfig) -> bool:
    """Whether training added tokens (speaker tags, special_tokens) to the checkpoint's tokenizer."""
    import transformers

    from .loading import ensure_available

    source = cfg.model.tokenizer or cfg.model.checkpoint
    ensure_available(source, cfg.model.revision)
    original = transformers.AutoTokenizer.from_pretrained(
        source, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
    )
    return len(tokenizer) > len(original)
