"""`python -m bench faults [--only MODULE[.CASE],...] [--timeout S] [--jobs N]`: the fault matrix.

Every case of every module in `bench/fault_cases` runs in a subprocess of its own (its own
session, so a case past the time limit is killed with everything it started and counts as
hung), in a fresh working folder that holds its Dagster home, warehouse and temporary files,
with the canary secrets configured. The case's verdict is added up with what the harness
sees itself: canaries in the working folder, in the case's output, and new ones in the
project's `data/` and `logs/`. Targets: at least 30 faults, 0 rows or downloads lost, 0
duplicated, 0 hung, 0 secrets found.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import pkgutil
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from bench.fault_cases import FaultResult, canary_environment, secrets_found

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "bench.fault_cases"
RESULT_MARK = "FAULT-RESULT "
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_JOBS = 3  # cases at a time: most of a case's time is waiting (servers, retries, backoff), not CPU
# Settings of the developer's shell that would point a case at a real service or home.
CLEARED = ("ABS_", "DAGSTER_", "MAMCRAWLER_", "QBITTORRENT_URL", "QBITTORRENT_USERNAME", "TORZNAB_", "CUSTOM_PROVIDER_")


def discover(package: str = PACKAGE, only: Iterable[str] | None = None) -> list[str]:
    """Every case as `module.function` (module relative to `package`), in `CASES` order;
    `only` keeps the modules or cases named."""
    wanted = [w.strip() for w in (only or []) if w.strip()]
    found = []
    for info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__), key=lambda m: m.name):
        if wanted and not any(w == info.name or w.startswith(info.name + ".") for w in wanted):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for case in getattr(module, "CASES", []):
            name = f"{info.name}.{case.__name__}"
            if not wanted or info.name in wanted or name in wanted:
                found.append(name)
    return found


def case_environment(work: Path, extra_path: Path | None = None) -> dict[str, str]:
    """The canaries as configured secrets; home, warehouse and temporary files under `work`."""
    env = {k: v for k, v in canary_environment().items() if not k.startswith(CLEARED)}
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    python_path = [str(ROOT), *([str(extra_path)] if extra_path else []), env.get("PYTHONPATH", "")]
    return env | {
        "DAGSTER_HOME": str(work / "dagster_home"), "MAMCRAWLER_WAREHOUSE": str(work / "data" / "warehouse.duckdb"),
        "TMPDIR": str(work / "tmp"), "PYTHONPATH": os.pathsep.join(p for p in python_path if p),
        "PYTHONUNBUFFERED": "1",
    }


def run_case(name: str, timeout_s: float, package: str = PACKAGE, extra_path: Path | None = None) -> dict:
    """One case in its own subprocess and session; its figures as a dict (`FaultResult` fields
    plus `case`, `seconds` and `failed`)."""
    work = Path(tempfile.mkdtemp(prefix=f"fault-{name.replace('.', '-')}-"))
    case_dir = work / "case"
    case_dir.mkdir()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.faults", "--run-case", f"{package}.{name}", str(case_dir)],
        cwd=ROOT, env=case_environment(work, extra_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, errors="replace", start_new_session=True,
    )
    hung = False
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        hung = True
        _kill_session(proc.pid)
        out, err = proc.communicate()
    _kill_session(proc.pid)  # anything the case left running in its session
    seconds = time.monotonic() - started
    result = _parse(name, out, err, proc.returncode, hung, timeout_s)
    seen = secrets_found([work], [out, err])
    result.secrets_found = max(result.secrets_found, seen)
    shutil.rmtree(work, ignore_errors=True)
    failed = (not result.survived or result.hung or result.secrets_found > 0 or result.rows_lost > 0
              or result.downloads_lost > 0 or result.downloads_duplicated > 0)
    return dataclasses.asdict(result) | {"case": name, "seconds": round(seconds, 1), "failed": failed}


def _kill_session(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _parse(name: str, out: str, err: str, returncode: int | None, hung: bool, timeout_s: float) -> FaultResult:
    if hung:
        return FaultResult(name, survived=False, hung=True, detail=f"killed after {timeout_s:g} s")
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_MARK):
            return FaultResult(**json.loads(line[len(RESULT_MARK):]))
    tail = (err.strip().splitlines() or ["no output"])[-1]
    return FaultResult(name, survived=False, detail=f"the case crashed (exit {returncode}): {tail[:300]}")


def faults(only: Iterable[str] | None = None, timeout_s: float = DEFAULT_TIMEOUT_S, jobs: int = DEFAULT_JOBS,
           package: str = PACKAGE, extra_path: Path | None = None,
           progress=lambda line: print(line, file=sys.stderr, flush=True)) -> dict:
    """Run every case (or the ones `only` names), `jobs` at a time, and add the figures up.
    `package` and `extra_path` (put on the path) name another package of cases, for tests."""
    if extra_path:
        sys.path.insert(0, str(extra_path))
    started = time.monotonic()
    stored = [ROOT / "data", ROOT / "logs"]
    before = secrets_found([p for p in stored if p.exists()])
    names = discover(package, only)
    results = []
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for future in as_completed([pool.submit(run_case, name, timeout_s, package, extra_path) for name in names]):
            result = future.result()
            results.append(result)
            verdict = "HUNG" if result["hung"] else "FAILED" if result["failed"] else "ok"
            progress(f"{verdict:6} {result['case']} ({result['seconds']} s): {result['detail'][:200]}")
    results.sort(key=lambda r: names.index(r["case"]))
    project_leaks = max(0, secrets_found([p for p in stored if p.exists()]) - before)
    return {
        "benchmark": "faults",
        "faults_injected": len(results),
        "survived": sum(not r["failed"] for r in results),
        "rows_lost": sum(r["rows_lost"] for r in results),
        "downloads_lost": sum(r["downloads_lost"] for r in results),
        "downloads_duplicated": sum(r["downloads_duplicated"] for r in results),
        "hung": sum(r["hung"] for r in results),
        "secrets_found": sum(r["secrets_found"] for r in results) + project_leaks,
        "failed_cases": [r["case"] for r in results if r["failed"]],
        "seconds": round(time.monotonic() - started, 1),
    }


def _run_one(qualified: str, work: str) -> int:
    """The subprocess side: run `package.module.function` on `work`, print its result."""
    module_name, _, function = qualified.rpartition(".")
    case = getattr(importlib.import_module(module_name), function)
    result = case(Path(work))
    print(RESULT_MARK + json.dumps(dataclasses.asdict(result), default=str), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run-case"]:
        sys.exit(_run_one(sys.argv[2], sys.argv[3]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
