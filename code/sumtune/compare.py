"""Base model vs base + adapter (vs merged) on a run's dev data: size, load time, memory, latency, tokens/s, ROUGE.

    sumtune compare models/tiny_bart_20250101-120000
    sumtune compare tiny_bart --merged --repeats 5 --examples 16 --out reports/compare_tiny_bart

Each variant is measured in its own Python process (``python -m sumtune.compare --variant adapter ...``,
which prints one JSON line), because peak memory is per process: a variant measured after another in
the same process would inherit its peak. Every variant gets the same examples (the first K of the run's
``data.eval_file``), the same batches (the run's ``generation.batch_size`` unless ``--batch-size``) and
the run's generation settings. One batch is generated untimed first (warm-up); then every batch is
timed ``--repeats`` times; a batch's time divided by its size is one per-example latency sample, and
p50/p95 are taken over those samples. Tokens/s is the generated tokens (up to and including each
summary's stop token) over the timed generation time. ROUGE is ``sumtune.metrics.rouge`` with the run's
``evaluation.tokenizer`` against the dev references.

Variants (``VARIANTS``): ``base`` is what the adapter was trained on, with the run's tokenizer (a
scratch run's saved random init; otherwise the checkpoint at the run's revision, quantized as trained,
with rows for the tokens training added); ``adapter`` is ``sumtune.load(run)``; ``merged`` folds it in
(PEFT's ``merge_and_unload``; its load time includes the merge). A full fine-tuning run has no adapter:
it is compared as ``base`` vs ``fine-tuned``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from .artifacts import Run, load_manifest, run_task
from .machine import cpu_name, load_average, versions_line
from .config import RunConfig
from .records import write_csv_atomic, write_text_atomic
from .trained import RunError, find_run_dir, load_run_config

log = logging.getLogger("sumtune")

ADAPTER_VARIANTS = ("base", "adapter")
FULL_VARIANTS = ("base", "fine-tuned")
FULL_RUN_NOTE = ("a full fine-tuning run: there is no adapter, so this compares the base with the fine-tuned model "
                 "(and has no merged variant)")


class CompareError(ValueError):
    """The run, its dev data or the options cannot be used; the message says why and what to do."""


class VariantFailed(RuntimeError):
    """A variant's process failed; the message holds the end of its error output."""


@dataclass
class Measurement:
    """One variant, measured in its own process."""

    variant: str
    parameters: int
    trainable: int
    load_time_s: float
    memory_before_load_mib: float
    peak_memory_mib: float
    latency_p50_ms: float
    latency_p95_ms: float
    tokens_per_s: float
    generated_tokens: int
    device: str
    threads: int  # torch's CPU threads
    memory_kind: str  # what peak_memory_mib measures
    predictions: list[str]


@dataclass
class Comparison:
    run_dir: Path
    cfg: RunConfig
    data: Path
    references: list[str]
    batch_size: int
    repeats: int
    measurements: list[Measurement]
    scores: dict  # variant -> RougeResult
    notes: list[str]
    load_average: tuple[str, str]  # before and after the measurements

    def rows(self) -> list[dict]:
        """The table, one dict a variant, every cell filled."""
        table = []
        for m in self.measurements:
            score = self.scores[m.variant]
            table.append({
                "variant": m.variant, "parameters": m.parameters, "trainable": m.trainable,
                "load_time_s": round(m.load_time_s, 3), "memory_before_load_mib": round(m.memory_before_load_mib, 1),
                "peak_memory_mib": round(m.peak_memory_mib, 1), "latency_p50_ms": round(m.latency_p50_ms, 1),
                "latency_p95_ms": round(m.latency_p95_ms, 1), "tokens_per_s": round(m.tokens_per_s, 1),
                "generated_tokens": m.generated_tokens, "rouge1": round(score.rouge1, 4),
                "rouge2": round(score.rouge2, 4), "rougeL": round(score.rougeL, 4),
            })
        return table


COLUMNS = {  # CSV key -> (Markdown header, Markdown format)
    "variant": ("variant", "{}"), "parameters": ("parameters", "{:,}"), "trainable": ("trainable", "{:,}"),
    "load_time_s": ("load time (s)", "{:.3f}"), "memory_before_load_mib": ("memory before load (MiB)", "{:.1f}"),
    "peak_memory_mib": ("peak memory (MiB)", "{:.1f}"), "latency_p50_ms": ("latency p50 (ms/example)", "{:.1f}"),
    "latency_p95_ms": ("latency p95 (ms/example)", "{:.1f}"), "tokens_per_s": ("tokens/s", "{:.1f}"),
    "generated_tokens": ("generated tokens", "{:,}"), "rouge1": ("ROUGE-1", "{:.4f}"), "rouge2": ("ROUGE-2", "{:.4f}"),
    "rougeL": ("ROUGE-L", "{:.4f}"),
}


