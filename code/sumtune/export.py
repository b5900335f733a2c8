"""A trained run as a directory that plain ``transformers`` (and ``peft``, for an adapter) load without sumtune.

    sumtune export models/tiny_bart_20250101-120000 --out exports/tiny_bart
    sumtune export tiny_bart --out exports/tiny_bart_merged --merge

The run is rebuilt by ``sumtune.trained.load`` (base, added token rows, quantization, adapter), then
saved as safetensors with its tokenizer, a generation config holding sumtune's generation settings
(beams, length, stop ids, decoder start) and a model card (README.md) whose loading lines are tested.
What goes in depends on the run (``LAYOUTS``):

- ``--merge``: the adapter folded into the weights (PEFT's ``merge_and_unload``): one plain model.
- an adapter: the adapter, plus ``base/``, the base exactly as the adapter needs it, whenever that is
  not the published checkpoint itself: a scratch run's random init, a base whose embedding grew rows
  for added tokens (speaker tags such as ``#Person1#``), a 4-bit base. Otherwise the card names the
  checkpoint and revision.
- a full fine-tuning run: the fine-tuned model (there is no adapter to merge).

The output must not exist or be empty; it is written through a staging directory, so an interrupted
export leaves nothing half-written behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .artifacts import Run, load_manifest
from .modelcard import model_card
from .records import atomic_directory, write_text_atomic
from .trained import RunError, find_run_dir, load_run_config

log = logging.getLogger("sumtune")


class ExportError(ValueError):
    """The run or the output directory cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Layout:
    contents: str  # for the model card
    peft: bool  # loaded through PeftModel


LAYOUTS = {
    "merged": Layout("the model with the adapter merged into its weights (safetensors), tokenizer, generation config", False),
    "full": Layout("the fully fine-tuned model (safetensors), tokenizer, generation config", False),
    "adapter+base": Layout("the LoRA adapter (safetensors), base/ (the base model the adapter was trained on, with "
                           "its added token rows), tokenizer, generation config", True),
    "adapter": Layout("the LoRA adapter (safetensors), tokenizer, generation config; the base is the published "
                      "checkpoint", True),
}


def export(target: str | Path, out: Path, merge: bool = False) -> Path:
    """Write the run ``target`` (a run directory, config path or config name) to ``out``; return it."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} already exists and is not an empty directory; choose a new --out, or remove it first")
    try:
        run_dir = find_run_dir(target)
    except RunError as exc:
        raise ExportError(str(exc)) from None
    if out.resolve().is_relative_to(run_dir.resolve()):
        raise ExportError(f"--out {out} is inside the run {run_dir}; export writes nothing into a run: choose a directory outside it")
    cfg = load_run_config(run_dir)
    manifest = load_manifest(Run(cfg.name, run_dir.name, run_dir.parent.parent))
    status = manifest.get("status", "no run.json")
    if status != "completed":
        raise ExportError(f"{run_dir} did not complete (status: {status}); export a completed run")
    if merge and manifest.get("quantization"):
        raise ExportError(f"{run_dir} trained on a {manifest['quantization']} base: merging the adapter into quantized "
                          "weights rounds it away. Export it without --merge (the adapter with its 4-bit base)")

    from .trained import load as load_trained

    trained = load_trained(run_dir)
    with atomic_directory(out) as staging:
        layout = save_weights(trained, staging, merge)
        trained.tokenizer.save_pretrained(str(staging))
        if cfg.task == "summarization":  # a classifier does not generate: its labels are in the model's config
            export_generation_config(trained).save_pretrained(str(staging))
        card = model_card(cfg, manifest, run_dir.name, plain_loading(cfg, manifest, layout, out),
                          LAYOUTS[layout].contents, LAYOUTS[layout].peft, exported=datetime.now())
        write_text_atomic(staging / "README.md", card)
    log.info("exported %s to %s (%s)", run_dir, out, layout)
    return out


def save_weights(trained, directory: Path, merge: bool) -> str:
    """Save the model as the layout calls for; return the layout's key (``LAYOUTS``)."""
    model = trained.model
    if not hasattr(model, "peft_config"):
        if merge:
            log.info("%s is a full fine-tuning run: there is no adapter to merge; exporting the fine-tuned model", trained.run)
        model.save_pretrained(str(directory))
        return "full"
    if merge:
        model.merge_and_unload().save_pretrained(str(directory))
        return "merged"
    model.save_pretrained(str(directory), save_embedding_layers=False)  # the adapter; base/ holds the rows
    if not base_needed(trained):
        return "adapter"
    model.unload().save_pretrained(str(directory / "base"))  # the base as sumtune rebuilt it, adapter removed
    return "adapter+base"


