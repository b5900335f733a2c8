"""Training throughput: sumtune's train path against two padding baselines and the zero-padding bound, in one run.

    python benchmarks/train_throughput.py /work/shared/data/ko_dialogsum_2025/dev.csv
    python benchmarks/train_throughput.py DATA --config config/model_configs/tiny_kobart.yaml --size base
    python benchmarks/train_throughput.py DATA --batch-size 16 --size tiny --steps 40 --out /tmp/throughput.md

Every variant trains the same scratch model (built once by sumtune's backend from the config and
seed, then deep-copied) on the same data, with the same batch size and number of optimizer steps:

- sumtune: what ``sumtune train`` does: the HF Trainer from ``sumtune.train.build_hf_trainer`` with
  exact length bucketing (``sumtune.batching``) and dynamic padding (``sumtune.data.data_collator``:
  DataCollatorForSeq2Seq, lengths rounded to a multiple of 8 on a GPU only), at sumtune's default precision
  (``training.precision: auto``, ``--precision``);
- sumtune fp32: the same at fp32, when the default is not fp32 (the ratios at equal precision);
- sumtune, token budget: the same with ``training.max_tokens_per_batch`` (``--max-tokens``);
- HF length-grouped: sumtune's earlier path, HF's LengthGroupedSampler (sorts by source length inside
  random megabatches of ≤ 50 batches), fp32;
- (a) every example padded to max_source_length, labels to max_target_length (done here, in this
  script's own collator, never in sumtune), random order, fp32;
- (b) random order + dynamic padding (``training.group_by_length: false``): what HF's
  run_summarization example does (it too rounds to 8 only under fp16), fp32;
- the zero-padding bound, at sumtune's default precision and in fp32: the same steps on the same real
  tokens with no padding: each of sumtune's batches, its source tokens and its label tokens laid end to
  end and cut into as many rows of one length.

(a) and (b) draw random batches from exactly the examples that sumtune's timed steps train on, so that
sumtune, (a), (b) and the bound process the same real tokens whatever ``--steps`` is.

Each variant's data loader, optimizer, LR schedule and ``training_step`` come from its own
sumtune-built Trainer; this script runs the Trainer's per-step work (fetch, forward + backward,
clip, optimizer and scheduler step) itself, timing each part, so that it can interleave the variants
step by step: on a shared machine, load from other processes then falls on all of them alike.
Throughput is real tokens per second: per step, the attention-mask sum of the encoder inputs plus the
labels that are not -100, counted from the batch that was trained on. ``--warmup`` untimed steps on
throwaway copies come first, so one-off costs (first allocations, kernel setup) are not timed.
"""

from __future__ import annotations

import argparse
import copy
import gc
import logging
import math
import random
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
from sumtune.batching import LengthBuckets, example_shapes
from sumtune.precision import resolve_precision
from sumtune.train import build_hf_trainer, count_parameters, position_weights

from common import load_average, machine_fact, machine_line, publish, versions_line

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "model_configs" / "tiny_bart.yaml"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="CSV/JSONL with dialogue and summary columns (the training data).")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="sumtune run config (default: tiny_bart.yaml).")
    parser.add_argument("--size", default="small", help="Scratch size preset (model.size); default: small.")
    parser.add_argument("--steps", type=int, default=30, help="Timed optimizer steps per variant (default: 30).")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="per_device_train_batch_size for every variant (default: the config's, 8).")
    parser.add_argument("--max-source-length", type=int, default=512, help="data.max_source_length (and variant (a)'s padded length).")
    parser.add_argument("--max-target-length", type=int, default=128, help="data.max_target_length (and variant (a)'s padded label length).")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="training.precision of the sumtune lanes (default: auto, sumtune's default); the others train in fp32.")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="training.max_tokens_per_batch of the token-budget lane (default: batch size × the mean "
                             "example length, source + target, so that a step holds about as many tokens as a fixed batch).")
    parser.add_argument("--skip", action="append", default=[], choices=["budget", "hf"],
                        help="Leave out a lane that no ratio of the issue needs: the token-budget lane or HF's "
                             "length-grouped sampler (repeatable).")
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
    same_examples: bool = False  # random batches of the examples sumtune's timed steps train on
    equal_rows: bool = False  # the zero-padding bound: each sumtune batch's real tokens in equal-length rows


