"""The model card (README.md) of a trained run and of an export: what was trained from what, on which
data, with which config, when, how well, and the exact lines that load it.

``sumtune train`` writes it into the run's model directory (instead of PEFT's empty template), and
``sumtune export`` into the exported directory, where the loading lines are plain transformers/peft.
Standard library only: the card is made from the run's config.yaml and run.json.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

from .artifacts import RUN_ID, TIMESTAMP_FORMAT, run_task
from .config import RunConfig

TASK_TITLES = {"summarization": "Dialogue summarization", "classification": "Text classification"}


def model_card(cfg: RunConfig, manifest: dict, run_id: str, loading: str, contents: str, peft: bool,
               exported: Optional[datetime] = None) -> str:
    """The card as Markdown; ``loading`` is the Markdown of its "Loading" section, ``contents`` one line
    saying what the directory holds, ``peft`` whether it is loaded through peft (an adapter)."""
    task = run_task(manifest)
    tags = ["sumtune", task, cfg.arch.kind] + (["lora", "peft"] if peft else [])
    header = ["---", f"library_name: {'peft' if peft else 'transformers'}"]
    if cfg.model.init == "pretrained":
        header.append(f"base_model: {published_id(cfg.model.checkpoint)}")
    header += ["tags:", *(f"- {tag}" for tag in tags), "---", ""]
    lines = [
        *header,
        f"# {run_id}",
        "",
        f"{TASK_TITLES[task]}: {cfg.model.architecture} ({cfg.arch.kind}), {method(cfg, manifest)}, trained with sumtune.",
        "",
        "| | |",
        "|---|---|",
        f"| run | {run_id} |",
        f"| base checkpoint | {base_checkpoint(cfg, manifest)} |",
        f"| method | {method(cfg, manifest)}; backend {manifest.get('backend', '?')} ({manifest.get('backend_reason', 'not recorded')}) |",
        f"| quantization while training | {manifest.get('quantization') or 'none'} |",
        f"| parameters | {_count(manifest.get('trainable_params'))} trained of {_count(manifest.get('total_params'))} |",
        f"| training data | {cfg.data.train_file} |",
        f"| dev data | {cfg.data.eval_file or 'none'}{_sha(manifest)} |",
        f"| training | {_training_facts(manifest)} |",
        f"| trained | {trained_on(run_id)} |",
        *([f"| exported | {exported:%Y-%m-%d %H:%M:%S} |"] if exported else []),
        f"| contents | {contents} |",
        "",
        "## Metrics",
        "",
        *metrics_lines(cfg, manifest),
        "",
        "## Loading",
        "",
        loading.rstrip(),
        "",
        "## Config",
        "",
        "The run's `config.yaml` (`sumtune train` with it trains the same model again):",
        "",
        "```yaml",
        cfg.to_yaml().rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def method(cfg: RunConfig, manifest: dict) -> str:
    if manifest.get("backend") == "full":
        return "full fine-tuning"
    q = cfg.qlora
    targets = ", ".join(q.target_modules) if isinstance(q.target_modules, list) else \
        f"target_modules {q.target_modules} (adapter_config.json names them)"
    added = len(manifest.get("added_token_ids") or [])
    rows = f", {added} added token rows trained" if added else ""
    return f"LoRA r={q.lora_rank} alpha={q.lora_alpha} on {targets}{rows}"


def base_checkpoint(cfg: RunConfig, manifest: dict) -> str:
    if cfg.model.init == "scratch":
        return f"none: built from scratch ('{cfg.model.size}' preset, random init), tokenizer trained on the data"
    revision = cfg.model.revision or manifest.get("checkpoint_commit")
    gguf = manifest.get("gguf")
    imported = (f", dequantized from the GGUF {Path(gguf['source']).name} ({gguf['quantization']}, sha256 "
                f"{gguf['sha256'][:12]}…): the weights keep the quantisation's rounding") if gguf else ""
    return f"{cfg.model.checkpoint}" + (f" @ {revision}" if revision else "") + imported


def published_id(checkpoint: str) -> str:
    """The Hub id a fetched checkpoint was published under (the card's ``base_model``), else the checkpoint."""
    from .checkpoints import FETCHABLE, fetched_name

    row = FETCHABLE.get(fetched_name(checkpoint))
    return row.hub_id if row is not None else checkpoint


def trained_on(run_id: str) -> str:
    match = RUN_ID.match(run_id)
    if not match:
        return "unknown"
    return datetime.strptime(match["ts"][:15], TIMESTAMP_FORMAT).strftime("%Y-%m-%d %H:%M:%S")


def metrics_lines(cfg: RunConfig, manifest: dict) -> list[str]:
    metrics = manifest.get("metrics")
    if not metrics:
        return ["Not evaluated (the run had no dev data, or did not reach its evaluation)."]
    return METRICS_LINES[run_task(manifest)](cfg, metrics)


def _rouge_lines(cfg: RunConfig, metrics: dict) -> list[str]:
    return [
        f"ROUGE F1 on the dev data ({metrics.get('n_examples')} examples, tokenizer {metrics.get('tokenizer')}; "
        f"generation: {generation_facts(cfg)}):",
        "",
        "| ROUGE-1 | ROUGE-2 | ROUGE-L | score (sum) | empty predictions |",
        "|---:|---:|---:|---:|---:|",
        f"| {metrics['rouge1']:.4f} | {metrics['rouge2']:.4f} | {metrics['rougeL']:.4f} | {metrics['score']:.4f} "
        f"| {metrics.get('n_empty_predictions', 0)} |",
    ]


def _classification_lines(cfg: RunConfig, metrics: dict) -> list[str]:
    per_class = metrics.get("per_class") or {}
    return [
        f"On the dev data ({metrics.get('n_examples')} examples); the majority baseline always predicts "
        f"{metrics.get('majority_label')!r}:",
        "",
        "| accuracy | macro-F1 | majority-class macro-F1 |",
        "|---:|---:|---:|",
        f"| {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} | {metrics['majority_macro_f1']:.4f} |",
        "",
        "| label | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
        *(f"| {label} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |"
          for label, s in per_class.items()),
    ]


METRICS_LINES = {"summarization": _rouge_lines, "classification": _classification_lines}  # by the run's task


def generation_facts(cfg: RunConfig) -> str:
    gen = cfg.generation
    return (f"num_beams {gen.num_beams}, max_new_tokens {gen.max_new_tokens}, no_repeat_ngram_size "
            f"{gen.no_repeat_ngram_size}, length_penalty {gen.length_penalty}")


def run_card(cfg: RunConfig, manifest: dict, run_id: str, run_dir) -> str:
    """The card of a run's own model directory, written at the end of training."""
    adapter = manifest.get("backend") != "full"
    contents = ("the LoRA adapter (safetensors), tokenizer, config.yaml" + (", base_model/ (the random init)"
                if cfg.model.init == "scratch" else "")) if adapter else "the fully fine-tuned model (safetensors), tokenizer, config.yaml"
    return model_card(cfg, manifest, run_id, run_loading(run_dir), contents, peft=adapter)


def run_loading(run_dir) -> str:
    """The "Loading" section of a run's own card: sumtune rebuilds it; export makes it plain."""
    return "\n".join([
        "With sumtune (rebuilds the base, the added token rows and the adapter exactly as trained):",
        "",
        "```python",
        "import sumtune",
        "",
        f"trained = sumtune.load({str(run_dir)!r})",
        'trained.summarize(["#Person1#: ...\\n#Person2#: ..."])',
        "```",
        "",
        "For a directory that plain `transformers` (and `peft`) load without sumtune:",
        f"`sumtune export {run_dir} --out DIR` (add `--merge` to fold the adapter into the weights).",
    ])


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "not recorded"


def _sha(manifest: dict) -> str:
    sha = manifest.get("eval_file_sha256")
    return f" (sha256 {sha[:12]}…)" if sha else ""


def _training_facts(manifest: dict) -> str:
    facts = [("steps", manifest.get("train_steps")), ("train loss", manifest.get("train_loss")),
             ("train time (s)", manifest.get("train_time_s"))]
    return ", ".join(f"{name} {value}" for name, value in facts if value is not None) or "not recorded"
