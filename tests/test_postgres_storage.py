"""Dagster's storage on a real PostgreSQL server (Debian's package, started as an unprivileged user)."""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest
from dagster import DagsterInstance

from pipelines.definitions import build_definitions
from pipelines.profiles import Profile
from tests.conftest import require_binary
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pg-test-password-5b0e2f"


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    require_binary(found[-1] if found else name, "postgresql")
    return found[-1] if found else name


@contextlib.contextmanager
def postgres_server():
    """initdb + pg_ctl on a free loopback port; PostgreSQL refuses root, so run as `postgres`."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="mamcrawler-pg-"))
    base.chmod(0o755)
    data, pwfile = base / "data", base / "pw"
    pwfile.write_text(PASSWORD)
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (base, pwfile):
            os.chown(path, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)  # noqa: E731
    try:
        run(initdb, "-D", str(data), "-U", "dagster", "-A", "scram-sha-256", f"--pwfile={pwfile}", "--no-sync")
        run(pg_ctl, "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60", "start",
            "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off")
        con = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", password=PASSWORD, dbname="postgres")
        con.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        con.cursor().execute("CREATE DATABASE dagster")
        con.close()
        yield port
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.service
def test_graph_materialises_with_dagster_storage_on_postgres(tmp_path, monkeypatch):
    with postgres_server() as port:
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copyfile(ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        for key, value in {"USERNAME": "dagster", "PASSWORD": PASSWORD, "HOST": "127.0.0.1", "DB": "dagster", "PORT": str(port)}.items():
            monkeypatch.setenv(f"DAGSTER_PG_{key}", value)
        with DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            result = build_definitions(Profile("demo", "t")).resolve_job_def("refresh_library").execute_in_process(instance=instance)
            assert result.success
        with psycopg2.connect(host="127.0.0.1", port=port, user="dagster", password=PASSWORD, dbname="dagster") as con:
            cur = con.cursor()
            cur.execute("SELECT status FROM runs WHERE run_id = %s", [result.run_id])
            assert cur.fetchone() == ("SUCCESS",)
            cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'", [result.run_id])
            assert cur.fetchone()[0] == 8  # every asset of the library and completeness groups
            cur.execute("SELECT count(*) FROM event_logs WHERE event LIKE %s", [f"%{PASSWORD}%"])
            assert cur.fetchone()[0] == 0  # the password is never stored in run or event data
