#!/usr/bin/env bash
# The whole test suite: installs what it needs, lints, then runs pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/system-deps.sh
bash scripts/setup.sh test
.venv/bin/ruff check .
exec .venv/bin/pytest "$@"
