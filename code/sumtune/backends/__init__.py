"""Which backend trains a run, decided once, explicitly, and recorded.

    plan = resolve(cfg, probe_machine(cfg))     # pure function of config + machine facts
    loaded = load(plan, cfg, texts)             # the chosen module's load()

A backend is one module in this package with ``load(cfg, plan, texts, scratch_dir) -> Loaded``; add
it to ``BACKEND_MODULES``. ``qlora.use_unsloth: true`` is a wish: unsloth is used only on CUDA, when it
imports, for a family the registry marks as accelerated; otherwise PEFT, and the reason says why.
``backend: unsloth|peft|full`` insists, and an impossible insistence is an error before any model loads.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Optional

from ..config import RunConfig

BACKEND_MODULES = {
    "peft": "sumtune.backends.peft",
    "full": "sumtune.backends.full",
    "unsloth": "sumtune.backends.unsloth",
}

UNSLOTH_MIN_CAPABILITY = (7, 0)  # Triton, which unsloth's kernels are written in, needs Volta or newer

UnslothStatus = Literal["ok", "missing", "broken", "not checked"]


@dataclass(frozen=True)
class Machine:
    """Facts about this machine that decide the backend (injected in tests)."""

    cuda: bool = False
    cuda_capability: Optional[tuple[int, int]] = None
    gpu_name: Optional[str] = None
    bitsandbytes: bool = False
    unsloth: UnslothStatus = "not checked"
    unsloth_detail: str = ""  # version when ok, the error when broken


@dataclass(frozen=True)
class Plan:
    backend: Literal["unsloth", "peft", "full"]
    quantization: Optional[Literal["4bit", "8bit"]]
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


class BackendUnavailable(RuntimeError):
    """The config insists on a backend this machine cannot run."""


def resolve(cfg: RunConfig, machine: Machine) -> Plan:
    if cfg.backend == "full" or not cfg.qlora.use_qlora:
        why = "backend: full set in config" if cfg.backend == "full" else "qlora.use_qlora is false"
        wish = "; qlora.use_unsloth ignored: sumtune uses unsloth for LoRA only" if cfg.qlora.use_unsloth else ""
        return Plan("full", None, f"{why}: training all weights{wish}")
    quantization, quant_note = _quantization(cfg, machine)
    blocker = unsloth_blocker(cfg, machine)
    if cfg.backend == "unsloth":
        if blocker:
            raise BackendUnavailable(f"backend: unsloth was requested, but {blocker}. Set backend: auto to fall back to PEFT.")
        return Plan("unsloth", quantization, f"backend: unsloth set in config; unsloth {machine.unsloth_detail}{quant_note}")
    if cfg.backend == "peft":
        return Plan("peft", quantization, f"backend: peft set in config{quant_note}")
    if not cfg.qlora.use_unsloth:
        return Plan("peft", quantization, f"LoRA via PEFT (qlora.use_unsloth is false){quant_note}")
    if blocker:
        return Plan("peft", quantization, f"use_unsloth requested, but {blocker}: LoRA via PEFT instead{quant_note}")
    return Plan("unsloth", quantization,
                f"unsloth {machine.unsloth_detail} on {machine.gpu_name or 'CUDA'} accelerates {cfg.model.architecture}{quant_note}")


def unsloth_blocker(cfg: RunConfig, machine: Machine) -> Optional[str]:
    """Why unsloth cannot train this config here, or None when it can."""
    arch = cfg.arch
    if arch.kind == "seq2seq":
        return f"unsloth does not support encoder-decoder models ({arch.family})"
    if arch.kind == "encoder":  # its kernels and its 4-bit loader are written for decoder-only language models
        return f"unsloth accelerates decoder-only language models, not {arch.family} sequence classification"
    if not arch.unsloth_fast_path:
        return f"unsloth has no fast path for {arch.family}"
    if not machine.cuda:
        return "there is no CUDA GPU on this machine"
    if machine.cuda_capability is not None and machine.cuda_capability < UNSLOTH_MIN_CAPABILITY:
        have = ".".join(map(str, machine.cuda_capability))
        return f"unsloth's kernels need compute capability 7.0 or newer ({machine.gpu_name or 'this GPU'} has {have})"
    if machine.unsloth == "missing":
        return "unsloth is not installed (run ./install_unsloth.sh)"
    if machine.unsloth == "broken":
        return f"unsloth failed to import ({machine.unsloth_detail})"
    if machine.unsloth != "ok":
        return "unsloth was not checked"
    return None


def _quantization(cfg: RunConfig, machine: Machine) -> tuple[Optional[str], str]:
    if not cfg.qlora.load_in_4bit:
        return None, ""
    if not machine.cuda:
        return None, "; load_in_4bit ignored: 4-bit QLoRA needs CUDA, training in full precision"
    if not machine.bitsandbytes:
        return None, "; load_in_4bit ignored: bitsandbytes is not usable, training in full precision"
    return "4bit", "; 4-bit NF4 base weights"


def wants_unsloth(cfg: RunConfig) -> bool:
    return cfg.backend == "unsloth" or (cfg.backend == "auto" and cfg.qlora.use_unsloth and cfg.qlora.use_qlora)


def probe_machine(cfg: Optional[RunConfig] = None, check_unsloth: Optional[bool] = None) -> Machine:
    """Read this machine's facts. unsloth is imported only on CUDA, and only when ``check_unsloth`` is
    true (``sumtune doctor``) or, by default, when the config wants it for a family it accelerates."""
    import torch

    cuda = torch.cuda.is_available()
    capability = torch.cuda.get_device_capability(0) if cuda else None
    gpu_name = torch.cuda.get_device_name(0) if cuda else None
    if check_unsloth is None:
        check_unsloth = cfg is not None and wants_unsloth(cfg) and cfg.arch.unsloth_fast_path
    unsloth, detail = "not checked", ""
    if cuda and check_unsloth:
        from .unsloth import probe

        unsloth, detail = probe()
    return Machine(cuda, capability, gpu_name, _bitsandbytes_usable() if cuda else False, unsloth, detail)


def _bitsandbytes_usable() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception:
        return False
    return True


def load(plan: Plan, cfg: RunConfig, texts: list[str], scratch_dir: Optional[Path] = None):
    module = importlib.import_module(BACKEND_MODULES[plan.backend])
    return module.load(cfg, plan, texts, scratch_dir)
