#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs MAMcrawler into it; re-runs only when
# pyproject.toml changed. `scripts/setup.sh test` also installs the test extras, once: a
# later plain `scripts/setup.sh` (run.sh, ui.sh) keeps them instead of reinstalling.
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

# setuptools prints a box of warnings on every editable install of a flat layout; they are
# about the install mode, not about this project.
export PYTHONWARNINGS=ignore
# One stamp per install: the package itself, and the test extras on top of it.
hash="$(sha256sum pyproject.toml | cut -c1-16)"
stamp=".venv/.mamcrawler-installed"
if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
  echo "Installing MAMcrawler and its dependencies into .venv (about a minute the first time)..."
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet --progress-bar off -e .
  echo "$hash" > "$stamp"
  rm -f "$stamp-test"
  echo "Installed MAMcrawler into .venv"
fi
if [ "$extras" = "test" ] && [ "$(cat "$stamp-test" 2>/dev/null)" != "$hash" ]; then
  echo "Installing the test tools (pytest, hypothesis, ruff, pytest-xdist, dg) into .venv..."
  .venv/bin/python -m pip install --quiet --progress-bar off -e ".[test]"
  echo "$hash" > "$stamp-test"
  echo "Installed the test tools"
fi
