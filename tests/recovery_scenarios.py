"""Crash scenarios against real `mamcrawler run` subprocesses, for the tests and the fault matrix.

Each returns a dict of what happened; nothing here asserts, so `bench faults` can count.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.instance.ref import InstanceRef

from pipelines.recovery import home_lock

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "pipelines.cli"]
JOBS = ("refresh_library", "enrich_metadata", "update_completeness", "search_and_queue")
RUNNING = RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING])


def cli_env(workdir: Path) -> dict[str, str]:
    """The demo profile with its own Dagster home and warehouse under `workdir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABS_", "MAMCRAWLER_", "DAGSTER_"))}
    return env | {"DAGSTER_HOME": str(workdir / "home"), "MAMCRAWLER_WAREHOUSE": str(workdir / "warehouse.duckdb")}


def start_run(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "run", *args], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _instance(home: Path) -> DagsterInstance:
    """The observer's instance, opened under mamcrawler's init lock: opening a fresh home while
    a run creates its storage is the race that leaves two alembic heads."""
    with home_lock(home):
        return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def kill_inside(env: dict[str, str], job: str, rng: random.Random, timeout_s: float = 60) -> tuple[bool, bool]:
    """Start `mamcrawler run` and SIGKILL its process group at a random moment of `job` while
    one of its steps holds a pool slot (a kill between steps leaves nothing to recover).

    (killed, blocked): whether it was still running when killed, and whether the kill left
    what used to block every later run: a `STARTED` run holding a slot."""
    proc = start_run(env)
    home = Path(env["DAGSTER_HOME"])
    deadline = time.monotonic() + timeout_s
    delay = rng.uniform(0, 1.0)
    started_at = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (home / "history" / "runs.db").exists():
                with _instance(home) as instance:
                    runs = [r.run_id for r in instance.get_runs(limit=5)
                            if r.job_name == job and r.status == DagsterRunStatus.STARTED]
                    holding = bool(runs) and runs[0] in instance.event_log_storage.get_concurrency_run_ids()
                if runs and started_at is None:
                    started_at = time.monotonic()
                if holding and time.monotonic() - started_at >= delay:
                    break
            time.sleep(0.05)
    finally:
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    with _instance(home) as instance:
        blocked = bool(instance.get_runs(filters=RUNNING)) and bool(instance.event_log_storage.get_concurrency_run_ids())
    return killed, blocked


def kill_nine_then_run(workdir: Path, seed: int | None = None, jobs=JOBS, timeout_s: float = 120) -> dict:
    """kill -9 of `mamcrawler run` at a random point of every job, then one unattended run.

    `left_blocked` says a kill left what used to block every later run (a `STARTED` run
    holding a pool slot); `succeeded`/`hung` say how the next run went; `runs_left_running`
    and `slots_left` must be 0 afterwards."""
    seed = random.randrange(10**6) if seed is None else seed
    rng, env = random.Random(seed), cli_env(workdir)
    kills = {job: kill_inside(env, job, rng) for job in jobs}
    killed = [job for job, (inside, _) in kills.items() if inside]
    # Each later kill's run recovers what the one before left, so any kill counts.
    left_blocked = any(blocked for _, blocked in kills.values())
    home = workdir / "home"
    outcome = {"seed": seed, "killed_inside": killed, "left_blocked": left_blocked, "hung": False, "succeeded": False}
    try:
        done = subprocess.run([*CLI, "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        return outcome | {"hung": True, "output": str(exc.stdout)[-2000:]}
    with _instance(home) as instance:
        left = len(instance.get_runs(filters=RUNNING)), len(instance.event_log_storage.get_concurrency_run_ids())
    return outcome | {
        "succeeded": done.returncode == 0 and "succeeded" in done.stdout,
        "runs_left_running": left[0], "slots_left": left[1], "output": (done.stdout + done.stderr)[-2000:],
    }


def two_first_runs(workdir: Path, timeout_s: float = 120) -> dict:
    """Two `mamcrawler run`s at once on a fresh DAGSTER_HOME: both exit 0, runs.db has one
    alembic head, and the home has the project's dagster.yaml (the pools)."""
    env = cli_env(workdir)
    procs = [start_run(env, "--skip-metadata", "--skip-acquisition") for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=timeout_s)[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
        return {"exit_codes": [p.returncode for p in procs], "hung": True, "alembic_heads": None, "pools": False}
    home = workdir / "home"
    with sqlite3.connect(home / "history" / "runs.db") as con:
        heads = con.execute("SELECT count(*) FROM alembic_version").fetchone()[0]
    config = home / "dagster.yaml"
    return {
        "exit_codes": [p.returncode for p in procs], "hung": False, "alembic_heads": heads,
        "pools": config.exists() and "concurrency:" in config.read_text(), "outputs": [o[-1500:] for o in outputs],
    }
