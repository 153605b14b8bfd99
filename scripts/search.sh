#!/usr/bin/env bash
# The main job: a real architecture search with the defaults (efficientnet space, embedded digits data,
# rl controller, MnasNet reward), then its leaderboard. Extra arguments go to `nas search`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/nas search --rerank 3 --out "runs/demo-$(date +%Y%m%d-%H%M%S)" "$@"