SAMPLERS = {"buckets": "exact length buckets", "hf": "HF length-grouped", "random": "random"}
DYNAMIC = "dynamic" if not torch.cuda.is_available() else "dynamic, multiple of 8"
NONE = "none: equal-length rows"
VARIANTS = [
    Variant("sumtune", "sumtune", "buckets", DYNAMIC, precision="default"),
    Variant("fp32", "sumtune fp32", "buckets", DYNAMIC),
    Variant("budget", "sumtune, token budget", "buckets", DYNAMIC, precision="default", token_budget=True),
    Variant("hf", "HF length-grouped (sumtune before)", "hf", DYNAMIC),
    Variant("a", "(a) pad to max_length", "random", "max_length", pad_to_max=True, same_examples=True),
    Variant("b", "(b) random + dynamic", "random", DYNAMIC, same_examples=True),
    Variant("bound", "zero-padding bound", "buckets", NONE, precision="default", equal_rows=True),
    Variant("bound32", "zero-padding bound fp32", "buckets", NONE, equal_rows=True),
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


class EqualRows:
    """The zero-padding bound: a batch's real source tokens, and its label tokens, laid end to end and cut
    into as many rows as the batch has, all of one length: no padding and no attention mask to apply.
    Each sequence's last ``len % rows`` tokens (fewer than one per row) are left out, as a row cannot
    be shorter; the report compares lanes per token, so those few tokens do not count for either side."""

    def __init__(self, model):
        self.model = model  # for decoder_input_ids, made from the labels as the seq2seq collator makes them

    def __call__(self, features):
        rows = len(features)
        source = [token for row in features for token in row["input_ids"]]
        target = [token for row in features for token in row["labels"]]
        width, label_width = len(source) // rows, len(target) // rows
        input_ids = torch.tensor(source[: rows * width]).view(rows, width)
        labels = torch.tensor(target[: rows * label_width]).view(rows, label_width)
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels,
                "decoder_input_ids": self.model.prepare_decoder_input_ids_from_labels(labels=labels)}


class FixedBatches:
    """A batch sampler that gives the same list of batches every epoch (the random lanes' batches)."""

    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def timed_batches(buckets, steps: int) -> list[list[int]]:
    """The batches sumtune's first ``steps`` steps train on (epoch after epoch, as the Trainer orders them)."""
    batches, epoch = [], 0
    while len(batches) < steps:
        batches += buckets.batches(epoch)
        epoch += 1
    return batches[:steps]


def random_batches(timed: list[list[int]], seed: int) -> list[list[int]]:
    """The examples of ``timed`` in a random order, cut into batches of the same sizes: what a random
    sampler does, on exactly the examples (and so the real tokens) sumtune's timed steps train on."""
    examples = [i for batch in timed for i in batch]
    random.Random(seed).shuffle(examples)
    batches, start = [], 0
    for batch in timed:
        batches.append(examples[start:start + len(batch)])
        start += len(batch)
    return batches


