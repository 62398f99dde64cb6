"""Recovery without a person: a Dagster instance that a crash cannot block or break.

A run killed with SIGKILL keeps its pool slots and stays `STARTED`; every later run then waits
for the pool forever. Before our runs start, `reap_dead_runs` finds the runs whose process is
gone, marks them failed and frees their slots; `wait_for_pools` says what a run waits for and
since when instead of spinning silently. `prepare_home` creates the instance storage once
under a file lock (two first runs at once used to leave two alembic heads in runs.db) and
makes sure the pools exist when `DAGSTER_HOME` points elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

PID_TAG = "mamcrawler/pid"
HOST_TAG = "mamcrawler/host"
LOCK_FILE = ".mamcrawler-init.lock"
READY_FILE = ".mamcrawler-initialised"
POOLS = ("warehouse", "indexers", "metadata_providers")
MERGED_SECTIONS = ("concurrency", "run_monitoring")
_RUNNING = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def run_tags() -> dict[str, str]:
    """Tags that let a later process tell whether this run's process is still alive."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    with open(home / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare_home(home: Path, instance_yaml: Path, log: Callable[[str], None] = print) -> None:
    """Give `home` our dagster.yaml when it has none and create its storage, once, under a lock."""
    home.mkdir(parents=True, exist_ok=True)
    with home_lock(home):
        config = home / "dagster.yaml"
        if not config.exists():
            shutil.copyfile(instance_yaml, config)
        else:  # a user's own file (PostgreSQL) is kept; the sections it lacks are added
            added = _add_missing_sections(config, instance_yaml)
            if added:
                log(f"Added the {', '.join(added)} section(s) of {instance_yaml} to {config}")
        if not (home / READY_FILE).exists():
            previous = os.environ.get("DAGSTER_HOME")
            os.environ["DAGSTER_HOME"] = str(home)
            try:
                with DagsterInstance.get() as instance:  # creates and migrates every storage
                    instance.get_runs(limit=1)
                    instance.event_log_storage.get_concurrency_keys()
            finally:
                if previous is None:
                    del os.environ["DAGSTER_HOME"]
                else:
                    os.environ["DAGSTER_HOME"] = previous
            (home / READY_FILE).touch()


def _add_missing_sections(config: Path, instance_yaml: Path) -> list[str]:
    """Append to `config` each of our top-level sections it lacks (the pools, run monitoring)."""
    theirs = yaml.safe_load(config.read_text()) or {}
    ours = yaml.safe_load(instance_yaml.read_text())
    missing = [key for key in MERGED_SECTIONS if key not in theirs and key in ours]
    if missing:
        text = config.read_text()
        block = yaml.safe_dump({key: ours[key] for key in missing}, sort_keys=False)
        config.write_text(f"{text.rstrip()}\n\n# added by mamcrawler (the warehouse's single writer)\n{block}")
    return missing


def _proc_start(pid: int) -> float | None:
    """When process `pid` started (unix seconds), None when it is gone or a zombie (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int, since: float | None = None) -> bool:
    """Whether `pid` runs; a process started after `since` is another one that reused the pid."""
    if Path("/proc/self/stat").exists():
        started = _proc_start(pid)
        return started is not None and (since is None or started <= since + 5)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_pid(instance: DagsterInstance, run) -> int | None:
    """The run's process: our tag, or the pid in the executor's first engine event."""
    if PID_TAG in run.tags:
        return int(run.tags[PID_TAG]) if run.tags[PID_TAG].isdigit() else None
    # Without our tag only a local (SQLite) instance can say the pid is on this machine.
    if "sqlite" not in type(instance.run_storage).__name__.lower():
        return None
    for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20).records:
        data = record.event_log_entry.dagster_event.engine_event_data if record.event_log_entry.dagster_event else None
        pid = (data.metadata or {}).get("pid") if data else None
        if pid is not None and str(pid.value).isdigit():
            return int(pid.value)
    return None


def reap_dead_runs(instance: DagsterInstance, log: Callable[[str], None] = print) -> list[str]:
    """Mark failed the unfinished runs whose process is gone and free every slot they or
    finished runs still hold. Returns the run ids handled."""
    storage = instance.event_log_storage
    holding = storage.get_concurrency_run_ids() if storage.supports_global_concurrency_limits else set()
    running = {r.run_id for r in instance.get_runs(filters=RunsFilter(statuses=_RUNNING))}
    host, reaped = socket.gethostname(), []
    for run_id in sorted(holding | running):
        record = instance.get_run_record_by_id(run_id)
        if record is None or record.dagster_run.is_finished:
            if run_id in holding:
                storage.free_concurrency_slots_for_run(run_id)
                reaped.append(run_id)
            continue
        run = record.dagster_run
        pid = _run_pid(instance, run)
        if pid is None or run.tags.get(HOST_TAG, host) != host:
            continue
        since = record.start_time or record.create_timestamp.timestamp()
        if process_alive(pid, since):
            continue
        message = f"the process of this run (pid {pid}) is gone (killed?): marked failed and its pool slots freed"
        instance.report_run_failed(run, message=message)
        if storage.supports_global_concurrency_limits:
            storage.free_concurrency_slots_for_run(run_id)
        log(f"Recovered run {run_id} ({run.job_name}): {message}")
        reaped.append(run_id)
    return reaped


def pool_holders(instance: DagsterInstance, pools: Iterable[str] = POOLS) -> list[tuple[str, str]]:
    """(pool, run id) of every full pool: a run starting now would wait for these."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    held = []
    for pool in pools:
        info = storage.get_concurrency_info(pool)
        limit = info.limit if info.limit is not None else info.slot_count
        if limit and len(info.claimed_slots) >= limit:
            held.extend((pool, run_id) for run_id in dict.fromkeys(s.run_id for s in info.claimed_slots))
    return held


def wait_for_pools(
    instance: DagsterInstance,
    log: Callable[[str], None] = print,
    poll_s: float = 2.0,
    say_every_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once no pool is full; dead holders are reaped, live ones are named with their start."""
    said = -say_every_s
    waited = 0.0
    while True:
        reap_dead_runs(instance, log)
        holders = pool_holders(instance)
        if not holders:
            return
        if waited - said >= say_every_s:
            said = waited
            for pool, run_id in holders:
                record = instance.get_run_record_by_id(run_id)
                start = record.start_time if record and record.start_time else None
                since = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if start else "an unknown time"
                job = record.dagster_run.job_name if record else "?"
                log(f"Waiting for the pool `{pool}`: held by run {run_id} ({job}) since {since}")
        sleep(poll_s)
        waited += poll_s
