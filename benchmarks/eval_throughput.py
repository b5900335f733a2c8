"""Evaluation throughput: sumtune's generation + scoring against what users would run instead, in one run.

    python benchmarks/eval_throughput.py /work/shared/data/ko_dialogsum_2025/dev.csv
    python benchmarks/eval_throughput.py DATA --run models/tiny_bart_20260101-120000 --rounds 5 --out /tmp/eval.md

One trained model, one set of examples, one set of generation settings (the config's ``generation``
block), evaluated several ways, each ending in the same ROUGE score (``sumtune.metrics.rouge``):

- sumtune at its defaults: ``sumtune.generate.generate_summaries`` (length-sorted batches, the config's
  batch size or token budget, inference mode, KV cache, no loss pass) with ``generation.precision:
  auto`` (bf16 autocast on a CPU that multiplies bf16 natively, fp32 elsewhere), then ``rouge``;
- sumtune in fp32: the same with ``generation.precision: fp32``, for the comparison at equal precision;
- (a) HF ``Seq2SeqTrainer.predict(predict_with_generate=True)`` on the tokenized examples WITHOUT labels
  (so without its loss pass), in file order, batch ``generation.batch_size``, fp32 (its default), then
  the same ``rouge`` on the decoded output;
- (b) a plain loop over the file in order: ``tokenizer.pad`` a batch of ``generation.batch_size``
  examples, ``model.generate``, decode; fp32; then ``rouge``.

The peers get the generation settings as keyword arguments (max_new_tokens, num_beams,
no_repeat_ngram_size, length_penalty, early_stopping) and everything else from the model's generation
config. That the settings are really the same is checked once, untimed, after the timed rounds:
Seq2SeqTrainer.predict handed the examples in sumtune's order, in sumtune's fixed batches, must write
exactly the summaries sumtune writes in fp32 with those batches.

The model is trained first, unless ``--run`` names a trained run: ``sumtune.train.train`` with the
config, on the same data, into a temporary directory, fully fine-tuned (lr 1e-3, 3 epochs) so that it
writes summaries of varying length that end in EOS rather than the repeated speaker tags of an
undertrained model; ``--set qlora.use_qlora=true`` trains LoRA instead. Tokenizing the examples for the
peers is done once, untimed (run_summarization also tokenizes before it evaluates); sumtune's time
includes its own tokenizing. The variants take turns, in a rotating order, for ``--rounds`` rounds;
each variant's time is its median round, so load from other processes on a shared machine falls on all
of them alike.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import transformers
import yaml

from sumtune import data
from sumtune.config import RunConfig, apply_overrides, load_config
from sumtune.generate import generate_summaries, generation_batches, generation_precision
from sumtune.metrics import RougeResult, rouge
from sumtune.trained import load, load_run_config
from sumtune.train import train

from common import load_average, machine_fact, machine_line, publish, versions_line

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "model_configs" / "tiny_bart.yaml"
TARGET = 2.5  # generation + scoring vs Seq2SeqTrainer.predict without labels, each at its defaults


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="CSV/JSONL with dialogue and summary columns: evaluated, and trained on unless --run.")
    parser.add_argument("--run", type=Path, default=None,
                        help="A trained run's model directory (models/{name}_{ts}) to evaluate instead of training one.")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="Config to train with (default: tiny_bart.yaml).")
    parser.add_argument("--size", default="small", help="Scratch size preset to train (model.size); default: small.")
    parser.add_argument("--epochs", type=float, default=3, help="Training epochs for the model (default: 3).")
    parser.add_argument("--limit", type=int, default=None, help="Evaluate only the first N examples.")
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds per variant; the median counts (default: 3).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Extra config override for training and generation, e.g. generation.num_beams=4 (repeatable).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the Markdown report to this file.")
    return parser.parse_args(argv)


# --- the model -------------------------------------------------------------------------------------


def trained_model(args: argparse.Namespace, scratch: Path):
    """(run_dir, cfg, model, tokenizer): the run given by --run, or one trained here on the data."""
    if args.run is None:
        cfg = load_config(args.config, [
            f"data.train_file={args.data}", f"data.eval_file={args.data}", "data.test_file=null",
            "data.max_source_length=512", "data.max_target_length=128", f"model.size={args.size}",
            "qlora.use_qlora=false", "training.learning_rate=1e-3", f"training.num_train_epochs={args.epochs}",
            "training.eval_strategy=no", "training.save_strategy=no",
            "training.early_stopping_patience=null", "evaluation.max_examples=16", f"output.root={scratch}",
            *args.overrides,
        ])
        require_seq2seq(cfg, args.config)  # before an expensive training run
        print(f"training {cfg.name} ({cfg.model.architecture}, '{cfg.model.size}' preset) on {args.data} "
              f"for {args.epochs:g} epochs ...", flush=True)
        started = time.perf_counter()
        run_dir = train(cfg).run.model_dir
        print(f"trained in {time.perf_counter() - started:.0f} s: {run_dir}", flush=True)
    else:
        run_dir = args.run
    cfg = load_run_config(run_dir)
    if args.overrides:  # e.g. generation settings given here beat the ones a --run was trained with
        cfg = RunConfig.model_validate(apply_overrides(yaml.safe_load(cfg.to_yaml()), args.overrides))
    require_seq2seq(cfg, run_dir)
    trained = load(run_dir)
    model, tokenizer = trained.model, trained.tokenizer
    return run_dir, cfg, model, tokenizer


def require_seq2seq(cfg: RunConfig, where: Path) -> None:
    if cfg.arch.kind != "seq2seq":
        raise SystemExit(f"{where}: Seq2SeqTrainer.predict is the baseline, so this benchmark needs an encoder-decoder "
                         f"model; this is {cfg.model.architecture} ({cfg.arch.kind})")


# --- variants --------------------------------------------------------------------------------------


@dataclass
class Lane:
    key: str
    name: str
    precision: str
    batching: str
    evaluate: Callable[[], tuple[list[str], RougeResult]]
    seconds: list[float] = field(default_factory=list)
    predictions: list[str] = field(default_factory=list)
    scores: RougeResult | None = None

    def round(self) -> None:
        started = time.perf_counter()
        self.predictions, self.scores = self.evaluate()
        self.seconds.append(time.perf_counter() - started)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)


def with_generation(cfg: RunConfig, **changes) -> RunConfig:
    return cfg.model_copy(update={"generation": cfg.generation.model_copy(update=changes)})


def batching(cfg: RunConfig) -> str:
    gen = cfg.generation
    return (f"longest first, ≤ {gen.max_tokens_per_batch} tokens per batch" if gen.max_tokens_per_batch
            else f"longest first, {gen.batch_size} per batch")


def sumtune_lane(key: str, name: str, model, tokenizer, examples: list[data.Example], cfg: RunConfig) -> Lane:
    precision = generation_precision(model, cfg).used

    def evaluate():
        predictions = generate_summaries(model, tokenizer, [e.dialogue for e in examples], cfg, progress=False)
        return predictions, rouge(predictions, [e.summary for e in examples], tokenizer=cfg.evaluation.tokenizer)

    return Lane(key, name, precision + (" autocast" if precision != "fp32" else ""), batching(cfg), evaluate)


def peer_generate_kwargs(cfg: RunConfig) -> dict:
    """The generation settings a user passes by hand; the rest comes from the model's generation config."""
    gen = cfg.generation
    return dict(max_new_tokens=gen.max_new_tokens, num_beams=gen.num_beams, no_repeat_ngram_size=gen.no_repeat_ngram_size,
                length_penalty=gen.length_penalty, early_stopping=gen.early_stopping)  # as generate_summaries


