"""Summaries of the dev examples, written, then scored: the same for the fine-tuned model after training
and for the base model before it (``sumtune.baseline``).

    scores = generate_and_score(model, tokenizer, dev_examples(examples, cfg), cfg, run, "predictions.csv")

Predictions are written before they are scored, so a scoring error never loses them. The scores are
ROUGE (``metrics.rouge``, against every reference of ``data.reference_columns`` when set) and the counts
of degenerate predictions (``metrics.count_degenerate``: cut at max_new_tokens, repeating a phrase).
"""

from __future__ import annotations

import logging

from .artifacts import Run
from .config import RunConfig

log = logging.getLogger("sumtune")


def dev_examples(examples, cfg: RunConfig) -> list:
    """The dev examples that are scored: the first ``evaluation.max_examples`` when set."""
    return list(examples[: cfg.evaluation.max_examples] if cfg.evaluation.max_examples else examples)


def generate_and_score(model, tokenizer, examples, cfg: RunConfig, run: Run, predictions_file: str) -> dict:
    """Generate a summary per example, write them to ``predictions_file`` in the run's results, score them;
    return the scores (ROUGE, empty and degenerate counts, the eval file's hash)."""
    from .generate import generate_summaries
    from .metrics import count_degenerate, rouge

    ids, references = [e.id for e in examples], [list(e.scored_against) for e in examples]
    stopped: list[bool] = []
    predictions = generate_summaries(model, tokenizer, [e.dialogue for e in examples], cfg, stopped=stopped)
    written = run.write_predictions(ids, predictions, references, predictions_file)  # before scoring, which may fail
    try:
        result = rouge(predictions, references, tokenizer=cfg.evaluation.tokenizer, ids=ids)
    except Exception:
        log.error("scoring failed; the predictions are saved: sumtune score --predictions %s --tokenizer %s",
                  written, cfg.evaluation.tokenizer)
        raise
    degenerate = count_degenerate(predictions, stopped, cfg.evaluation.tokenizer)
    return dict(result.as_dict(), **degenerate.as_dict(), eval_file_sha256=run.manifest.get("eval_file_sha256"))
