"""Facts about the machine a run or a measurement happened on (standard library only): the CPU's name
and bfloat16 support, the load average, and the versions of the libraries that matter. run.json, ``sumtune compare`` and the
scripts in benchmarks/ all describe the machine with these."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterable, Optional

PACKAGES = ("sumtune", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes",
            "unsloth", "rouge-score", "kiwipiepy")


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# /proc/cpuinfo flags of x86 CPUs that multiply bfloat16 natively (Intel Cooper Lake and Sapphire Rapids
# on, AMD Zen 4 on); elsewhere torch runs bf16 through fp32 arithmetic with conversions, which is slower.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo: x86 ``flags``, ARM ``Features``); empty elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return set(value.split())
    except OSError:
        pass
    return set()


def cpu_bf16_flags(flags: Optional[Iterable[str]] = None) -> list[str]:
    """Which of ``CPU_BF16_FLAGS`` this CPU has (or ``flags`` has, when given)."""
    have = set(cpu_flags() if flags is None else flags)
    return [flag for flag in CPU_BF16_FLAGS if flag in have]


def load_average() -> str:
    """1, 5 and 15 minute load averages: other processes on a shared machine show up here."""
    try:
        return " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def library_versions() -> dict:
    """Python's and each of ``PACKAGES``' version; None for a package that is not installed."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


def versions_line(*packages: str) -> str:
    """``"torch 2.13.0, transformers 5.x"`` for those of ``packages`` that are installed."""
    return ", ".join(f"{name} {found}" for name, found in library_versions().items() if name in packages and found)