def decoded(tokenizer, tokens) -> list[str]:
    tokens = np.where(tokens != -100, tokens, tokenizer.pad_token_id)  # the Trainer pads its outputs with -100
    return [text.strip() for text in tokenizer.batch_decode(tokens, skip_special_tokens=True)]


def trainer_lane(key: str, name: str, model, tokenizer, examples, encoded, cfg: RunConfig, order: list[int],
                 scratch: Path) -> Lane:
    """Seq2SeqTrainer.predict, no labels, over the `encoded` examples in `order`; predictions come back in
    file order, scored after predict (without labels the Trainer calls no compute_metrics)."""
    dataset = encoded.remove_columns("labels").select(order)
    args = transformers.Seq2SeqTrainingArguments(
        output_dir=str(scratch / f"trainer-{key}"), per_device_eval_batch_size=cfg.generation.batch_size,
        predict_with_generate=True, report_to=[], disable_tqdm=True,
    )
    # DataCollatorWithPadding: transformers 5.17's DataCollatorForSeq2Seq puts `labels: None` in a batch without
    # labels, which makes Seq2SeqTrainer.prediction_step run its loss pass and fail (KeyError 'loss')
    trainer = transformers.Seq2SeqTrainer(model=model, args=args, processing_class=tokenizer,
                                          data_collator=transformers.DataCollatorWithPadding(tokenizer))

    def evaluate():
        texts = decoded(tokenizer, trainer.predict(dataset, **peer_generate_kwargs(cfg)).predictions)
        in_file_order = [""] * len(order)
        for position, index in enumerate(order):
            in_file_order[index] = texts[position]
        return in_file_order, rouge(in_file_order, [e.summary for e in examples], tokenizer=cfg.evaluation.tokenizer)

    return Lane(key, name, "fp32", f"file order, {cfg.generation.batch_size} per batch", evaluate)