def base_needed(trained) -> bool:
    """Whether the base the adapter needs differs from the published checkpoint."""
    from .trained import added_token_ids

    cfg, manifest = trained.config, trained.manifest
    return (cfg.model.init == "scratch" or bool(manifest.get("quantization"))
            or bool(added_token_ids(trained.tokenizer, cfg, manifest)))


def export_generation_config(trained):
    """The model's generation config with sumtune's settings on top: ``generate()`` with it alone
    writes what ``sumtune.load(...).summarize`` writes."""
    import copy

    from .generate import generation_settings

    model = trained.model
    config = copy.deepcopy(model.generation_config)
    config.update(**generation_settings(model, trained.tokenizer, trained.config))
    return config


# --- the model card's loading lines ----------------------------------------------------------------


def plain_loading(cfg, manifest: dict, layout: str, out: Path) -> str:
    """The card's "Loading" section: Python that loads the export and summarizes one dialogue as sumtune does."""
    auto_class = cfg.arch.auto_class
    remote = ", trust_remote_code=True" if cfg.model.trust_remote_code else ""
    if layout in ("merged", "full"):
        model_lines = [f"model = {auto_class}.from_pretrained(EXPORT{remote}).eval()"]
    else:
        base = "f\"{EXPORT}/base\"" if layout == "adapter+base" else _checkpoint_args(cfg, manifest)
        head = f", num_labels={head_size(cfg)}" if cfg.task == "classification" and layout == "adapter" else ""
        model_lines = [f"base = {auto_class}.from_pretrained({base}{remote}{head})",
                       "model = PeftModel.from_pretrained(base, EXPORT).eval()"]
    if cfg.task == "classification":
        return _classify_loading(cfg, manifest, layout, out, model_lines, remote)
    imports = ["import torch", f"from transformers import {auto_class}, AutoTokenizer, GenerationConfig"]
    if LAYOUTS[layout].peft:
        imports.append("from peft import PeftModel")
    code = [
        *imports,
        "",
        f"EXPORT = {str(out)!r}  # this directory",
        f"tokenizer = AutoTokenizer.from_pretrained(EXPORT{remote})",
        *model_lines,
        "generation = GenerationConfig.from_pretrained(EXPORT)  # sumtune's beams, lengths and stop tokens",
        "",
        "",
        "def summarize(dialogue: str) -> str:",
        *(f"    {line}" for line in prompt_lines(cfg)),
        "    inputs = torch.tensor([ids], device=model.device)",
        "    with torch.inference_mode():",
        "        output = model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), generation_config=generation)",
        f"    return tokenizer.decode(output[0{', inputs.shape[1]:' if cfg.arch.kind == 'causal' else ''}], "
        "skip_special_tokens=True).strip()",
        "",
        "",
        'print(summarize("#Person1#: ...\\n#Person2#: ..."))',
    ]
    needs = ", ".join(["`transformers`"] + (["`peft`"] if LAYOUTS[layout].peft else [])
                      + ([f"`bitsandbytes` (the base is {manifest['quantization']}, as trained)"] if manifest.get("quantization") else []))
    return "\n".join([
        f"Needs {needs} (no sumtune). These lines build the prompt as sumtune did in training and generate with "
        f"its settings, so they write what `sumtune.load(...).summarize` writes for dialogues that fit "
        f"data.max_source_length ({cfg.data.max_source_length} tokens with the prompt; sumtune shortens longer "
        "dialogues at a token boundary, keeping the prompt around them).",
        "",
        "```python",
        *code,
        "```",
    ])


