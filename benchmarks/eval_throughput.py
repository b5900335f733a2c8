"""Evaluation throughput: sumtune's generation + scoring against HF Seq2SeqTrainer.predict, in one run.

    python benchmarks/eval_throughput.py /work/shared/data/ko_dialogsum_2025/dev.csv
    python benchmarks/eval_throughput.py DATA --run models/tiny_bart_20260101-120000 --rounds 5 --out /tmp/eval.md

One trained model, one set of examples, one set of generation settings (the config's ``generation``
block), evaluated three ways, each ending in the same ROUGE score (``sumtune.metrics.rouge``):

- sumtune: what ``sumtune train`` does after training and ``sumtune predict`` does on a test file:
  ``sumtune.generate.generate_summaries`` (length-sorted batches, no loss pass) then ``rouge``;
- (a) HF ``Seq2SeqTrainer.predict(predict_with_generate=True)`` on the tokenized examples with their
  labels, in file order, scored in ``compute_metrics``: what HF's run_summarization example does;
- (b) the same as (a) with the examples handed over already sorted longest first, as sumtune sorts
  them. Not a baseline: it shows how much of the gap is batch order and how much is the rest of the
  Trainer's evaluation loop (a second forward pass for the loss, padding every output to full length,
  gathering). Its predictions must equal sumtune's exactly; that proves the settings are the same.

The model is trained first, unless ``--run`` names a trained run: ``sumtune.train.train`` with the
config, on the same data, into a temporary directory, fully fine-tuned (lr 1e-3, 3 epochs) so that it
writes summaries of varying length that end in EOS rather than the repeated speaker tags of an
undertrained model; ``--set qlora.use_qlora=true`` trains LoRA instead. Tokenizing the examples for (a) and (b)
is done once, untimed (run_summarization also tokenizes before it evaluates); sumtune's time includes
its own tokenizing. The variants take turns, in a rotating order, for ``--rounds`` rounds; each
variant's time is its median round, so load from other processes on a shared machine falls on all
of them alike.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import transformers
import yaml

from sumtune import data
from sumtune.config import RunConfig, apply_overrides, load_config
from sumtune.generate import generate_summaries
from sumtune.metrics import RougeResult, rouge
from sumtune.trained import load, load_run_config
from sumtune.train import train

from common import load_average, machine_fact, machine_line, publish, versions_line

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "model_configs" / "tiny_bart.yaml"
TARGET = 2.0


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


def sumtune_lane(model, tokenizer, examples: list[data.Example], cfg: RunConfig) -> Lane:
    def evaluate():
        predictions = generate_summaries(model, tokenizer, [e.dialogue for e in examples], cfg, progress=False)
        return predictions, rouge(predictions, [e.summary for e in examples], tokenizer=cfg.evaluation.tokenizer)

    return Lane("sumtune", "sumtune: generate_summaries + rouge", evaluate)


def trainer_lane(key: str, name: str, model, tokenizer, examples, encoded, cfg: RunConfig, order: list[int],
                 scratch: Path) -> Lane:
    """Seq2SeqTrainer.predict over the `encoded` examples in `order`; predictions come back in file order."""
    dataset = encoded.select(order)
    references = [examples[i].summary for i in order]
    gen = cfg.generation
    args = transformers.Seq2SeqTrainingArguments(
        output_dir=str(scratch / f"trainer-{key}"), per_device_eval_batch_size=gen.batch_size,
        predict_with_generate=True, report_to=[], disable_tqdm=True,
    )
    decoded: dict[str, list[str]] = {}

    def compute_metrics(prediction):
        tokens = np.where(prediction.predictions != -100, prediction.predictions, tokenizer.pad_token_id)
        decoded["texts"] = [text.strip() for text in tokenizer.batch_decode(tokens, skip_special_tokens=True)]
        return rouge(decoded["texts"], references, tokenizer=cfg.evaluation.tokenizer).as_dict()

    trainer = transformers.Seq2SeqTrainer(
        model=model, args=args, data_collator=transformers.DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer, compute_metrics=compute_metrics,
    )

    def evaluate():
        output = trainer.predict(
            dataset, max_new_tokens=gen.max_new_tokens, num_beams=gen.num_beams,
            no_repeat_ngram_size=gen.no_repeat_ngram_size, length_penalty=gen.length_penalty,
            early_stopping=gen.num_beams > 1,  # as generate_summaries
        )
        scores = {k.removeprefix("test_"): v for k, v in output.metrics.items()}
        result = RougeResult(**{f.name: scores[f.name] for f in fields(RougeResult) if f.init})
        in_file_order = [""] * len(order)
        for position, index in enumerate(order):
            in_file_order[index] = decoded["texts"][position]
        return in_file_order, result

    return Lane(key, name, evaluate)


def warm_up(model, tokenizer, examples, cfg: RunConfig) -> None:
    """One-off costs that the first timed variant would otherwise pay alone: loading the ROUGE
    tokenizer (kiwi's model takes seconds) and torch's first generate calls."""
    lane = sumtune_lane(model, tokenizer, examples[: cfg.generation.batch_size], cfg)
    lane.round()
    print(f"warm-up (untimed): {lane.seconds[0]:.1f} s", flush=True)


def run_rounds(lanes: list[Lane], rounds: int) -> None:
    for number in range(rounds):
        shift = number % len(lanes)
        for lane in lanes[shift:] + lanes[:shift]:
            lane.round()
        times = "  ".join(f"{lane.key} {lane.seconds[-1]:.1f} s" for lane in lanes)
        print(f"  round {number + 1}/{rounds}: {times}  (load {load_average()})", flush=True)


# --- report ----------------------------------------------------------------------------------------


def markdown_report(lanes: list[Lane], n_examples: int, facts: dict) -> str:
    sumtune = lanes[0]
    lines = [
        "| variant | median time (s) | rounds (s) | examples/s | sumtune ÷ variant | ROUGE-1 | ROUGE-2 | ROUGE-L | score "
        "| predictions equal to sumtune's |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lane in lanes:
        same = sum(a == b for a, b in zip(lane.predictions, sumtune.predictions))
        s = lane.scores
        lines.append(
            f"| {lane.name} | {lane.median_s:.1f} | {', '.join(f'{t:.1f}' for t in lane.seconds)} | "
            f"{n_examples / lane.median_s:.2f} | {lane.median_s / sumtune.median_s:.2f}× | {s.rouge1:.4f} | "
            f"{s.rouge2:.4f} | {s.rougeL:.4f} | {s.score:.4f} | {same}/{n_examples} |"
        )
    ratio = lanes[1].median_s / sumtune.median_s
    lines += [
        "",
        f"**sumtune / (a) = {ratio:.2f}× examples/s** (target ≥ {TARGET:g}×: {'met' if ratio >= TARGET else 'missed'}).",
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
        lengths = [len(ids) for ids in encoded["input_ids"]]
        longest_first = sorted(range(len(examples)), key=lambda i: lengths[i], reverse=True)  # as generate_summaries
        lanes = [
            sumtune_lane(model, tokenizer, examples, cfg),
            trainer_lane("a", "(a) Seq2SeqTrainer.predict, file order", model, tokenizer, examples, encoded, cfg,
                         list(range(len(examples))), scratch),
            trainer_lane("b", "(b) Seq2SeqTrainer.predict, input sorted like sumtune", model, tokenizer, examples,
                         encoded, cfg, longest_first, scratch),
        ]
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
            "generation (every variant)": f"batch size {gen.batch_size}, num_beams {gen.num_beams}, max_new_tokens "
                                          f"{gen.max_new_tokens}, no_repeat_ngram_size {gen.no_repeat_ngram_size}, "
                                          f"length_penalty {gen.length_penalty}, early_stopping {gen.num_beams > 1}, "
                                          f"max_source_length {cfg.data.max_source_length}",
            "time": f"wall time of one whole evaluation (generate, decode, score), median of {args.rounds} rounds; "
                    "variants take turns in a rotating order",
        }
        print("\n".join(f"{key}: {value}" for key, value in facts.items()), flush=True)
        warm_up(model, tokenizer, examples, cfg)
        run_rounds(lanes, args.rounds)

    facts.update({
        "scoring (every variant)": f"sumtune.metrics.rouge, evaluation.tokenizer {cfg.evaluation.tokenizer} "
                                   f"(used: {lanes[0].scores.tokenizer})",
        "machine": machine_fact(load_before),
        "versions": versions_line("python", "torch", "transformers", "peft", "rouge-score", "kiwipiepy"),
    })
    report = markdown_report(lanes, len(examples), facts)
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
