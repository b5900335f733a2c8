"""Whether training paid: the base model scored before training, beside the fine-tuned model after.

    sumtune train config/model_configs/smollm2_135m.yaml                          # scores the base first
    sumtune train config/model_configs/smollm2_135m.yaml --set evaluation.baseline=false   # skips it

For a pretrained summarization checkpoint (``model.init: pretrained``), ``train()`` generates and scores
the dev examples with the model as loaded (the adapter not trained yet: LoRA's B matrices start at zero,
added tokens at their initial rows), with the run's tokenizer, prompt and decoding, before the first
training step. After training, ``compare`` puts base and fine-tuned ROUGE side by side; a fine-tuned score
below the base's is a warning in the log, run.json and the report. Scratch models are never scored: a
random model knows nothing before training.

The scores are cached under the runs root, ``{output.root}/outputs/.baselines/{key}/`` (``baseline.json``
and the base's ``predictions.csv``; hidden, so ``outputs/*/`` globs see runs only). ``key`` digests what
the base's summaries depend on (``baseline_facts``): the checkpoint (id, revision, commit, local
fingerprint, dtype, quantization), the dev examples (the eval file's hash and the very rows scored,
references included), the decoding (the ``generation`` section and the precision it resolved to), the
prompt (``preprocessing``, ``data.max_source_length``, the added tokens) and the ROUGE tokenizer. A run
whose key was scored already reuses the scores without generating; run.json's ``baseline.status`` says
``scored`` or ``reused``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from .artifacts import Run
from .config import RunConfig
from .records import atomic_path, write_json_atomic

log = logging.getLogger("sumtune")

CACHE_DIR = Path("outputs") / ".baselines"  # under the runs root
BASE_PREDICTIONS = "base_predictions.csv"
COMPARED = ("rouge1", "rouge2", "rougeL", "score")
BELOW_BASE = "training did not pay"  # how the below-base warning starts (the report shows it in bold)
SCORE_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "score": "score"}


def skip_reason(cfg: RunConfig, plan_backend: str, world_size: int, has_eval: bool) -> Optional[str]:
    """Why this run does not score its base model, or None when it does."""
    reasons = (
        (not cfg.evaluation.baseline, "evaluation.baseline is false"),
        (cfg.model.init == "scratch", "a scratch model (model.init: scratch) knows nothing before training"),
        (not has_eval, "the run has no dev examples (data.eval_file)"),
        (world_size > 1, "several processes train (DDP): the base would be scored on rank 0 while the others wait; "
                         "score it in a single-process run, or with sumtune compare RUN"),
        (plan_backend == "unsloth", "the unsloth backend: sumtune switches its model to inference mode only after "
                                    "training (FastLanguageModel.for_inference), untried before it; "
                                    "sumtune compare RUN scores the base after training"),
    )
    return next((reason for skipped, reason in reasons if skipped), None)


def baseline_facts(cfg: RunConfig, manifest: dict, tokenizer, new_token_ids: list[int], examples, precision: str) -> dict:
    """What the base model's summaries and scores depend on: equal facts, equal scores."""
    from .loading import load_dtype

    scored = [[e.id, e.dialogue, list(e.scored_against)] for e in examples]
    return {
        "checkpoint": cfg.model.checkpoint,
        "revision": cfg.model.revision,
        "checkpoint_commit": manifest.get("checkpoint_commit"),
        "base_fingerprint": manifest.get("base_fingerprint"),
        "architecture": cfg.model.architecture,
        "dtype": load_dtype(cfg),  # what model.dtype resolved to here (auto: bfloat16 on a bf16 GPU, else float32)
        "quantization": manifest.get("quantization"),
        "eval_file_sha256": manifest.get("eval_file_sha256"),
        "examples_sha256": hashlib.sha256(json.dumps(scored, ensure_ascii=False).encode()).hexdigest(),
        "n_examples": len(examples),
        "generation": cfg.generation.model_dump(mode="json"),
        "generation_precision": precision,
        "prompt": {**cfg.preprocessing.model_dump(mode="json"), "max_source_length": cfg.data.max_source_length,
                   "added_tokens": tokenizer.convert_ids_to_tokens(list(new_token_ids))},
        "rouge_tokenizer": cfg.evaluation.tokenizer,
    }