def generate_loop_lane(key: str, name: str, model, tokenizer, examples, encoded, cfg: RunConfig) -> Lane:
    """A plain loop in file order: pad a batch of the tokenized examples, model.generate, decode."""
    size = cfg.generation.batch_size
    input_ids = encoded["input_ids"]

    def evaluate():
        import torch

        model.eval()
        texts: list[str] = []
        with torch.no_grad():
            for start in range(0, len(input_ids), size):
                batch = tokenizer.pad({"input_ids": input_ids[start:start + size]}, return_tensors="pt")
                texts += decoded(tokenizer, model.generate(**batch, **peer_generate_kwargs(cfg)).numpy())
        return texts, rouge(texts, [e.summary for e in examples], tokenizer=cfg.evaluation.tokenizer)

    return Lane(key, name, "fp32", f"file order, {size} per batch", evaluate)


@dataclass
class SameSettings:
    """The untimed check: Seq2SeqTrainer.predict in sumtune's fixed batches against sumtune in fp32."""
    equal: int
    total: int
    batches: str


def check_same_settings(model, tokenizer, examples, encoded, cfg32: RunConfig, sumtune32: Lane, scratch: Path) -> SameSettings:
    fixed = with_generation(cfg32, max_tokens_per_batch=None)
    if cfg32.generation.max_tokens_per_batch:  # the Trainer cannot cut token-budget batches: compare fixed ones
        reference = generate_summaries(model, tokenizer, [e.dialogue for e in examples], fixed, progress=False)
    else:
        reference = sumtune32.predictions
    order = [i for batch in generation_batches([len(ids) for ids in encoded["input_ids"]], fixed.generation) for i in batch]
    lane = trainer_lane("check", "", model, tokenizer, examples, encoded, fixed, order, scratch)
    lane.round()
    equal = sum(a == b for a, b in zip(lane.predictions, reference))
    return SameSettings(equal, len(examples), batching(fixed))


def warm_up(model, tokenizer, examples, cfgs: list[RunConfig]) -> None:
    """One-off costs that the first timed variant would otherwise pay alone: loading the ROUGE
    tokenizer (kiwi's model takes seconds) and torch's first generate calls in each precision."""
    started = time.perf_counter()
    for cfg in cfgs:
        sumtune_lane("warm", "", model, tokenizer, examples[: cfg.generation.batch_size], cfg).round()
    print(f"warm-up (untimed): {time.perf_counter() - started:.1f} s", flush=True)


def run_rounds(lanes: list[Lane], rounds: int) -> None:
    for number in range(rounds):
        shift = number % len(lanes)
        for lane in lanes[shift:] + lanes[:shift]:
            lane.round()
        times = "  ".join(f"{lane.key} {lane.seconds[-1]:.1f} s" for lane in lanes)
        print(f"  round {number + 1}/{rounds}: {times}  (load {load_average()})", flush=True)


# --- report ----------------------------------------------------------------------------------------


