#!/usr/bin/env bash
# Install unsloth on a CUDA machine, matched to the torch already installed, without changing torch.
#
#   ./install_unsloth.sh              check the machine, install unsloth, then run `sumtune doctor`
#   ./install_unsloth.sh --dry-run    check the machine and print the commands instead of running them
#
# Refuses (exit 1, nothing changed) when there is no working NVIDIA GPU (nvidia-smi), when torch is a
# CPU-only build, or when torch cannot see the GPU. pip runs with a constraints file that pins the
# installed torch (and torchvision) and the project's own caps, so it can never swap torch for another
# build or pull a torchvision that breaks `import peft` (what a plain `pip install unsloth` does on a
# CPU host). Run it from the environment sumtune is installed in (pip install -e ".[dev,korean]").
#
# Environment: PYTHON picks the interpreter (default: python3). SUMTUNE_FAKE_TORCH_CUDA=12.4 makes the
# script treat torch as a CUDA 12.4 build that sees the GPU (for tests on CPU hosts only).
set -euo pipefail

UNSLOTH_SPEC='unsloth>=2026.10,<2026.11'
# The project's caps (pyproject.toml); they sit inside unsloth 2026.10's own (transformers <= 5.17.0,
# trl <= 1.15.0, datasets < 5).
PROJECT_PINS=('transformers<=5.17.0' 'trl<1.15' 'datasets<5' 'peft<0.22' 'accelerate<1.16')
PYTHON="${PYTHON:-python3}"
DRY_RUN=0

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install_unsloth.sh: unknown option '$arg' (use --dry-run or --help)" >&2; exit 2 ;;
    esac
done

die() {
    echo "install_unsloth.sh: $*" >&2
    echo "install_unsloth.sh: nothing was installed or changed." >&2
    exit 1
}

# Run a command, or print it (quoted so that it can be pasted into a shell) with --dry-run.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        local arg words=()
        for arg in "$@"; do
            if [[ "$arg" =~ ^[A-Za-z0-9_./:=@%+-]+$ ]]; then words+=("$arg"); else words+=("'${arg//\'/\'\\\'\'}'"); fi
        done
        echo "${words[*]}"
    else
        "$@"
    fi
}

installed_version() {  # version of an installed distribution, or nothing
    "$PYTHON" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' "$1" 2>/dev/null || true
}

# 1. A working NVIDIA GPU.
if ! command -v nvidia-smi >/dev/null 2>&1; then
    die "nvidia-smi is not on PATH: this machine has no NVIDIA driver, so no CUDA GPU. unsloth needs one;
without it sumtune trains through PEFT (run \`sumtune doctor\` to see what each config gets)."
fi
if ! gpus=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1) || [ -z "$gpus" ]; then
    die "nvidia-smi does not work (${gpus:-no output}): the NVIDIA driver is not loaded or sees no GPU."
fi
echo "GPU (name, driver): $gpus"

# 2. torch: installed, a CUDA build, and able to see the GPU.
torch_version=$(installed_version torch)
[ -n "$torch_version" ] || die "torch is not installed for $PYTHON. Install sumtune first: pip install -e \".[dev,korean]\""
if [ -n "${SUMTUNE_FAKE_TORCH_CUDA:-}" ]; then
    torch_cuda=$SUMTUNE_FAKE_TORCH_CUDA
    sees_gpu=True
else
    info=$("$PYTHON" -c 'import torch; print(torch.version.cuda or "none", torch.cuda.is_available())') \
        || die "$PYTHON could not import torch $torch_version."
    read -r torch_cuda sees_gpu <<<"$info"
fi
if [ "$torch_cuda" = none ]; then
    die "torch $torch_version is a CPU-only build, so unsloth cannot run here. Install a CUDA build of the same
torch first, e.g.: $PYTHON -m pip install --force-reinstall 'torch==${torch_version%%+*}' --index-url https://download.pytorch.org/whl/cu124
(pick the cuXYZ that your driver supports: nvidia-smi shows 'CUDA Version'), then run this script again."
fi
if [ "$sees_gpu" != True ]; then
    die "torch $torch_version (CUDA $torch_cuda) cannot use the GPU: the driver may be older than CUDA $torch_cuda
(compare 'CUDA Version' in nvidia-smi) or CUDA_VISIBLE_DEVICES hides it."
fi
echo "torch: $torch_version (CUDA $torch_cuda)"

# 3. Install unsloth with torch (and torchvision, when present) pinned to what is installed.
constraints=("torch==$torch_version" "${PROJECT_PINS[@]}")
index_args=()
torchvision_version=$(installed_version torchvision)
if [ -n "$torchvision_version" ]; then
    constraints+=("torchvision==$torchvision_version")
else  # let pip find the torchvision built for this CUDA, not PyPI's default build
    index_args=(--extra-index-url "https://download.pytorch.org/whl/cu${torch_cuda//./}")
fi

if [ "$DRY_RUN" = 1 ]; then
    constraints_file=constraints.txt
    echo "# --dry-run: the commands this script would run"
    echo "cat > $constraints_file <<'EOF'"
    printf '%s\n' "${constraints[@]}" EOF
else
    constraints_file=$(mktemp "${TMPDIR:-/tmp}/sumtune-unsloth-constraints.XXXXXX")
    trap 'rm -f "$constraints_file"' EXIT
    printf '%s\n' "${constraints[@]}" >"$constraints_file"
fi
run "$PYTHON" -m pip install --constraint "$constraints_file" ${index_args[@]+"${index_args[@]}"} "$UNSLOTH_SPEC"

# 4. Check: unsloth imports, and which backend each config now gets.
run "$PYTHON" -m sumtune.cli doctor
if ! run "$PYTHON" -c 'import sys; from sumtune.backends.unsloth import probe; status, detail = probe(); print("unsloth:", status, detail); sys.exit(status != "ok")'; then
    echo "install_unsloth.sh: unsloth is installed but does not import (see the line above); sumtune trains through PEFT until that is fixed." >&2
    exit 1
fi
