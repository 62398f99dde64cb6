#!/usr/bin/env bash
# Starts the Dagster web UI on 127.0.0.1 (PORT, default 3000). Never on all interfaces
# unless you pass `-h 0.0.0.0` yourself.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
DAGSTER_HOME=$(.venv/bin/python -c 'from pipelines.cli import ensure_dagster_home; print(ensure_dagster_home())')
export DAGSTER_HOME
exec .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p "${PORT:-3000}" "$@"