# --- the command: one process per variant ----------------------------------------------------------


def compare(target: str | Path, merged: bool = False, repeats: int = 3, examples: int = 8,
            batch_size: Optional[int] = None, data: Optional[Path] = None) -> Comparison:
    """Measure every variant of the run ``target`` (run directory, config path or config name)."""
    for option, value in (("--repeats", repeats), ("--examples", examples), ("--batch-size", batch_size)):
        if value is not None and value < 1:
            raise CompareError(f"{option} must be at least 1 (got {value})")
    try:
        run_dir = find_run_dir(target)
    except RunError as exc:
        raise CompareError(str(exc)) from None
    cfg = load_run_config(run_dir)
    manifest = load_manifest(Run(cfg.name, run_dir.name, run_dir.parent.parent))
    if manifest.get("status") != "completed":
        raise CompareError(f"{run_dir} did not complete (status: {manifest.get('status', 'no run.json')}); compare a completed run")
    if run_task(manifest) != "summarization":
        raise CompareError(f"{run_dir} is a {run_task(manifest)} run: sumtune compare times generation (latency, "
                           "tokens/s, ROUGE) and measures summarization runs only; its metrics.json and the report "
                           "(sumtune report) hold the classification scores")
    dev = read_dev(cfg, data, examples)  # before any model is loaded
    notes = []
    adapter = (run_dir / "adapter_config.json").is_file()
    variants = list(ADAPTER_VARIANTS if adapter else FULL_VARIANTS)
    if not adapter:
        notes.append(FULL_RUN_NOTE)
    if merged and adapter:
        variants.append("merged")
    batch_size = batch_size or cfg.generation.batch_size

    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="sumtune-compare-") as tmp:
        inputs = Path(tmp) / "dialogues.json"
        inputs.write_text(json.dumps([example.dialogue for example in dev], ensure_ascii=False), encoding="utf-8")
        measurements = [measure_in_own_process(variant, run_dir, inputs, repeats, batch_size) for variant in variants]

    from .metrics import rouge

    references = [example.summary for example in dev]
    scores = {m.variant: rouge(m.predictions, references, tokenizer=cfg.evaluation.tokenizer) for m in measurements}
    return Comparison(run_dir, cfg, Path(data or cfg.data.eval_file), references, batch_size, repeats, measurements,
                      scores, notes, (load_before, load_average()))


def read_dev(cfg: RunConfig, data: Optional[Path], examples: int) -> list:
    from .datafiles import check_data_file

    path = data or cfg.data.eval_file
    if path is None:
        raise CompareError("the run has no data.eval_file (dev data) to compare on; pass --data FILE with dialogue and summary columns")
    checked = check_data_file(Path(path), cfg.data, "eval_file")
    if checked.problems:
        raise CompareError("\n".join(checked.problems) + ("" if data else "\n(the run's data.eval_file; pass --data FILE to use another)"))
    checked.log_findings(log)
    return checked.examples[:examples]


def measure_in_own_process(variant: str, run_dir: Path, inputs: Path, repeats: int, batch_size: int) -> Measurement:
    command = [sys.executable, "-m", "sumtune.compare", "--variant", variant, "--run", str(run_dir),
               "--inputs", str(inputs), "--repeats", str(repeats), "--batch-size", str(batch_size)]
    log.info("measuring %s in its own process", variant)
    done = subprocess.run(command, capture_output=True, text=True, env=child_environment())
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise VariantFailed(f"measuring the {variant} variant of {run_dir} failed (its process exited with "
                            f"{done.returncode}); the end of its output:\n{done.stderr[-3000:]}")
    return Measurement(**json.loads(lines[-1]))


def child_environment() -> dict:
    """This process's environment, with the directory sumtune is imported from first on PYTHONPATH
    (so the variant runs the same sumtune, installed or not)."""
    package_root = str(Path(__file__).resolve().parents[1])
    paths = [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != package_root]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


# --- one variant, in this process ------------------------------------------------------------------