def markdown_report(lanes: dict[str, Lane], check: SameSettings, n_examples: int, facts: dict) -> str:
    default, fp32, trainer, loop = lanes["sumtune"], lanes["sumtune-fp32"], lanes["a"], lanes["b"]
    lines = [
        "| variant | precision | batches | median time (s) | rounds (s) | examples/s | ROUGE-1 | ROUGE-2 | ROUGE-L "
        "| score | predictions equal to sumtune fp32's |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lane in lanes.values():
        same = sum(a == b for a, b in zip(lane.predictions, fp32.predictions))
        s = lane.scores
        lines.append(
            f"| {lane.name} | {lane.precision} | {lane.batching} | {lane.median_s:.1f} | "
            f"{', '.join(f'{t:.1f}' for t in lane.seconds)} | {n_examples / lane.median_s:.2f} | {s.rouge1:.4f} | "
            f"{s.rouge2:.4f} | {s.rougeL:.4f} | {s.score:.4f} | {same}/{n_examples} |"
        )

    def ratio(peer: Lane, ours: Lane) -> str:
        return f"{peer.median_s / ours.median_s:.2f}×"

    headline = trainer.median_s / default.median_s
    lines += [
        "",
        "| sumtune's speed ÷ the peer's | vs (a) Seq2SeqTrainer.predict | vs (b) model.generate loop |",
        "|---|---:|---:|",
        f"| each at its defaults (sumtune {default.precision}, peers fp32) | **{ratio(trainer, default)}** | "
        f"**{ratio(loop, default)}** |",
        f"| equal precision (all fp32) | {ratio(trainer, fp32)} | {ratio(loop, fp32)} |",
        "",
        f"**sumtune / (a) at defaults = {headline:.2f}× examples/s** (target ≥ {TARGET:g}×: "
        f"{'met' if headline >= TARGET else f'missed by {TARGET - headline:.2f}×'}). "
        f"Of it, sumtune's {default.precision} over its fp32: {fp32.median_s / default.median_s:.2f}×; "
        f"sumtune's batching and loop at equal precision: {ratio(trainer, fp32)} over (a), {ratio(loop, fp32)} over (b).",
        "",
        f"Same settings, checked (untimed): Seq2SeqTrainer.predict without labels, handed the examples in sumtune's "
        f"order and batches ({check.batches}), fp32, wrote {check.equal}/{check.total} of sumtune's fp32 summaries.",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
    ]
    return "\n".join(lines) + "\n"


# --- main ------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    transformers.logging.set_verbosity_error()
    logging.getLogger("sumtune").setLevel(logging.WARNING)
    load_before = load_average()
    print(f"machine: {machine_line()}; load average {load_before}", flush=True)

    with tempfile.TemporaryDirectory(prefix="sumtune-eval-bench-") as tmp:
        scratch = Path(tmp)
        run_dir, cfg, model, tokenizer = trained_model(args, scratch)
        examples = data.read_examples(args.data, cfg.data, limit=args.limit)
        encoded = data.encode_examples(examples, cfg, tokenizer, "benchmark")  # input_ids, attention_mask, labels
        if len(encoded) != len(examples):
            raise SystemExit(f"{args.data}: some examples have no summary tokens left after truncation; every "
                             "variant must see the same examples")
        cfg_default, cfg32 = with_generation(cfg, precision="auto"), with_generation(cfg, precision="fp32")
        file_order = list(range(len(examples)))
        lanes = {lane.key: lane for lane in [
            sumtune_lane("sumtune", "sumtune at its defaults: generate_summaries + rouge", model, tokenizer, examples, cfg_default),
            sumtune_lane("sumtune-fp32", "sumtune in fp32", model, tokenizer, examples, cfg32),
            trainer_lane("a", "(a) Seq2SeqTrainer.predict, no labels, file order", model, tokenizer, examples, encoded,
                         cfg32, file_order, scratch),
            generate_loop_lane("b", "(b) model.generate loop, file order", model, tokenizer, examples, encoded, cfg32),
        ]}
        precision = generation_precision(model, cfg_default)
        gen = cfg.generation
        lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
        total = sum(p.numel() for p in model.parameters())
        facts = {
            "data": f"{args.data}, {len(examples)} examples (dialogue → summary)",
            "model": f"{run_dir.name if args.run else 'trained here'}: {cfg.model.architecture} "
                     f"{cfg.model.checkpoint or 'from scratch, ' + repr(cfg.model.size) + ' preset'}, "
                     f"{total / 1e6:.2f}M parameters"
                     + (f" ({lora / 1e6:.3f}M of them LoRA)" if lora else ", all trained (full fine-tuning)")
                     + (f"; trained by sumtune for {args.epochs:g} epochs on the same data" if args.run is None else ""),
            "generation (every variant)": f"num_beams {gen.num_beams}, max_new_tokens {gen.max_new_tokens}, "
                                          f"no_repeat_ngram_size {gen.no_repeat_ngram_size}, length_penalty "
                                          f"{gen.length_penalty}, early_stopping {gen.early_stopping}, max_source_length "
                                          f"{cfg.data.max_source_length}; generation.batch_size {gen.batch_size}, "
                                          f"generation.max_tokens_per_batch {gen.max_tokens_per_batch}",
            "sumtune's default precision": f"generation.precision auto → {precision.used} ({precision.reason})",
            "time": f"wall time of one whole evaluation (tokenize where the variant does, generate, decode, score), "
                    f"median of {args.rounds} rounds; variants take turns in a rotating order",
        }
        print("\n".join(f"{key}: {value}" for key, value in facts.items()), flush=True)
        warm_up(model, tokenizer, examples, [cfg_default, cfg32])
        run_rounds(list(lanes.values()), args.rounds)
        check = check_same_settings(model, tokenizer, examples, encoded, cfg32, lanes["sumtune-fp32"], scratch)

    facts.update({
        "scoring (every variant)": f"sumtune.metrics.rouge, evaluation.tokenizer {cfg.evaluation.tokenizer} "
                                   f"(used: {lanes['sumtune'].scores.tokenizer})",
        "machine": machine_fact(load_before),
        "versions": versions_line("python", "torch", "transformers", "peft", "rouge-score", "kiwipiepy"),
    })
    report = markdown_report(lanes, check, len(examples), facts)
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
