"""Sequence classification (``task: classification``): a text in, one of ``data.labels`` out.

    sumtune train config/model_configs/tiny_electra_spam.yaml

The same run as a summarization one (``train.py``): the encoder families of the registry (electra,
bert, roberta) load as ``AutoModelForSequenceClassification`` with the run's label set as
``id2label``/``label2id``; LoRA adapts ``query``/``value`` and the head trains in full
(``modules_to_save``). What differs lives here:

- ``encode_texts``: ``[CLS] text [SEP]`` cut to ``data.max_source_length`` (never past the model's
  positions: KcBERT has 300), and the label's id;
- ``weighted_loss``: ``training.class_weights`` through the HF Trainer's ``compute_loss_func``;
- ``predict_labels``: batched forward passes, longest texts first, softmax probabilities;
- ``evaluate_after_training``: predictions.csv (id, text, label, predicted_label, probability), then
  accuracy, macro-F1, per-class scores, the confusion matrix and the majority-class baseline.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Optional, Sequence

from .config import RunConfig
from .datafiles import LabeledText, label_ids, label_set

log = logging.getLogger("sumtune")

PREDICTION_COLUMNS = ["id", "text", "label", "predicted_label", "probability"]


def labels_of(cfg: RunConfig, examples: Sequence[LabeledText] = ()) -> list:
    """The run's label set in id order: ``data.labels``, else every label of ``examples``."""
    return list(cfg.data.labels) if cfg.data.labels is not None else label_set(e.label for e in examples)


def model_label_facts(cfg: RunConfig) -> dict:
    """``num_labels``, ``id2label`` and ``label2id`` for the model's config (saved with it). Integer
    labels are their own ids, so ids no label has (labels 1..5 leave 0) get a name of their own."""
    ids = label_ids(cfg.data.labels)
    id2label = {index: f"unused_{index}" for index in range(max(ids.values()) + 1)}
    id2label.update({index: label for label, index in ids.items()})
    return dict(num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()})


def max_text_tokens(cfg: RunConfig, model) -> int:
    """``data.max_source_length``, or fewer where the model has fewer positions (KcBERT: 300)."""
    positions = model.config.max_position_embeddings - cfg.arch.position_offset
    if cfg.data.max_source_length > positions:
        log.warning("data.max_source_length %d is more than the %d positions of %s: texts are cut to %d tokens",
                    cfg.data.max_source_length, positions, cfg.model.checkpoint or cfg.model.architecture, positions)
    return min(cfg.data.max_source_length, positions)


def encode_texts(examples: Sequence[LabeledText], cfg: RunConfig, tokenizer, model, split: str):
    """A datasets.Dataset of input_ids/attention_mask(/token_type_ids)/labels, texts cut at the limit."""
    import datasets

    limit = max_text_tokens(cfg, model)
    ids = label_ids(cfg.data.labels)
    encoded = tokenizer([e.text for e in examples], truncation=True, max_length=limit)
    rows = [{key: encoded[key][i] for key in encoded.keys()} | {"labels": ids[e.label]} for i, e in enumerate(examples)]
    cut = sum(len(row["input_ids"]) == limit for row in rows)
    if cut:
        log.warning("%s: %d of %d texts fill data.max_source_length %d tokens (cut there); raise it to keep more",
                    split, cut, len(rows), limit)
    first = rows[0]
    log.info("%s example as the model sees it: %r -> label %r (id %d)", split,
             tokenizer.decode(first["input_ids"], skip_special_tokens=False), examples[0].label, first["labels"])
    return datasets.Dataset.from_list(rows)


def class_weights(cfg: RunConfig, examples: Sequence[LabeledText]) -> Optional[list[float]]:
    """Loss weight per label id for ``training.class_weights`` (None: unweighted). ``auto`` weighs a
    label by n / (k x its count in training), so that every label weighs the same in total."""
    wanted = cfg.training.class_weights
    if wanted is None:
        return None
    ids = label_ids(cfg.data.labels)
    if wanted == "auto":
        counts = Counter(e.label for e in examples)
        wanted = {label: len(examples) / (len(counts) * counts[label]) for label in counts}
    weights = [1.0] * model_label_facts(cfg)["num_labels"]
    for label, weight in wanted.items():
        weights[ids[str(label)]] = float(weight)
    log.info("class weights: %s", ", ".join(f"{label} {weights[index]:.3g}" for label, index in ids.items()))
    return weights


def weighted_loss(weights: list[float]):
    """The Trainer's ``compute_loss_func``: cross-entropy with a weight per class, summed and divided by the
    examples in the (accumulated) batch, so gradient accumulation gives the same loss as one big batch."""
    import torch

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"]
        weight = torch.tensor(weights, dtype=logits.dtype, device=logits.device)
        total = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), weight=weight,
                                                  reduction="sum")
        return total / (num_items_in_batch if num_items_in_batch is not None else labels.numel())

    return loss


def data_collator(tokenizer, model=None, packed: bool = False):
    """Each batch padded to its longest text (packing is for causal models only; the config refuses it here)."""
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


def predict_labels(model, tokenizer, texts: Sequence[str], cfg: RunConfig, batch_size: Optional[int] = None,
                   max_length: Optional[int] = None) -> tuple[list[str], list[list[float]]]:
    """The predicted label of every text, and its probabilities over the label ids (input order).

    Texts go through in batches of ``training.per_device_eval_batch_size``, longest first (a batch pads
    only to its own longest text), under ``torch.inference_mode``.
    """
    import torch

    batch_size = batch_size or cfg.training.per_device_eval_batch_size
    limit = max_length or max_text_tokens(cfg, model)
    ids = label_ids(cfg.data.labels)  # ids no label has (integer labels with gaps) are never predicted
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    probabilities: list[Optional[list[float]]] = [None] * len(texts)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start: start + batch_size]
            inputs = tokenizer([texts[i] for i in batch], truncation=True, max_length=limit, padding=True,
                               return_tensors="pt").to(device)
            probs = torch.softmax(model(**inputs).logits.float(), dim=-1).tolist()
            for i, p in zip(batch, probs):
                probabilities[i] = p
    model.train(was_training)
    predicted = [max(ids, key=lambda label: p[ids[label]]) for p in probabilities]
    return predicted, probabilities


def evaluate_after_training(model, tokenizer, examples: Sequence[LabeledText], cfg: RunConfig, run) -> dict:
    """Predict every dev text, write predictions.csv (before scoring), then score and record metrics.json."""
    from .metrics import classification_scores
    from .records import write_csv_atomic

    log.info("classifying %d dev texts", len(examples))
    predicted, probabilities = predict_labels(model, tokenizer, [e.text for e in examples], cfg)
    ids = label_ids(cfg.data.labels)
    rows = [dict(id=e.id, text=e.text, label=e.label, predicted_label=label,
                 probability=round(p[ids[label]], 6))
            for e, label, p in zip(examples, predicted, probabilities)]
    write_csv_atomic(run.results_dir / "predictions.csv", rows, PREDICTION_COLUMNS)
    result = classification_scores([e.label for e in examples], predicted, [str(label) for label in cfg.data.labels])
    scores = dict(result.as_dict(), eval_file_sha256=run.manifest.get("eval_file_sha256"))
    run.write_json("metrics.json", scores)
    run.update(metrics=scores)
    log.info("accuracy %.4f  macro-F1 %.4f  (always '%s': macro-F1 %.4f)  %d examples", scores["accuracy"],
             scores["macro_f1"], scores["majority_label"], scores["majority_macro_f1"], scores["n_examples"])
    return scores