def measure(variant: str, run_dir: Path, dialogues: list[str], repeats: int, batch_size: int) -> Measurement:
    import peft  # noqa: F401  (imports are not loading: every variant pays them before its clock starts)
    import torch
    import transformers

    from .generate import generate_summaries

    getattr(transformers, load_run_config(run_dir).arch.auto_class)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = peak_rss_mib()
    started = time.perf_counter()
    model, tokenizer, cfg = VARIANTS[variant](run_dir)
    if cuda:
        torch.cuda.synchronize()
    load_time = time.perf_counter() - started
    parameters, trainable = parameter_counts(model)

    cfg = cfg.model_copy(update={"generation": cfg.generation.model_copy(update={"batch_size": batch_size, "max_tokens_per_batch": None})})
    batches = [dialogues[start:start + batch_size] for start in range(0, len(dialogues), batch_size)]
    generate_summaries(model, tokenizer, batches[0], cfg, progress=False)  # warm-up, untimed
    samples, seconds, tokens, predictions = [], 0.0, 0, []
    for _ in range(repeats):
        predictions = []
        for batch in batches:
            counts: list[int] = []
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
            predictions += generate_summaries(model, tokenizer, batch, cfg, progress=False, new_tokens=counts)
            if cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - started
            samples += [elapsed / len(batch)] * len(batch)
            seconds += elapsed
            tokens += sum(counts)
    return Measurement(
        variant=variant, parameters=parameters, trainable=trainable, load_time_s=load_time,
        memory_before_load_mib=before,
        peak_memory_mib=torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mib(),
        latency_p50_ms=percentile(samples, 50) * 1000, latency_p95_ms=percentile(samples, 95) * 1000,
        tokens_per_s=tokens / seconds if seconds else 0.0, generated_tokens=tokens // repeats,
        device=torch.cuda.get_device_name() if cuda else "cpu", threads=torch.get_num_threads(),
        memory_kind="CUDA max allocated" if cuda else "peak RSS of the process",
        predictions=predictions,
    )


def load_adapter(run_dir: Path):
    from .trained import load

    trained = load(run_dir)
    return trained.model, trained.tokenizer, trained.config


def load_merged(run_dir: Path):
    model, tokenizer, cfg = load_adapter(run_dir)
    return model.merge_and_unload(), tokenizer, cfg


def load_base(run_dir: Path):
    """The model the run started from, with the run's tokenizer, as ``sumtune.trained`` rebuilds it
    under the adapter: a scratch run's saved init (a full fine-tuning run keeps none: rebuilt from the
    config with the run's seed); a pretrained checkpoint at the run's revision, quantized as trained,
    with embedding rows made for the tokens training added."""
    import torch
    import transformers

    from .loading import build_scratch_model, built_for_tokenizer, load_pretrained_model, make_room_for_new_tokens
    from .trained import _quantization_as_trained, added_token_ids

    cfg = load_run_config(run_dir)
    manifest = load_manifest(Run(cfg.name, run_dir.name, run_dir.parent.parent))
    tokenizer = getattr(transformers, cfg.arch.tokenizer_class).from_pretrained(str(run_dir))
    auto_class = getattr(transformers, cfg.arch.auto_class)
    saved_init = run_dir / "base_model" / "config.json"
    if cfg.model.init == "scratch" and saved_init.is_file():
        model = auto_class.from_pretrained(str(saved_init.parent), use_safetensors=True, dtype="auto")
    elif cfg.model.init == "scratch":
        transformers.set_seed(cfg.training.seed)
        model = build_scratch_model(cfg, tokenizer)
        if not built_for_tokenizer(cfg):
            make_room_for_new_tokens(model, tokenizer, added_token_ids(tokenizer, cfg, manifest))
    else:
        revision = cfg.model.revision or manifest.get("checkpoint_commit")
        model = load_pretrained_model(cfg.model_copy(update={"model": cfg.model.model_copy(update={"revision": revision})}),
                                      _quantization_as_trained(manifest, []))
        make_room_for_new_tokens(model, tokenizer, added_token_ids(tokenizer, cfg, manifest))
    if torch.cuda.is_available() and getattr(model, "hf_device_map", None) is None:
        model = model.to("cuda")
    return model.eval(), tokenizer, cfg


VARIANTS = {"base": load_base, "adapter": load_adapter, "merged": load_merged, "fine-tuned": load_adapter}


def parameter_counts(model) -> tuple[int, int]:
    """(total, trainable): trainable = what takes gradients when the variant is trained further: every
    parameter of a plain model; under PEFT the adapter's alone (LoRA matrices, added token rows)."""
    if hasattr(model, "peft_config"):
        from peft import get_peft_model_state_dict

        adapter = get_peft_model_state_dict(model, save_embedding_layers=False)
        return model.get_nb_trainable_parameters()[1], sum(tensor.numel() for tensor in adapter.values())
    total = model.num_parameters()  # counts 4-bit packed weights as the parameters they hold
    return total, total


