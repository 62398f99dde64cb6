#!/usr/bin/env bash
# Starts the Dagster web UI and daemon on 127.0.0.1 (PORT, default 3000) behind a guard that
# refuses requests from other web pages (`mamcrawler ui`; `--host`, `--allow-host` pass on).
# Stop it with Ctrl-C or `kill <pid>` (SIGTERM), also when started in the background.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/mamcrawler ui "$@"
