"""What ``training.precision`` and ``generation.precision`` resolve to on this machine, and why.

``auto`` is bf16 autocast where the hardware multiplies bfloat16 natively: a GPU that supports it, or a
CPU with AVX512-BF16 or AMX-BF16; fp32 elsewhere. Measured on a CPU with both (docs/benchmarks/bf16_cpu.md):
the same loss, and training steps faster from d_model 256 on; the tiny preset (d_model 64), whose steps
are mostly fixed costs, is slower in bf16, so config/base/tiny.yaml trains in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

from .machine import cpu_bf16_flags


@dataclass(frozen=True)
class Precision:
    """What a precision setting resolved to on this machine, and why (run.json's ``precision`` and
    ``generation_precision``)."""

    requested: str
    used: str  # fp32, bf16 (autocast) or fp16 (autocast)
    reason: str
    cpu_bf16: tuple[str, ...] = ()  # the CPU's native bfloat16 flags (CPU runs)

    def facts(self) -> dict:
        return dict(requested=self.requested, used=self.used, reason=self.reason, cpu_bf16=list(self.cpu_bf16))


def resolve_precision(precision: str, cuda: bool, key: str = "training.precision", cpu_flags=None) -> Precision:
    """``auto``: bf16 autocast on a GPU that supports bf16, and on a CPU that multiplies bf16 natively
    (AVX512-BF16 or AMX-BF16; measured faster with the same loss, docs/benchmarks/bf16_cpu.md); fp32
    elsewhere (without those instructions torch emulates bf16, which is slower). ``key``: the config key,
    for the reason; ``cpu_flags``: the CPU's feature flags, read from the machine when None."""
    native = () if cuda else tuple(cpu_bf16_flags(cpu_flags))
    if precision != "auto":
        note = (" (this CPU has no AVX512-BF16 or AMX-BF16: torch emulates bf16, slower than fp32)"
                if precision == "bf16" and not cuda and not native else "")
        return Precision(precision, precision, f"{key}: {precision}{note}", native)
    if cuda:
        import torch

        supported = torch.cuda.is_bf16_supported()
        return Precision("auto", "bf16" if supported else "fp32",
                         "the GPU supports bf16" if supported else "the GPU has no bf16")
    if native:
        return Precision("auto", "bf16", f"the CPU multiplies bf16 natively ({', '.join(native)})", native)
    return Precision("auto", "fp32", "the CPU has no AVX512-BF16 or AMX-BF16 (bf16 would be emulated, slower)")