def peak_rss_mib() -> float:
    """This process's peak resident set size so far. On Linux from /proc (VmHWM): getrusage's ru_maxrss
    keeps the parent's peak across fork and exec, so a variant started from a big process (a test run
    that trained a model) would report the parent's memory. Elsewhere getrusage (macOS counts bytes)."""
    try:
        status = Path("/proc/self/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def percentile(samples: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# --- the report ------------------------------------------------------------------------------------


def markdown(comparison: Comparison) -> str:
    c = comparison
    rows = c.rows()
    lines = [f"# sumtune compare: {c.run_dir.name}", ""]
    lines += [f"Note: {note}." for note in c.notes] + ([""] if c.notes else [])
    lines += ["| " + " | ".join(header for header, _ in COLUMNS.values()) + " |",
              "|---|" + "---:|" * (len(COLUMNS) - 1)]
    lines += ["| " + " | ".join(form.format(row[key]) for key, (_, form) in COLUMNS.items()) + " |" for row in rows]
    lines += ["", *(f"- {key}: {value}" for key, value in facts(c).items())]
    return "\n".join(lines) + "\n"


def facts(c: Comparison) -> dict:
    cfg, gen, first = c.cfg, c.cfg.generation, c.measurements[0]
    batches = -(-len(c.references) // c.batch_size)
    found = {
        "run": f"{c.run_dir} ({cfg.model.architecture}, {cfg.arch.kind}; base {describe_base(cfg, c.run_dir)})",
        "data": f"{c.data}, the first {len(c.references)} examples (dialogue → summary)",
        "generation (every variant)": (f"batch size {c.batch_size} ({batches} batch(es)), num_beams {gen.num_beams}, "
                                       f"max_new_tokens {gen.max_new_tokens}, no_repeat_ngram_size {gen.no_repeat_ngram_size}, "
                                       f"length_penalty {gen.length_penalty}, greedy/beam (no sampling)"),
        "latency": (f"one warm-up batch untimed, then {c.repeats} repeat(s) of the same batch(es); a batch's wall time ÷ "
                    "its size is one per-example sample (tokenizing, generating, decoding); p50/p95 over the samples"),
        "tokens/s": "generated tokens (each summary up to and including its stop token) ÷ timed generation time; "
                    "generated tokens: per pass over the examples",
        "memory": (f"peak memory: {first.memory_kind}, each variant in its own process; memory before load: that "
                   "process's peak RSS after importing torch, transformers and peft, before the model"),
        "load time": ("wall time from the run directory to a model ready for generate (tokenizer included; torch, "
                      "transformers and peft already imported); merged includes the merge"),
        "trainable": "parameters that take gradients when the variant is trained further: all of a plain model; "
                     "under PEFT only the adapter's (LoRA matrices and added token rows)",
        "ROUGE": f"sumtune.metrics.rouge, evaluation.tokenizer {cfg.evaluation.tokenizer} "
                 f"(used: {c.scores[first.variant].tokenizer}), F1",
    }
    by_name = {m.variant: m for m in c.measurements}
    if "merged" in by_name:
        same = sum(a == b for a, b in zip(by_name["merged"].predictions, by_name["adapter"].predictions))
        found["merged = adapter"] = f"{same} of {len(c.references)} summaries identical"
    found["machine"] = (f"{machine_line(first)}; load average (1, 5, 15 min) {c.load_average[0]} before, "
                        f"{c.load_average[1]} after (other processes on a shared machine slow every variant unevenly)")
    found["versions"] = versions_line("torch", "transformers", "peft", "bitsandbytes")
    return found


def describe_base(cfg: RunConfig, run_dir: Path) -> str:
    if cfg.model.init == "pretrained":
        return f"{cfg.model.checkpoint}"
    if (run_dir / "base_model" / "config.json").is_file():
        return f"the run's random init ('{cfg.model.size}' preset, base_model/)"
    return f"a random init of the '{cfg.model.size}' preset rebuilt with seed {cfg.training.seed} (the run kept none)"


def machine_line(measured: Measurement) -> str:
    gpu = f"GPU {measured.device}" if measured.device != "cpu" else "no GPU used"
    return (f"{cpu_name()}, {os.cpu_count()} CPU cores, torch threads {measured.threads}, {gpu}; {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def write(comparison: Comparison, out: Path) -> tuple[Path, Path]:
    """compare.md and compare.csv (with the machine line in every row) in ``out``."""
    machine = machine_line(comparison.measurements[0])
    md = write_text_atomic(Path(out) / "compare.md", markdown(comparison))
    csv = write_csv_atomic(Path(out) / "compare.csv", [{**row, "machine": machine} for row in comparison.rows()],
                           [*COLUMNS, "machine"])
    return md, csv


# --- the variant's process -------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Measure one variant of a run (used by `sumtune compare`); prints one JSON line.")
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--inputs", type=Path, required=True, help="JSON list of dialogues")
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    dialogues = json.loads(args.inputs.read_text(encoding="utf-8"))
    measurement = measure(args.variant, args.run, dialogues, args.repeats, args.batch_size)
    print(json.dumps(asdict(measurement), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
