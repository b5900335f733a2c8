"""``sumtune doctor``: what this machine can run, and which backend each config would get here.

    sumtune doctor
    sumtune doctor config/model_configs/*.yaml --set backend=unsloth

Prints Python, torch, CUDA and the GPU, the libraries that decide the backend (bitsandbytes, unsloth)
and the ones the flow needs (transformers, peft, trl, kiwipiepy); where models live (the root of
models/, outputs/, logs/ and where it came from, SUMTUNE_MODEL_* pins, the Hugging Face cache that
holds pretrained base weights); then one line per config with the backend, quantization and reason
that ``backends.resolve`` gives on this machine. Loads no model; imports torch, and unsloth only on
CUDA (as training would).
"""

from __future__ import annotations

import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Callable, Sequence

from . import artifacts
from .backends import BackendUnavailable, Machine, probe_machine, resolve
from .config import ConfigError, load_config

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def run_doctor(config_paths: Sequence[Path] = (), overrides: Sequence[str] = (), out: Callable[[str], None] = print) -> int:
    """Print the report; 0, or 2 when a config cannot be read (its problems are printed in its place)."""
    started = time.perf_counter()
    import torch

    machine = probe_machine(check_unsloth=True)  # imports unsloth only when CUDA is available
    for name, value in environment_rows(torch, machine):
        out(f"{name:<13} {value}")
    out("where models live (the first that is set: a config's output.root or --set, $SUMTUNE_HOME, the current directory):")
    for name, value in where_models_live(config_paths, overrides):
        out(f"  {name:<13} {value}")
    exit_code = EXIT_OK
    if config_paths:
        out("configs (backend decided on this machine):")
    for path in config_paths:
        line, ok = config_line(Path(path), overrides, machine)
        out(f"  {line}")
        exit_code = exit_code if ok else EXIT_BAD_INPUT
    out(f"checked in {time.perf_counter() - started:.1f} s")
    return exit_code


def environment_rows(torch, machine: Machine) -> list[tuple[str, str]]:
    if machine.cuda:
        major, minor = machine.cuda_capability
        cuda = f"yes (CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s))"
        gpu = f"{machine.gpu_name} (compute capability {major}.{minor}, bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'})"
    else:
        cuda = "no" + ("" if torch.version.cuda else " (this torch is a CPU-only build)")
        gpu = "none"
    return [
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("CUDA", cuda),
        ("GPU", gpu),
        ("bitsandbytes", bitsandbytes_status(machine)),
        ("unsloth", unsloth_status(machine)),
        ("kiwipiepy", kiwipiepy_status()),
        ("transformers", installed("transformers")),
        ("peft", installed("peft")),
        ("trl", installed("trl")),
    ]


def where_models_live(config_paths: Sequence[Path] = (), overrides: Sequence[str] = ()) -> list[tuple[str, str]]:
    root, source = artifacts.default_root()
    rows = [("root", f"{root.resolve()} ({source})")]
    for path in config_paths:
        try:
            cfg = load_config(Path(path), list(overrides), check_files=False)
        except ConfigError:
            continue  # its problems are printed with the configs
        if cfg.output.root_source != source or cfg.output.root.resolve() != root.resolve():
            rows.append((cfg.name, f"{cfg.output.root.resolve()} ({cfg.output.root_source})"))
    pins = sorted((key, value) for key, value in os.environ.items() if key.startswith(artifacts.PIN_PREFIX))
    for key, value in pins:
        problem = artifacts.pin_problem(Path(value.strip()).expanduser()) if value.strip() else "empty: ignored"
        rows.append(("pin", f"{key}={value}" + (f" — {problem}" if problem else " (lookups by that name use this run)")))
    if not pins:
        rows.append(("pins", f"none (set {artifacts.PIN_PREFIX}<NAME>=models/RUN to pin a name to one run)"))
    rows.append(("base weights", hf_cache_line()))
    return rows


def hf_cache_line() -> str:
    """Pretrained checkpoints are read from the Hugging Face cache; runs keep only what training made."""
    from huggingface_hub import constants

    source = next((key for key in ("HF_HUB_CACHE", "HF_HOME") if os.environ.get(key)), "default")
    return (f"{constants.HF_HUB_CACHE} (Hugging Face cache, from {source}): pretrained base weights stay there, "
            "never copied into runs; a scratch run keeps its random init in models/RUN/base_model/")


def bitsandbytes_status(machine: Machine) -> str:
    found = installed("bitsandbytes")
    if not machine.cuda:
        return f"{found}; not used: 4-bit QLoRA needs CUDA"
    return f"{found}; 4-bit QLoRA available" if machine.bitsandbytes else f"{found}; not usable: 4-bit QLoRA off"


def unsloth_status(machine: Machine) -> str:
    if not machine.cuda:
        return "not checked: no CUDA"
    if machine.unsloth == "ok":
        return f"{machine.unsloth_detail}; imports"
    if machine.unsloth == "missing":
        return "not installed (./install_unsloth.sh installs a matching version)"
    return f"broken: {machine.unsloth_detail}"


def kiwipiepy_status() -> str:
    """Korean ROUGE tokenizes with kiwipiepy, whose model ships in the separate kiwipiepy_model package."""
    found = installed("kiwipiepy")
    if found == "not installed":
        return "not installed: Korean ROUGE needs it (pip install -e '.[korean]')"
    model = installed("kiwipiepy_model")
    return f"{found} (model {model})" if model != "not installed" else f"{found}; kiwipiepy_model missing: Korean ROUGE will fail"


def installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed" if find_spec(package) is None else "installed (version unknown)"


def config_line(path: Path, overrides: Sequence[str], machine: Machine) -> tuple[str, bool]:
    """``name: backend=… quantization=… — reason`` or the problem; and whether the config could be read."""
    try:
        cfg = load_config(path, list(overrides), check_files=False)
    except ConfigError as exc:
        return "; ".join(exc.problems), False
    try:
        plan = resolve(cfg, machine)
    except BackendUnavailable as exc:
        return f"{cfg.name}: cannot train here — {exc}", True
    return (f"{cfg.name}: task={cfg.task} ({cfg.model.architecture}) backend={plan.backend} "
            f"quantization={plan.quantization or 'none'} — {plan.reason}{task_note(cfg)}"), True


def task_note(cfg) -> str:
    """What a classification run will do beyond the backend: its heads, labels and dev split."""
    if cfg.task != "classification":
        return ""
    head = ", ".join(cfg.arch.head_modules)
    labels = ", ".join(map(str, cfg.data.labels)) if cfg.data.labels else "read from data.train_file"
    dev = f"data.eval_split {cfg.eval_split} of train_file (stratified)" if cfg.eval_split else "data.eval_file"
    weights = f"; class_weights {cfg.training.class_weights}" if cfg.training.class_weights else ""
    return f"; head {head} trained in full; labels: {labels}; dev: {dev}{weights}"