class Lane:
    """One variant's training: sumtune's HF Trainer supplies the data loader (sampler + collator),
    optimizer, LR schedule and ``training_step``; ``step()`` does what the Trainer's inner loop does
    per optimizer step (fetch a batch, forward + backward, clip, optimizer and scheduler step) and
    times it. Only the callbacks and logging of ``Trainer.train`` are left out, for every variant."""

    def __init__(self, cfg, plan, model, tokenizer, train_set, variant: Variant, root: Path, steps: int,
                 precision: str, max_tokens: int, same_examples: list[list[int]]):
        cfg = cfg.model_copy(deep=True)
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
        if variant.same_examples:
            self.trainer.length_buckets = FixedBatches(same_examples)
        if variant.pad_to_max:
            self.trainer.data_collator = PadToMaxLength(self.trainer.data_collator, tokenizer.pad_token_id,
                                                        cfg.data.max_source_length, cfg.data.max_target_length)
        if variant.equal_rows:
            self.trainer.data_collator = EqualRows(self.trainer.data_collator.model)
        self.trainer.create_optimizer_and_scheduler(num_training_steps=steps)
        self.epoch = 0
        self.loader = self.trainer.get_train_dataloader()
        self.batches = iter(self.loader)
        self.model = self.trainer.accelerator.prepare_model(self.trainer.model)  # bf16: autocast, as in train()
        self.model.train()
        self.seconds: list[float] = []
        self.real: list[int] = []  # non-pad source tokens + labels that are not -100
        self.padded: list[int] = []  # every source and label position, pad included
        self.losses: list[float] = []
        self.parts: dict[str, list[float]] = {part: [] for part in PARTS}
        self.by_sequence: list[tuple[int, int, int, int]] = []  # real and all source positions, real and all label positions

    def step(self) -> None:
        trainer, args = self.trainer, self.trainer.args
        started = time.perf_counter()
        samples, num_items = trainer.get_batch_samples(self.batches, 1, args.device)
        if not samples:  # end of an epoch: start the next one, as the Trainer does
            self.epoch += 1
            self.loader.set_epoch(self.epoch)
            self.batches = iter(self.loader)
            samples, num_items = trainer.get_batch_samples(self.batches, 1, args.device)
        batch = samples[0]
        fetched = time.perf_counter()
        loss = trainer.training_step(self.model, batch, num_items)
        computed = time.perf_counter()
        if args.max_grad_norm > 0:
            trainer.accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        self.model.zero_grad()
        done = time.perf_counter()
        self.seconds.append(done - started)
        for part, seconds in zip(PARTS, (fetched - started, computed - fetched, done - computed)):
            self.parts[part].append(seconds)
        source, target = int(batch["attention_mask"].sum()), int((batch["labels"] != data.IGNORE_INDEX).sum())
        self.real.append(source + target)
        self.padded.append(batch["input_ids"].numel() + batch["labels"].numel())
        self.by_sequence.append((source, batch["input_ids"].numel(), target, batch["labels"].numel()))
        self.losses.append(float(loss))


