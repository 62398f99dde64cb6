#!/usr/bin/env bash
# The whole test suite: installs what it needs, lints, then runs pytest on two workers
# (each worker picks free loopback ports and its own temporary folders). Extra arguments go
# to pytest; `-n 0` runs in one process.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/system-deps.sh
bash scripts/setup.sh test
echo "ruff check ."
.venv/bin/ruff check .
exec .venv/bin/pytest -n "${MAMCRAWLER_TEST_WORKERS:-2}" --dist worksteal "$@"
