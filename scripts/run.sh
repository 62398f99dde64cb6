#!/usr/bin/env bash
# Sets everything up and runs the main job (demo library unless ABS_URL is set).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/mamcrawler run "$@"