# the parts of a step, timed apiece (the profile behind the report's "why")
PARTS = ("fetch + collate", "forward + backward", "clip + optimizer + schedule")


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
    parts: dict  # part of a step -> mean seconds

    @classmethod
    def of(cls, lane: Lane) -> "Result":
        tail = lane.losses[-10:]
        return cls(lane.variant, len(lane.seconds), sum(lane.real), sum(lane.padded), sum(lane.seconds),
                   lane.losses[0], statistics.mean(tail), lane.precision,
                   {part: statistics.mean(seconds) for part, seconds in lane.parts.items()})

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
    by_key = {r.variant.key: r for r in results}
    sumtune = by_key["sumtune"]
    equal = by_key.get("fp32", sumtune)  # sumtune at the baselines' precision
    bound_at = {r.precision: r for r in results if r.variant.equal_rows}
    of_bound = lambda r: r.tokens_per_s / bound_at[r.precision].tokens_per_s  # noqa: E731  (per token, same precision)
    ratio = lambda ours, key: ours.tokens_per_s / by_key[key].tokens_per_s  # noqa: E731
    verdict = lambda value, target: "met" if value >= target else "missed"  # noqa: E731
    lines = [
        "| variant | sampler | padding | precision | steps | real tokens | padded tokens | pad share | time (s) "
        "| real tokens/s | sumtune ÷ variant | of the bound | loss first → last 10 |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.variant.name} | {SAMPLERS[r.variant.sampler]} | {r.variant.padding} | {r.precision} | {r.steps} | "
            f"{r.real_tokens:,} | {r.padded_tokens:,} | {r.pad_share:.1%} | {r.seconds:.1f} | {r.tokens_per_s:,.0f} | "
            f"{sumtune.tokens_per_s / r.tokens_per_s:.2f}× | {of_bound(r):.1%} | {r.first_loss:.2f} → {r.last_loss:.2f} |"
        )
    lines += [
        "",
        "Mean seconds per step, by part:",
        "",
        "| variant | " + " | ".join(PARTS) + " | step |",
        "|---|" + "---:|" * (len(PARTS) + 1),
        *(f"| {r.variant.name} | " + " | ".join(f"{seconds:.3f}" for seconds in r.parts.values())
          + f" | {r.seconds / r.steps:.3f} |" for r in results),
    ]
    bound, bound32 = bound_at[sumtune.precision], bound_at["fp32"]
    at_defaults_a, at_defaults_b = ratio(sumtune, "a"), ratio(sumtune, "b")
    lines += [
        "",
        f"At each tool's defaults (sumtune {sumtune.precision}, baselines fp32): "
        f"**sumtune / (a) = {at_defaults_a:.2f}×** (target ≥ 3.0×: {verdict(at_defaults_a, 3.0)}); "
        f"**sumtune / (b) = {at_defaults_b:.2f}×** (target ≥ 2.0×: {verdict(at_defaults_b, 2.0)}).",
        "",
        f"At equal precision (fp32): sumtune / (a) = {ratio(equal, 'a'):.2f}×, sumtune / (b) = {ratio(equal, 'b'):.2f}×"
        + (f", sumtune / HF length-grouped = {ratio(equal, 'hf'):.2f}×" if "hf" in by_key else "")
        + (f"; {sumtune.precision} alone: sumtune / sumtune fp32 = {ratio(sumtune, 'fp32'):.2f}×" if "fp32" in by_key else "")
        + ".",
        "",
        f"Fraction of the zero-padding bound at matched settings (the same steps and precision, per real token): "
        f"**sumtune {of_bound(sumtune):.1%}** of the {sumtune.precision} bound (target ≥ 95%: {verdict(of_bound(sumtune), 0.95)})"
        + (f", sumtune fp32 {of_bound(equal):.1%}" if equal is not sumtune else "")
        + f"; (a) {of_bound(by_key['a']):.1%}, (b) {of_bound(by_key['b']):.1%} of the fp32 bound.",
        "",
        f"The bound itself, the most any batching could give at these settings: bound / (a) = {ratio(bound, 'a'):.2f}×, "
        f"bound / (b) = {ratio(bound, 'b'):.2f}× at sumtune's defaults ({bound.precision})"
        + (f"; {ratio(bound32, 'a'):.2f}× and {ratio(bound32, 'b'):.2f}× in fp32" if bound32 is not bound else "") + ".",
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
    steps = args.steps
    shapes = example_shapes(train_set, cfg.arch.kind)
    max_tokens = args.max_tokens or math.ceil(batch_size * statistics.mean(map(sum, shapes)) / 64) * 64
    default_precision = resolve_precision(args.precision, torch.cuda.is_available())
    # the fp32 copies of sumtune's default-precision lanes only where that default is not fp32
    variants = [v for v in VARIANTS if v.key not in args.skip
                and (v.key not in ("fp32", "bound32") or default_precision.used != "fp32")]
    # (a) and (b): random batches of the examples sumtune's timed steps train on (its own sampler, same seed)
    timed = timed_batches(LengthBuckets(shapes, batch_size, cfg.training.seed, weights=position_weights(model)), steps)
    same_examples = random_batches(timed, cfg.training.seed)

    sources = [len(tokenizer(e.dialogue)["input_ids"]) for e in examples]
    targets = [len(tokenizer(text_target=e.summary)["input_ids"]) for e in examples]
    facts = {
        "data": f"{args.data} ({len(train_set)} examples)",
        "config": f"{args.config} with {' '.join(overrides[3:])}",
        "model": f"{cfg.model.architecture} from scratch, '{cfg.model.size}' preset"
                 f"{f' with the facts of {cfg.model.config}' if cfg.model.config else ''}, {total / 1e6:.2f}M parameters, "
                 f"{trainable / 1e6:.3f}M trainable ({plan.backend}: {plan.reason})",
        "tokenizer": (f"{cfg.model.tokenizer} (a real checkpoint's tokenizer), {len(tokenizer)} tokens with the speaker "
                      f"tags sumtune adds" if cfg.model.tokenizer
                      else f"BPE trained on the data by sumtune, {len(tokenizer)} tokens"),
        "source tokens (untruncated)": f"{percentiles(sources)}; {sum(n > cfg.data.max_source_length for n in sources)} "
                                       f"of {len(examples)} over max_source_length {cfg.data.max_source_length}",
        "target tokens (untruncated)": f"{percentiles(targets)}; {sum(n > cfg.data.max_target_length for n in targets)} "
                                       f"of {len(examples)} over max_target_length {cfg.data.max_target_length}",
        "training": f"{steps} timed optimizer steps per variant (an epoch is {epoch}), "
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
        make_lanes = lambda: [Lane(cfg, plan, copy.deepcopy(model), tokenizer, train_set, v, root, steps,  # noqa: E731
                                   args.precision, max_tokens, same_examples) for v in variants]
        if args.warmup:
            lanes = make_lanes()
            started = time.perf_counter()
            run_interleaved(lanes, args.warmup, "warm-up", progress=False)
            print(f"\nwarm-up: {args.warmup} steps per variant in {time.perf_counter() - started:.1f} s (not timed)",
                  flush=True)
            del lanes  # the throwaway copies go before the timed ones are made
            gc.collect()
        lanes = make_lanes()
        run_interleaved(lanes, steps, "timed", progress=True)
    results = [Result.of(lane) for lane in lanes]

    by_key = {r.variant.key: r for r in results}
    lane_of = {lane.variant.key: lane for lane in lanes}
    sumtune, pad_a, pad_b, bound = by_key["sumtune"], by_key["a"], by_key["b"], lane_of["bound"]
    left_out = [full - kept for full, kept in zip(lane_of["sumtune"].real, bound.real)]
    rows = [len(batch) for batch in timed]
    same = {r.real_tokens for r in results if r.variant.key in ("sumtune", "fp32", "a", "b")}
    pad_by_sequence = lambda lane: "source {:.1%}, summary {:.1%}".format(  # noqa: E731
        *(1 - sum(counts[at] for counts in lane.by_sequence) / sum(counts[at + 1] for counts in lane.by_sequence)
          for at in (0, 2)))
    facts.update({
        "padded-token ratios (what the speed-ups would be if step time were proportional to padded tokens)":
            f"(a)/sumtune {pad_a.padded_tokens / sumtune.padded_tokens:.2f}×, "
            f"(b)/sumtune {pad_b.padded_tokens / sumtune.padded_tokens:.2f}×; with no padding at all, "
            f"(a)/real {pad_a.padded_tokens / sumtune.real_tokens:.2f}×, (b)/real {pad_b.padded_tokens / sumtune.real_tokens:.2f}×",
        "pad share by sequence": "; ".join(f"{lane.variant.name}: {pad_by_sequence(lane)}" for lane in lanes
                                           if not lane.variant.equal_rows and lane.variant.key != "fp32"),
        "same examples and real tokens in sumtune, sumtune fp32, (a) and (b)":
            f"{'yes' if len(same) == 1 else 'no'} ((a) and (b): random batches of the examples of sumtune's "
            f"{steps} timed steps)",
        "zero-padding bound": f"each of sumtune's {steps} batches (the same sampler and seed), its source tokens and its "
                              f"label tokens each laid end to end and cut into as many equal rows; the {sum(left_out):,} "
                              f"tokens that do not fill a row ({sum(left_out) / sumtune.real_tokens:.2%}) are left out "
                              f"(at most rows − 1 per sequence per step: "
                              f"{'yes' if all(0 <= n <= 2 * (r - 1) for n, r in zip(left_out, rows)) else 'NO'}), "
                              f"so lanes are compared per real token",
        "HF length-grouped and token budget lanes": "their own samplers' batches (other examples than sumtune's "
                                                    "timed steps), compared per real token",
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
