"""The fault matrix's harness: it runs real cases, and a case that hangs, leaks or crashes
is counted as such whatever it says about itself."""

import textwrap
import time
from pathlib import Path

from bench.faults import discover, faults


def _running(pid: int, wait_s: float = 5) -> bool:
    """Whether `pid` still runs after `wait_s` (a SIGKILLed process may take a moment, and
    stays a zombie until its new parent reaps it)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        except (OSError, IndexError):
            return False
        time.sleep(0.1)
    return True


KEYS = {"benchmark", "faults_injected", "survived", "rows_lost", "downloads_lost", "downloads_duplicated", "hung",
        "secrets_found", "failed_cases", "seconds"}


def test_every_module_is_found_and_the_matrix_has_at_least_30_cases():
    cases = discover()
    assert {c.split(".")[0] for c in cases} >= {"security", "library", "parsers", "recovery", "downloads"}
    assert len(cases) >= 30 and len(set(cases)) == len(cases)
    assert discover(only=["parsers.blank_filetype", "security"]) == ["parsers.blank_filetype", *[c for c in cases if c.startswith("security.")]]


def test_real_cases_run_and_add_up():
    figures = faults(only=["parsers.blank_filetype", "security.symlink_out", "parsers.torrent_huge_integer"], timeout_s=120,
                     progress=lambda line: None)
    assert set(figures) == KEYS
    assert figures["faults_injected"] == 3 and figures["survived"] == 3 and figures["failed_cases"] == []
    assert figures["hung"] == figures["secrets_found"] == figures["rows_lost"] == 0


CASES = '''
import os
import subprocess
import time
from pathlib import Path

from bench.fault_cases import CANARIES, FaultResult


def hangs(work):
    child = subprocess.Popen(["sleep", "600"])
    Path(os.environ["PID_FILE"]).write_text(str(child.pid))
    time.sleep(600)


def prints_a_canary(work):
    print("debug: cookie", CANARIES["MAM_ID"])
    return FaultResult("prints a canary", survived=True)


def stores_a_canary(work):
    (work / "data").mkdir()
    (work / "data" / "run.log").write_text("Authorization: Bearer " + CANARIES["ABS_API_KEY"])
    return FaultResult("stores a canary", survived=True)


def crashes(work):
    raise RuntimeError("boom")


def loses_a_row(work):
    return FaultResult("loses a row", survived=True, rows_lost=1)


def survives(work):
    return FaultResult("survives", survived=True)


CASES = [hangs, prints_a_canary, stores_a_canary, crashes, loses_a_row, survives]
'''


def test_a_hanging_leaking_or_crashing_case_is_counted_so(tmp_path, monkeypatch):
    package = tmp_path / "harness_cases"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "bad.py").write_text(textwrap.dedent(CASES))
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("PID_FILE", str(pid_file))
    lines: list[str] = []
    figures = faults(package="harness_cases", extra_path=tmp_path, timeout_s=8, jobs=2, progress=lines.append)
    assert figures["faults_injected"] == 6 and figures["survived"] == 1
    assert figures["hung"] == 1 and figures["secrets_found"] == 2 and figures["rows_lost"] == 1
    assert figures["failed_cases"] == ["bad.hangs", "bad.prints_a_canary", "bad.stores_a_canary", "bad.crashes", "bad.loses_a_row"]
    assert any(line.startswith("HUNG") and "bad.hangs" in line for line in lines)
    assert any("crashed" in line and "boom" in line for line in lines)
    assert not _running(int(pid_file.read_text()))  # what the hung case started was killed too
    assert figures["seconds"] < 30
