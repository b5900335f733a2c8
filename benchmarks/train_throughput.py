"""Training throughput: sumtune's train path against two padding baselines, in one run.

    python benchmarks/train_throughput.py /work/shared/data/ko_dialogsum_2025/dev.csv
    python benchmarks/train_throughput.py DATA --batch-size 16 --size tiny --out /tmp/throughput.md

Every variant trains the same scratch model (built once by sumtune's backend from the config and
seed, then deep-copied) on the same data, with the same batch size and number of optimizer steps:

- sumtune: what ``sumtune train`` does: the HF Trainer from ``sumtune.train.build_hf_trainer`` with
  exact length bucketing (``sumtune.batching``) and dynamic padding (``sumtune.data.data_collator``:
  DataCollatorForSeq2Seq, pad_to_multiple_of=8), at sumtune's default precision
  (``training.precision: auto``, ``--precision``);
- sumtune fp32: the same at fp32, when the default is not fp32 (the ratios at equal precision);
- sumtune, token budget: the same with ``training.max_tokens_per_batch`` (``--max-tokens``);
- HF length-grouped: sumtune's earlier path, HF's LengthGroupedSampler (sorts by source length inside
  random megabatches of ≤ 50 batches), fp32;
- (a) every example padded to max_source_length, labels to max_target_length (done here, in this
  script's own collator, never in sumtune), random order, fp32;
- (b) random order + dynamic padding (``training.group_by_length: false``): what HF's
  run_summarization example does, fp32.

Each variant's data loader, optimizer, LR schedule and ``training_step`` come from its own
sumtune-built Trainer; this script runs the Trainer's per-step work (fetch, forward + backward,
clip, optimizer and scheduler step) itself, so that it can interleave the variants step by
step: on a shared machine, load from other processes then falls on all of them alike. Throughput
is real tokens per second: per step, the attention-mask sum of the encoder inputs plus the labels
that are not -100, counted from the batch that was trained on. The default is one epoch, so every
variant with fixed-size batches trains on exactly the same examples and real tokens. ``--warmup``
untimed steps on throwaway copies come first, so one-off costs (first allocations, kernel setup) are
not timed.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

from sumtune import artifacts, backends, data
from sumtune.config import load_config
from sumtune.batching import example_shapes
from sumtune.precision import resolve_precision
from sumtune.train import build_hf_trainer, count_parameters

from common import load_average, machine_fact, machine_line, publish, versions_line

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "model_configs" / "tiny_bart.yaml"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="CSV/JSONL with dialogue and summary columns (the training data).")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="sumtune run config (default: tiny_bart.yaml).")
    parser.add_argument("--size", default="small", help="Scratch size preset (model.size); default: small.")
    parser.add_argument("--steps", type=int, default=None, help="Optimizer steps per variant (default: one epoch).")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="per_device_train_batch_size for every variant (default: the config's, 8).")
    parser.add_argument("--max-source-length", type=int, default=512, help="data.max_source_length (and variant (a)'s padded length).")
    parser.add_argument("--max-target-length", type=int, default=128, help="data.max_target_length (and variant (a)'s padded label length).")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="training.precision of the sumtune lanes (default: auto, sumtune's default); the others train in fp32.")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="training.max_tokens_per_batch of the token-budget lane (default: batch size × the mean "
                             "example length, source + target, so that a step holds about as many tokens as a fixed batch).")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed warm-up steps per variant, on a throwaway model copy.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Extra config override, as for `sumtune train --set` (repeatable).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the Markdown report to this file.")
    return parser.parse_args(argv)


# --- variants --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str
    name: str
    sampler: str  # "buckets" (sumtune.batching), "hf" (HF LengthGroupedSampler) or "random"
    padding: str
    pad_to_max: bool = False
    precision: str = "fp32"  # "default": the --precision of sumtune's lanes
    token_budget: bool = False


SAMPLERS = {"buckets": "exact length buckets", "hf": "HF length-grouped", "random": "random"}
DYNAMIC = "dynamic, multiple of 8"
VARIANTS = [
    Variant("sumtune", "sumtune", "buckets", DYNAMIC, precision="default"),
    Variant("fp32", "sumtune fp32", "buckets", DYNAMIC),
    Variant("budget", "sumtune, token budget", "buckets", DYNAMIC, precision="default", token_budget=True),
    Variant("hf", "HF length-grouped (sumtune before)", "hf", DYNAMIC),
    Variant("a", "(a) pad to max_length", "random", "max_length", pad_to_max=True),
    Variant("b", "(b) random + dynamic", "random", DYNAMIC),
]


class PadToMaxLength:
    """Variant (a): pad sources to max_source_length and labels to max_target_length, then collate.

    DataCollatorForSeq2Seq(padding="max_length") would pad the labels to the *source* max_length, so
    the rows are padded here and handed to sumtune's collator, which then has nothing left to pad.
    """

    def __init__(self, collate, pad_id: int, source_length: int, target_length: int):
        self.collate, self.pad_id = collate, pad_id
        self.source_length, self.target_length = source_length, target_length

    def __call__(self, features):
        rows = []
        for row in features:
            gap, label_gap = self.source_length - len(row["input_ids"]), self.target_length - len(row["labels"])
            rows.append({
                "input_ids": list(row["input_ids"]) + [self.pad_id] * gap,
                "attention_mask": list(row["attention_mask"]) + [0] * gap,
                "labels": list(row["labels"]) + [data.IGNORE_INDEX] * label_gap,
            })
        return self.collate(rows)


class Lane:
    """One variant's training: sumtune's HF Trainer supplies the data loader (sampler + collator),
    optimizer, LR schedule and ``training_step``; ``step()`` does what the Trainer's inner loop does
    per optimizer step (fetch a batch, forward + backward, clip, optimizer and scheduler step) and
    times it. Only the callbacks and logging of ``Trainer.train`` are left out, for every variant."""

    def __init__(self, cfg, plan, model, tokenizer, train_set, variant: Variant, root: Path, steps: int,
                 precision: str, max_tokens: int):
        cfg = cfg.model_copy(deep=True)
        cfg.training.max_tokens_per_batch = None
        cfg.training.group_by_length = variant.sampler != "random"
        cfg.training.max_tokens_per_batch = max_tokens if variant.token_budget else None
        cfg.training.precision = precision if variant.precision == "default" else variant.precision
        cfg.training.max_steps = steps
        run = artifacts.new_run(f"{cfg.name}-{variant.key}", root)
        self.variant = variant
        self.trainer = build_hf_trainer(cfg, plan, model, tokenizer, train_set, None, run)
        self.precision = run.manifest["precision"]["used"]
        if variant.sampler == "hf":
            self.trainer.length_buckets = None  # the Trainer's own train_sampling_strategy="group_by_length"
        if variant.pad_to_max:
            self.trainer.data_collator = PadToMaxLength(self.trainer.data_collator, tokenizer.pad_token_id,
                                                        cfg.data.max_source_length, cfg.data.max_target_length)
        self.trainer.create_optimizer_and_scheduler(num_training_steps=steps)
        torch.manual_seed(cfg.training.seed)  # (a) and (b) draw the same random order
        self.loader = self.trainer.get_train_dataloader()
        self.batches = iter(self.loader)
        self.model = self.trainer.accelerator.prepare_model(self.trainer.model)  # bf16: autocast, as in train()
        self.model.train()
        self.seconds: list[float] = []
        self.real: list[int] = []  # non-pad source tokens + labels that are not -100
        self.padded: list[int] = []  # every source and label position, pad included
        self.losses: list[float] = []

    def step(self) -> None:
        trainer, args = self.trainer, self.trainer.args
        started = time.perf_counter()
        samples, num_items = trainer.get_batch_samples(self.batches, 1, args.device)
        if not samples:  # end of an epoch: start the next one, as the Trainer does
            self.batches = iter(self.loader)
            samples, num_items = trainer.get_batch_samples(self.batches, 1, args.device)
        batch = samples[0]
        loss = trainer.training_step(self.model, batch, num_items)
        if args.max_grad_norm > 0:
            trainer.accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        self.model.zero_grad()
        self.seconds.append(time.perf_counter() - started)
        self.real.append(int(batch["attention_mask"].sum()) + int((batch["labels"] != data.IGNORE_INDEX).sum()))
        self.padded.append(batch["input_ids"].numel() + batch["labels"].numel())
        self.losses.append(float(loss))


def run_interleaved(lanes: list[Lane], steps: int, label: str, progress: bool) -> None:
    """Step every lane once per round, in a rotating order, so that load from other processes on a
    shared machine falls on all variants alike instead of on whichever runs at the time."""
    every = max(1, steps // 6)
    started = time.perf_counter()
    for step in range(steps):
        shift = step % len(lanes)
        for lane in lanes[shift:] + lanes[:shift]:
            lane.step()
        if progress and ((step + 1) % every == 0 or step + 1 == steps):
            per_step = "  ".join(f"{lane.variant.key} {statistics.mean(lane.seconds):.2f}" for lane in lanes)
            print(f"  {label} step {step + 1}/{steps}  {time.perf_counter() - started:6.1f} s  "
                  f"(mean s/step: {per_step})  load {load_average()}", flush=True)


@dataclass
class Result:
    variant: Variant
    steps: int
    real_tokens: int
    padded_tokens: int
    seconds: float
    first_loss: float
    last_loss: float
    precision: str

    @classmethod
    def of(cls, lane: Lane) -> "Result":
        tail = lane.losses[-10:]
        return cls(lane.variant, len(lane.seconds), sum(lane.real), sum(lane.padded), sum(lane.seconds),
                   lane.losses[0], statistics.mean(tail), lane.precision)

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds

    @property
    def pad_share(self) -> float:
        return 1 - self.real_tokens / self.padded_tokens


# --- report ----------------------------------------------------------------------------------------


def percentiles(values: list[int]) -> str:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]  # noqa: E731
    return f"p50 {pick(0.5)}, p90 {pick(0.9)}, p99 {pick(0.99)}, max {ordered[-1]} (mean {statistics.mean(values):.0f})"


def markdown_report(results: list[Result], facts: dict) -> str:
    sumtune = results[0]
    lines = [
        "| variant | sampler | padding | precision | steps | real tokens | padded tokens | pad share | time (s) "
        "| real tokens/s | sumtune ÷ variant | loss first → last 10 |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = sumtune.tokens_per_s / r.tokens_per_s
        lines.append(
            f"| {r.variant.name} | {SAMPLERS[r.variant.sampler]} | {r.variant.padding} | {r.precision} | {r.steps} | "
            f"{r.real_tokens:,} | {r.padded_tokens:,} | {r.pad_share:.0%} | {r.seconds:.1f} | {r.tokens_per_s:,.0f} | "
            f"{ratio:.2f}× | {r.first_loss:.2f} → {r.last_loss:.2f} |"
        )
    by_key = {r.variant.key: r for r in results}
    equal = by_key.get("fp32", sumtune)  # sumtune at the baselines' precision
    ratio = lambda ours, key: ours.tokens_per_s / by_key[key].tokens_per_s  # noqa: E731
    lines += [
        "",
        f"At each tool's defaults (sumtune {sumtune.precision}, baselines fp32): "
        f"**sumtune / (a) = {ratio(sumtune, 'a'):.2f}×** (target ≥ 3.0×: {'met' if ratio(sumtune, 'a') >= 3.0 else 'missed'}); "
        f"**sumtune / (b) = {ratio(sumtune, 'b'):.2f}×** (target ≥ 2.0×: {'met' if ratio(sumtune, 'b') >= 2.0 else 'missed'}).",
        "",
        f"At equal precision (fp32): sumtune / (a) = {ratio(equal, 'a'):.2f}×, sumtune / (b) = {ratio(equal, 'b'):.2f}×, "
        f"sumtune / HF length-grouped = {ratio(equal, 'hf'):.2f}×.",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
    ]
    return "\n".join(lines) + "\n"


# --- main ------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = [
        f"data.train_file={args.data}", "data.eval_file=null", "data.test_file=null",
        f"data.max_source_length={args.max_source_length}", f"data.max_target_length={args.max_target_length}",
        f"model.size={args.size}",
        *([f"training.per_device_train_batch_size={args.batch_size}"] if args.batch_size else []),
        "training.gradient_accumulation_steps=1",
        "training.eval_strategy=no", "training.save_strategy=no", "training.early_stopping_patience=null",
        *args.overrides,
    ]
    cfg = load_config(args.config, overrides)
    if cfg.arch.kind != "seq2seq":
        raise SystemExit(f"{args.config}: this benchmark measures encoder-decoder training; "
                         f"{cfg.model.architecture} is {cfg.arch.kind}")
    transformers.logging.set_verbosity_error()
    logging.getLogger("sumtune").setLevel(logging.WARNING)
    load_before = load_average()
    print(f"machine: {machine_line()}; load average {load_before}", flush=True)

    examples = data.read_examples(cfg.data.train_file, cfg.data, limit=cfg.data.max_train_samples)
    texts = data.tokenizer_training_texts(data.Splits(examples, None))
    plan = backends.resolve(cfg, backends.probe_machine(cfg))
    torch.manual_seed(cfg.training.seed)
    base = backends.load(plan, cfg, texts)  # tokenizer trained on the data + scratch model (+ LoRA), built once
    model, tokenizer = base.model, base.tokenizer
    train_set = data.encode_examples(examples, cfg, tokenizer, "train")
    trainable, total = count_parameters(model)
    batch_size = cfg.training.per_device_train_batch_size
    epoch = math.ceil(len(train_set) / batch_size)
    steps = args.steps or epoch
    shapes = example_shapes(train_set, cfg.arch.kind)
    max_tokens = args.max_tokens or math.ceil(batch_size * statistics.mean(map(sum, shapes)) / 64) * 64
    default_precision = resolve_precision(args.precision, torch.cuda.is_available())
    variants = [v for v in VARIANTS if v.key != "fp32" or default_precision.used != "fp32"]

    sources = [len(tokenizer(e.dialogue)["input_ids"]) for e in examples]
    targets = [len(tokenizer(text_target=e.summary)["input_ids"]) for e in examples]
    facts = {
        "data": f"{args.data} ({len(train_set)} examples)",
        "config": f"{args.config} with {' '.join(overrides[3:])}",
        "model": f"{cfg.model.architecture} from scratch, '{cfg.model.size}' preset, {total / 1e6:.2f}M parameters, "
                 f"{trainable / 1e6:.3f}M trainable ({plan.backend}: {plan.reason})",
        "tokenizer": f"BPE trained on the data by sumtune, {len(tokenizer)} tokens",
        "source tokens (untruncated)": f"{percentiles(sources)}; {sum(n > cfg.data.max_source_length for n in sources)} "
                                       f"of {len(examples)} over max_source_length {cfg.data.max_source_length}",
        "target tokens (untruncated)": f"{percentiles(targets)}; {sum(n > cfg.data.max_target_length for n in targets)} "
                                       f"of {len(examples)} over max_target_length {cfg.data.max_target_length}",
        "training": f"{steps} timed optimizer steps per variant (one epoch = {epoch}), "
                    f"batch size {batch_size}, variants interleaved step by step, {args.warmup} untimed warm-up "
                    f"steps per variant on throwaway copies, seed {cfg.training.seed}, lr {cfg.training.learning_rate}, "
                    f"{cfg.training.lr_scheduler_type} schedule",
        "precision": f"sumtune lanes: training.precision {args.precision} = {default_precision.used} "
                     f"({default_precision.reason}); the others fp32",
        "token budget": f"training.max_tokens_per_batch {max_tokens} (padded source + target positions per batch)",
    }
    print("\n".join(f"{key}: {value}" for key, value in facts.items()), flush=True)

    with tempfile.TemporaryDirectory(prefix="sumtune-bench-") as tmp:
        root = Path(tmp)
        if args.warmup:
            lanes = [Lane(cfg, plan, copy.deepcopy(model), tokenizer, train_set, v, root, steps, args.precision,
                          max_tokens) for v in variants]
            started = time.perf_counter()
            run_interleaved(lanes, args.warmup, "warm-up", progress=False)
            print(f"\nwarm-up: {args.warmup} steps per variant in {time.perf_counter() - started:.1f} s (not timed)",
                  flush=True)
        lanes = [Lane(cfg, plan, copy.deepcopy(model), tokenizer, train_set, v, root, steps, args.precision, max_tokens)
                 for v in variants]
        run_interleaved(lanes, steps, "timed", progress=True)
    results = [Result.of(lane) for lane in lanes]

    by_key = {r.variant.key: r for r in results}
    lane_of = {lane.variant.key: lane for lane in lanes}
    same = "yes" if lane_of["a"].real == lane_of["b"].real else "no"
    sumtune, pad_a, pad_b = by_key["sumtune"], by_key["a"], by_key["b"]
    facts.update({
        "padded-token ratios (what the speed-ups would be if step time were proportional to padded tokens)":
            f"(a)/sumtune {pad_a.padded_tokens / sumtune.padded_tokens:.2f}×, "
            f"(b)/sumtune {pad_b.padded_tokens / sumtune.padded_tokens:.2f}×; with no padding at all, "
            f"(a)/real {pad_a.padded_tokens / sumtune.real_tokens:.2f}×, (b)/real {pad_b.padded_tokens / sumtune.real_tokens:.2f}×",
        "same real tokens in every fixed-batch variant":
            "yes" if len({r.real_tokens for r in results if not r.variant.token_budget}) == 1 else "no",
        "(a) and (b) trained on identical batches": same,
        "time": "sum over the timed steps of: fetch + collate the batch, forward, backward, clip, optimizer and "
                "scheduler step",
        "machine": machine_fact(load_before),
        "versions": versions_line("python", "torch", "transformers", "peft", "datasets", "accelerate"),
    })
    report = markdown_report(results, facts)
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
