#!/usr/bin/env bash
# The main job: a real architecture search with the defaults (efficientnet space, embedded digits data,
# rl controller, MnasNet reward) in rungs of successive halving (27 candidates at 5 epochs, the best
# third continued to 10, the best 3 to 20), the 3 leaders re-ranked at 40 epochs, then its
# leaderboard. Extra arguments go to `nas search`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/nas search --trials 27 --rungs 5,10,20 --eta 3 --rerank 3 --out "runs/demo-$(date +%Y%m%d-%H%M%S)" "$@"
