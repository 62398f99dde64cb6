#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs MAMcrawler into it; re-runs only when
# pyproject.toml changed. `scripts/setup.sh test` also installs the test extras.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
extras=${1:-}

if [ ! -x .venv/bin/python ]; then
  PY=${PYTHON:-}
  if [ -z "$PY" ]; then
    for candidate in python3.11 python3.12 python3; do
      if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))'; then
        PY=$candidate; break
      fi
    done
  fi
  [ -n "$PY" ] || { echo "MAMcrawler needs Python 3.11 or 3.12 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
  echo "Creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi

spec="."
[ "$extras" = "test" ] && spec=".[test]"
stamp=".venv/.mamcrawler-installed"
want="$(sha256sum pyproject.toml | cut -c1-16) $spec"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing MAMcrawler ($spec) into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e "$spec"
  echo "$want" > "$stamp"
fi
