#!/usr/bin/env bash
# The GPU suite in one run: training steps (FLOPs, MFU), rollout latency vs the frame-wise
# baseline, frames per second, SAM 2 tracking, at real size with random weights (README.md here).
#
#   bash benchmarks/gpu/run.sh [--out DIR] [--dry-run] [suite options...]
#
# DIR (default: $OUT) receives results.md, results.json and run.log (everything printed).
# On a GPU machine, wheels in .whl/ (diffusers, SAM 2 and their missing dependencies) are installed
# into /tmp/site first. --dry-run runs the same plan on the CPU with tiny presets (CI tests it).
# The suite stops measuring after --budget-s (default 460 s); `timeout` below is the backstop, so
# that a whole run, wheel installation included, ends within 9 minutes.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${OUT:-}"
dry=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    --dry-run) dry=1; args+=("--dry-run"); shift ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$out" ]; then
  echo "run.sh: error: no output folder; expected --out DIR or the environment variable OUT" >&2
  exit 2
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$root"

python="${PYTHON:-python3}"
if [ "$dry" = 0 ] && compgen -G ".whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg TOKENIZERS_PARALLELISM=false
# seconds: imports, the suite's budget (460 s; dry run 600 s), the last write
if [ "$dry" = 1 ]; then limit="${GPU_SUITE_TIMEOUT:-900}"; else limit="${GPU_SUITE_TIMEOUT:-515}"; fi

{
  echo "== $(date -u +%FT%TZ) run.sh ${args[*]:-}"
  if [ "$dry" = 0 ]; then nvidia-smi 2>&1 || echo "(nvidia-smi not available)"; fi
} 2>&1 | tee "$out/run.log"

set +e
timeout --signal=INT --kill-after=20 "$limit" \
  "$python" -m egoworld.bench.gpu_suite --out "$out" ${args[@]+"${args[@]}"} 2>&1 | tee -a "$out/run.log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" = 124 ]; then echo "run.sh: stopped after ${limit} s (GPU_SUITE_TIMEOUT)" | tee -a "$out/run.log"; fi
echo "run.sh: results in $out/results.md (exit $status)"
exit "$status"
