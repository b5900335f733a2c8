"""install_unsloth.sh on a CPU host: fake nvidia-smi, a python wrapper that records `-m pip` instead of
running it, and SUMTUNE_FAKE_TORCH_CUDA to stand in for a CUDA torch."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "install_unsloth.sh"
TORCH_VERSION = version("torch")

PYTHON_WRAPPER = f"""#!/bin/bash
# Records `-m pip ...` (and the constraints file it is given) instead of running pip.
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
    echo "pip $*" >> "$PIP_RECORD"
    previous=""
    for arg in "$@"; do
        if [ "$previous" = "--constraint" ]; then cat "$arg" >> "$PIP_RECORD"; fi
        previous="$arg"
    done
    exit 0
fi
exec {sys.executable} "$@"
"""
RECORDING_PIP = '#!/bin/sh\necho "pip $*" >> "$PIP_RECORD"\n'
FAKE_NVIDIA_SMI = '#!/bin/sh\necho "NVIDIA H100 80GB HBM3, 550.54.15"\n'


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def host(tmp_path):
    """PATH without any real nvidia-smi; fake pip/pip3 and a recording python3 first on it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = executable(bin_dir / "python3", PYTHON_WRAPPER)
    for name in ("pip", "pip3"):
        executable(bin_dir / name, RECORDING_PIP)
    system_path = [p for p in os.environ["PATH"].split(os.pathsep) if p and not (Path(p) / "nvidia-smi").exists()]
    env = {key: value for key, value in os.environ.items() if key != "SUMTUNE_FAKE_TORCH_CUDA"}
    env.update(PATH=os.pathsep.join([str(bin_dir), *system_path]), PYTHON=str(python),
               PIP_RECORD=str(tmp_path / "pip_calls.txt"), CUDA_VISIBLE_DEVICES="")
    return dict(bin=bin_dir, env=env, record=tmp_path / "pip_calls.txt")


def run_script(host, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env={**host["env"], **extra_env},
                          capture_output=True, text=True, timeout=120)


def test_script_is_strict_bash():
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
    assert os.access(SCRIPT, os.X_OK)
    if shutil.which("shellcheck"):
        assert subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True).returncode == 0


def test_without_nvidia_smi_it_refuses_and_changes_nothing(host):
    done = run_script(host)
    assert done.returncode == 1
    assert "nvidia-smi is not on PATH" in done.stderr and "nothing was installed" in done.stderr
    assert not host["record"].exists()  # pip never ran


def test_a_broken_driver_is_refused(host):
    executable(host["bin"] / "nvidia-smi", "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\nexit 9\n")
    done = run_script(host)
    assert done.returncode == 1 and "nvidia-smi does not work" in done.stderr and "could not communicate" in done.stderr
    assert not host["record"].exists()


def test_a_cpu_only_torch_is_refused_even_with_a_gpu(host):
    import torch

    if torch.version.cuda:
        pytest.skip("this host's torch is a CUDA build")
    executable(host["bin"] / "nvidia-smi", FAKE_NVIDIA_SMI)
    done = run_script(host, "--dry-run")
    assert done.returncode == 1
    assert f"torch {TORCH_VERSION} is a CPU-only build" in done.stderr and "download.pytorch.org/whl/cu" in done.stderr
    assert "pip install" not in done.stdout and not host["record"].exists()


def test_dry_run_prints_a_pinned_install(host):
    executable(host["bin"] / "nvidia-smi", FAKE_NVIDIA_SMI)
    done = run_script(host, "--dry-run", SUMTUNE_FAKE_TORCH_CUDA="12.4")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    constraints = lines[lines.index("cat > constraints.txt <<'EOF'") + 1: lines.index("EOF")]
    assert constraints[0] == f"torch=={TORCH_VERSION}"
    assert {"transformers<=5.17.0", "trl<1.15", "datasets<5"} <= set(constraints)
    install = f"{host['env']['PYTHON']} -m pip install --constraint constraints.txt"
    assert any(line.startswith(install) and line.endswith("'unsloth>=2026.10,<2026.11'") for line in lines), done.stdout
    assert f"{host['env']['PYTHON']} -m sumtune.cli doctor" in lines
    assert not host["record"].exists()  # printed, not run


def test_install_pins_torch_then_runs_doctor_and_checks_the_import(host):
    executable(host["bin"] / "nvidia-smi", FAKE_NVIDIA_SMI)
    done = run_script(host, SUMTUNE_FAKE_TORCH_CUDA="12.4")
    calls = host["record"].read_text().splitlines()
    assert calls[0].startswith("pip -m pip install --constraint ") and calls[0].endswith(" unsloth>=2026.10,<2026.11")
    assert f"torch=={TORCH_VERSION}" in calls and "transformers<=5.17.0" in calls
    assert "unsloth       not checked: no CUDA" in done.stdout  # sumtune doctor ran
    # pip was faked, so unsloth still does not import: the script says so and fails
    assert done.returncode == 1 and "unsloth: missing" in done.stdout and "does not import" in done.stderr
