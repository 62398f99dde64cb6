"""Fault cases for `python -m bench faults`.

Each module in this package has `CASES`: a list of functions, each taking a fresh empty working
folder (`pathlib.Path`) and returning a `FaultResult`. The harness (`bench/faults.py`) runs every
case with a time limit (a case past it counts as hung), sets the canary secrets below in the
environment first, and adds the figures up.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Values set as the configured secrets while the fault cases run; finding one anywhere stored
# (Dagster home, warehouse, data/, logs, captured output) is a leak.
CANARIES = {
    "ABS_API_KEY": "canary-abs-key-5f1c2e",
    "MAM_ID": "canary-mam-id-8d03aa",
    "QBITTORRENT_PASSWORD": "canary-qbt-pass-41b7c9",
    "HARDCOVER_TOKEN": "canary-hardcover-token-77e210",
    "GOOGLE_BOOKS_API_KEY": "canary-google-key-0c9d54",
}


@dataclass
class FaultResult:
    name: str
    survived: bool
    rows_lost: int = 0
    downloads_lost: int = 0
    downloads_duplicated: int = 0
    hung: bool = False
    secrets_found: int = 0
    detail: str = ""


def secrets_found(paths: Iterable[Path], texts: Iterable[str] = ()) -> int:
    """How many canary values occur in the files under `paths` and in `texts` (captured output)."""
    needles = [v.encode() for v in CANARIES.values()]
    found = 0
    for root in paths:
        files = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())
        for file in files:
            try:
                data = file.read_bytes()
            except OSError:
                continue
            found += sum(data.count(n) for n in needles)
    for text in texts:
        found += sum(text.encode("utf-8", "replace").count(n) for n in needles)
    return found


def canary_environment() -> dict[str, str]:
    """The process environment with every canary set as its secret."""
    return {**os.environ, **CANARIES}