def head_size(cfg) -> int:
    """The classification head's outputs: one per label id (integer labels keep their values as ids)."""
    from .classify import model_label_facts

    return model_label_facts(cfg)["num_labels"]


def _classify_loading(cfg, manifest: dict, layout: str, out: Path, model_lines: list[str], remote: str) -> str:
    """The "Loading" section of a classification run: the label of one text, as ``classify`` gives it."""
    from .datafiles import label_ids

    imports = ["import torch", f"from transformers import {cfg.arch.auto_class}, AutoTokenizer"]
    if LAYOUTS[layout].peft:
        imports.append("from peft import PeftModel")
    labels = {index: label for label, index in label_ids(cfg.data.labels).items()}
    code = [
        *imports,
        "",
        f"EXPORT = {str(out)!r}  # this directory",
        f"tokenizer = AutoTokenizer.from_pretrained(EXPORT{remote})",
        *model_lines,
        f"LABELS = {labels!r}  # id -> label, as trained",
        "",
        "",
        "def classify(text: str) -> str:",
        f"    inputs = tokenizer(text, truncation=True, max_length={cfg.data.max_source_length}, return_tensors='pt').to(model.device)",
        "    with torch.inference_mode():",
        "        logits = model(**inputs).logits[0]",
        "    return LABELS[max(LABELS, key=lambda i: logits[i].item())]",
        "",
        "",
        'print(classify("..."))',
    ]
    needs = ", ".join(["`transformers`"] + (["`peft`"] if LAYOUTS[layout].peft else []))
    return "\n".join([
        f"Needs {needs} (no sumtune). These lines give what `sumtune.load(...).classify` gives for texts that fit "
        f"data.max_source_length ({cfg.data.max_source_length} tokens with [CLS] and [SEP]).",
        "",
        "```python",
        *code,
        "```",
    ])


def _checkpoint_args(cfg, manifest: dict) -> str:
    if manifest.get("checkpoint_dir"):  # a local base (an imported GGUF, a fetched checkpoint): its directory
        return repr(manifest["checkpoint_dir"])
    revision = cfg.model.revision or manifest.get("checkpoint_commit")
    return repr(cfg.model.checkpoint) + (f", revision={revision!r}" if revision else "")


def prompt_lines(cfg) -> list[str]:
    """Lines that set ``ids``, the prompt's token ids, as ``sumtune.data.encode_prompt`` makes them."""
    from .data import DEFAULT_CHAT_PROMPT, DEFAULT_SYSTEM_PROMPT, DEFAULT_TLDR_TEMPLATE, prompt_needs_specials

    pre, arch = cfg.preprocessing, cfg.arch
    prompts = {
        "plain": "prompt = dialogue",
        "prefix": f"prompt = {(pre.prefix if pre.prefix is not None else arch.prefix)!r} + dialogue",
        "tldr": f"prompt = {(pre.prompt_template or DEFAULT_TLDR_TEMPLATE)!r}.format(dialogue=dialogue)",
        "chat": (f"messages = [{{\"role\": \"system\", \"content\": {(pre.system_prompt or DEFAULT_SYSTEM_PROMPT)!r}}},\n"
                 f"            {{\"role\": \"user\", \"content\": {(pre.prompt_template or DEFAULT_CHAT_PROMPT)!r}"
                 ".format(dialogue=dialogue)}]\n"
                 "prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)"),
    }
    lines = prompts[arch.prompt_style].split("\n")
    if arch.kind == "seq2seq":  # every source ends in one EOS (added when the tokenizer does not add it)
        return [*lines, 'ids = tokenizer(prompt)["input_ids"]',
                "if ids[-1] != tokenizer.eos_token_id:", "    ids.append(tokenizer.eos_token_id)"]
    return [*lines, f'ids = tokenizer(prompt, add_special_tokens={prompt_needs_specials(arch)})["input_ids"]']