def cache_key(facts: dict) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def score_base_model(model, tokenizer, examples, cfg: RunConfig, run: Run, new_token_ids: list[int],
                     backend: str = "peft", world_size: int = 1) -> dict:
    """run.json's ``baseline``: the base model's scores on the dev examples (from the cache when the same
    facts were scored before), or why it was not scored. The base's predictions go to the run's results
    as base_predictions.csv."""
    reason = skip_reason(cfg, backend, world_size, bool(examples))
    if reason:
        log.info("base model not scored: %s", reason)
        return {"status": "skipped", "reason": reason}
    from .evaluation import dev_examples, generate_and_score
    from .generate import generation_precision

    examples = dev_examples(examples, cfg)
    facts = baseline_facts(cfg, run.manifest, tokenizer, new_token_ids, examples, generation_precision(model, cfg).used)
    key = cache_key(facts)
    cache = Path(cfg.output.root) / CACHE_DIR / key
    cached = read_cached(cache, facts)
    if cached is not None:
        copy_atomic(cache / "predictions.csv", run.results_dir / BASE_PREDICTIONS)
        log.info("base model: reused its scores from %s (scored by %s): %s", cache, cached.get("scored_by"),
                 describe_scores(cached["metrics"]))
        return {"status": "reused", "reason": "the same base, dev examples, decoding and prompt were scored before",
                "cache": str(cache), "key": key, "metrics": cached["metrics"],
                "predictions": str(run.results_dir / BASE_PREDICTIONS)}
    log.info("scoring the base model before training on %d dev examples (evaluation.baseline: false skips it)",
             len(examples))
    scores = generate_and_score(model, tokenizer, examples, cfg, run, BASE_PREDICTIONS)
    write_cache(cache, facts, scores, run)
    log.info("base model: %s", describe_scores(scores))
    return {"status": "scored", "reason": "a pretrained checkpoint: its scores before training are the bar to beat",
            "cache": str(cache), "key": key, "metrics": scores, "predictions": str(run.results_dir / BASE_PREDICTIONS)}


def read_cached(cache: Path, facts: dict) -> Optional[dict]:
    """The cached record when it is complete and made from equal facts; None otherwise."""
    try:
        record = json.loads((cache / "baseline.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("facts") != facts or not (cache / "predictions.csv").is_file():
        return None
    return record


def write_cache(cache: Path, facts: dict, scores: dict, run: Run) -> None:
    """The base's predictions, then baseline.json (written last: its presence marks a complete entry)."""
    copy_atomic(run.results_dir / BASE_PREDICTIONS, cache / "predictions.csv")
    write_json_atomic(cache / "baseline.json", {"facts": facts, "metrics": scores, "scored_by": run.run_id,
                                                "scored_at": datetime.now().isoformat(timespec="seconds")})


def copy_atomic(source: Path, target: Path) -> None:
    """A copy that a reader (another run reusing the cache) sees whole or not at all."""
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


def describe_scores(scores: dict) -> str:
    return (f"ROUGE-1 {scores['rouge1']:.4f}  ROUGE-2 {scores['rouge2']:.4f}  ROUGE-L {scores['rougeL']:.4f}  "
            f"score {scores['score']:.4f}  ({scores['n_examples']} examples)")


def compare(baseline: Optional[dict], fine_tuned: dict) -> dict[str, Any]:
    """run.json's ``base_vs_fine_tuned`` (each score's base, fine-tuned and gain) and ``below_base`` (the
    fine-tuned score, ROUGE-1 + ROUGE-2 + ROUGE-L, under the base's), when the run scored its base."""
    base = (baseline or {}).get("metrics")
    if not base:
        return {}
    table = {key: {"base": base[key], "fine_tuned": fine_tuned[key], "gain": fine_tuned[key] - base[key]}
             for key in COMPARED}
    return {"base_vs_fine_tuned": table, "below_base": table["score"]["gain"] < 0}


def describe_comparison(table: dict) -> str:
    """``ROUGE-1 0.1650 -> 0.1010 (-0.0640), ...``: base, fine-tuned and gain per score."""
    return ", ".join(f"{SCORE_NAMES[key]} {row['base']:.4f} -> {row['fine_tuned']:.4f} ({row['gain']:+.4f})"
                     for key, row in table.items())


def below_base_warning(table: dict, run: Run) -> str:
    return (f"{BELOW_BASE}: the fine-tuned model scores below its base model on the same dev examples "
            f"(base -> fine-tuned: {describe_comparison(table)}). Compare {run.results_dir / 'predictions.csv'} with "
            f"{BASE_PREDICTIONS} beside it; lower training.learning_rate, train longer, or leave speaker tags as text "
            "(preprocessing.speaker_tokens: false), whose added tokens start untrained.")
