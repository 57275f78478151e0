#!/usr/bin/env bash
# Run the test suite; pytest's "no tests collected" (exit 5) is a failure we report plainly.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_SILENT=true MPLBACKEND=Agg
# two workers (xdist): the suite is dominated by single-threaded model forwards
.venv/bin/python -m pytest -q -n "${PYTEST_WORKERS:-2}" "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
