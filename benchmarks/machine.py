"""What every benchmark report says about the machine it ran on (imported by the scripts beside it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from sumtune.train import library_versions


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()} (default), "
            f"no GPU used; Python {platform.python_version()}")


def load_average() -> str:
    """1, 5 and 15 minute load averages: other processes on a shared machine show up here."""
    try:
        return " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def versions_line(*packages: str) -> str:
    return ", ".join(f"{name} {version}" for name, version in library_versions().items() if name in packages)
