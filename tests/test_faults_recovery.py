"""Recovery without a person: kill -9 at any point of any job, and the next run still succeeds."""

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml
from dagster import DagsterInstance, DagsterRunStatus, job, op
from dagster._core.instance.ref import InstanceRef

from pipelines.recovery import prepare_home, reap_dead_runs, run_tags, wait_for_pools
from tests.recovery_scenarios import CLI, ROOT, cli_env, kill_nine_then_run, two_first_runs


def test_kill_minus_nine_anywhere_then_the_next_run_succeeds_unattended(tmp_path):
    outcome = kill_nine_then_run(tmp_path)
    assert len(outcome["killed_inside"]) >= 3, outcome  # a job killed after it ended proves nothing
    assert outcome["left_blocked"], outcome  # what used to block every later run
    assert not outcome["hung"] and outcome["succeeded"], outcome
    assert outcome["runs_left_running"] == 0 and outcome["slots_left"] == 0, outcome


def test_two_first_runs_at_once_never_break_the_instance(tmp_path):
    outcome = two_first_runs(tmp_path)
    assert outcome["exit_codes"] == [0, 0] and outcome["alembic_heads"] == 1 and outcome["pools"], outcome


def test_first_instance_creations_racing_leave_one_alembic_head(tmp_path):
    """The race behind two first runs, cheaper: forked processes creating one fresh home at once."""
    context = multiprocessing.get_context("fork")
    for trial in range(3):
        home = tmp_path / f"t{trial}"
        procs = [context.Process(target=prepare_home, args=(home, ROOT / "dagster.yaml")) for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [proc.exitcode for proc in procs] == [0] * 4
        with sqlite3.connect(home / "history" / "runs.db") as con:
            assert con.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1


def test_a_home_with_its_own_dagster_yaml_gets_the_pools(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("# my instance\ntelemetry:\n  enabled: false\n")
    lines: list[str] = []
    prepare_home(home, ROOT / "dagster.yaml", log=lines.append)
    prepare_home(home, ROOT / "dagster.yaml", log=lines.append)  # once only
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1 and config["run_monitoring"]["enabled"]
    assert config["telemetry"] == {"enabled": False} and "# my instance" in (home / "dagster.yaml").read_text()
    assert len(lines) == 1 and "concurrency" in lines[0], lines


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_run_waiting_for_a_live_holder_says_so_idles_and_ends_on_sigterm(tmp_path):
    env = cli_env(tmp_path)
    home = tmp_path / "home"
    prepare_home(home, ROOT / "dagster.yaml", log=lambda _: None)
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:  # this process holds the pool
        held = instance.create_run_for_job(holder, tags=run_tags()).run_id
        instance.event_log_storage.initialize_concurrency_limit_to_default("warehouse")
        instance.event_log_storage.claim_concurrency_slot("warehouse", held, "nothing")
    proc = subprocess.Popen([*CLI, "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "Waiting for the pool" not in line and proc.poll() is None:
            line = proc.stderr.readline()
        assert "`warehouse`" in line and held in line and "since" in line, line
        before = _cpu_seconds(proc.pid)
        time.sleep(2)
        assert _cpu_seconds(proc.pid) - before < 0.5  # waiting, not spinning
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@op
def nothing():
    pass


@job
def holder():
    nothing()


def test_the_waiting_message_names_the_pool_the_run_and_since_when(tmp_path, monkeypatch):
    home = tmp_path / "home"
    prepare_home(home, ROOT / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    lines: list[str] = []
    with DagsterInstance.get() as instance:
        held = instance.create_run_for_job(holder, tags=run_tags()).run_id  # a live run of this process
        instance.event_log_storage.initialize_concurrency_limit_to_default("warehouse")
        instance.event_log_storage.claim_concurrency_slot("warehouse", held, "nothing")
        sleeps = []

        def sleep(seconds):
            sleeps.append(seconds)
            if len(sleeps) == 3:
                instance.event_log_storage.free_concurrency_slots_for_run(held)

        wait_for_pools(instance, log=lines.append, sleep=sleep, poll_s=1, say_every_s=60)
        assert len(sleeps) == 3 and instance.get_run_by_id(held).status == DagsterRunStatus.NOT_STARTED
    assert len(lines) == 1 and "`warehouse`" in lines[0] and held in lines[0] and "since" in lines[0], lines


def test_a_dead_run_is_marked_failed_and_its_slots_freed(tmp_path, monkeypatch):
    home = tmp_path / "home"
    prepare_home(home, ROOT / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with DagsterInstance.get() as instance:
        run = instance.create_run_for_job(holder, tags={**run_tags(), "mamcrawler/pid": str(dead.pid)})
        instance.event_log_storage.claim_concurrency_slot("warehouse", run.run_id, "nothing")
        assert reap_dead_runs(instance, log=lambda _: None) == [run.run_id]
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_run_ids()
