"""What every benchmark report shares: the machine it ran on, and how it is printed and saved
(imported by the scripts beside it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

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


def machine_fact(load_before: str) -> str:
    return f"{machine_line()}; load average (1, 5, 15 min) {load_before} before, {load_average()} after"


def publish(report: str, out: Optional[Path]) -> None:
    """Print the Markdown report, and also write it to `out` when given."""
    print("\n" + report, flush=True)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
        print(f"wrote {out}")
