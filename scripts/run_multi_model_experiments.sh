#!/usr/bin/env bash
# Train several model configs one after another, each with its own log, then compare them in one report.
#
#   scripts/run_multi_model_experiments.sh                      # every config whose model is available offline
#   scripts/run_multi_model_experiments.sh config/model_configs/tiny_bart.yaml config/model_configs/tiny_t5.yaml
#   scripts/run_multi_model_experiments.sh config/model_configs/tiny_*.yaml --set training.max_steps=20
#
# Without CONFIGs: every config/model_configs/*.yaml that trains offline (model.init: scratch, or a
# checkpoint in the local Hugging Face cache). `--set KEY=VALUE` applies to every config.
# Each model's console output: logs/multi_model_experiments/{ts}/{name}.log (its run log stays in
# logs/{name}_{ts}.log). Report of all runs of this invocation: reports/multi_model_experiments/{ts}/.
# EXPERIMENTS_ROOT=DIR puts those two directories under DIR instead of the repository root.
# A failed model does not stop the others; the exit status is 1 if any failed.
set -u

configs=()
overrides=()
while [ $# -gt 0 ]; do
    case "$1" in
        --set) overrides+=(--set "${2:?--set needs KEY=VALUE}"); shift 2 ;;
        --set=*) overrides+=(--set "${1#--set=}"); shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) if [ -e "$1" ]; then configs+=("$(realpath "$1")"); else configs+=("$1"); fi; shift ;;
    esac
done

if [ -n "${EXPERIMENTS_ROOT:-}" ]; then EXPERIMENTS_ROOT=$(realpath -m "$EXPERIMENTS_ROOT"); fi
cd "$(dirname "$0")/.." || exit 2  # config data paths resolve from the repository root
python="${PYTHON:-python}"

if [ ${#configs[@]} -eq 0 ]; then
    mapfile -t configs < <(HF_HUB_OFFLINE=1 "$python" - <<'EOF'
import glob, sys
from sumtune.config import ConfigError, load_config
from sumtune.loading import CheckpointNotFound, ensure_available

for path in sorted(glob.glob("config/model_configs/*.yaml")):
    try:
        cfg = load_config(path, check_files=False)
    except ConfigError:  # run it anyway: the sweep records it as a failed run with the problems
        print(path)
        continue
    try:
        if cfg.model.init == "pretrained":
            for source in filter(None, (cfg.model.checkpoint, cfg.model.tokenizer)):
                ensure_available(source, cfg.model.revision)
    except CheckpointNotFound:
        print(f"skipping {path}: {source} is not in the local Hugging Face cache", file=sys.stderr)
        continue
    print(path)
EOF
    )
fi
if [ ${#configs[@]} -eq 0 ]; then
    echo "no config to run" >&2
    exit 2
fi

ts=$(date +%Y%m%d-%H%M%S)
prefix="${EXPERIMENTS_ROOT:+${EXPERIMENTS_ROOT%/}/}"
log_dir="${prefix}logs/multi_model_experiments/$ts"
report_dir="${prefix}reports/multi_model_experiments/$ts"
runs_file="$log_dir/runs.txt"
mkdir -p "$log_dir"
: > "$runs_file"

failed=()
for config in "${configs[@]}"; do
    name=$(basename "$config" .yaml)
    log="$log_dir/$name.log"
    n=2
    while [ -e "$log" ]; do log="$log_dir/$name-$n.log"; n=$((n + 1)); done
    echo "=== $name: $config (log: $log)"
    start=$SECONDS
    "$python" -m sumtune.cli sweep "$config" ${overrides[@]+"${overrides[@]}"} --no-report --runs-file "$runs_file" 2>&1 | tee "$log"
    code=${PIPESTATUS[0]}
    echo "=== $name: exit $code after $((SECONDS - start)) s"
    [ "$code" -eq 0 ] || failed+=("$name")
done

mapfile -t runs < "$runs_file"
report_code=0
if [ ${#runs[@]} -gt 0 ]; then
    "$python" -m sumtune.cli report "${runs[@]}" --out "$report_dir"
    report_code=$?
fi

echo "logs: $log_dir/  report: $report_dir/comparison.md  total: ${SECONDS} s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "${#failed[@]} of ${#configs[@]} model(s) failed: ${failed[*]}" >&2
    exit 1
fi
[ "$report_code" -eq 0 ] || exit 1
