"""`mamcrawler ui`: no other web page can drive it, its own pages still can, and it stops
cleanly on SIGTERM and SIGINT when a script starts it in the background with setsid."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from pipelines.ui import allowed_hosts, refusal
from tests.conftest import require_binary
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HOSTS = allowed_hosts("127.0.0.1", 3000)
SELECTOR = '{repositoryLocationName: "mamcrawler", repositoryName: "__repository__", jobName: "refresh_library"}'
LAUNCH = f'mutation {{ launchRun(executionParams: {{selector: {SELECTOR}, mode: "default"}}) {{ __typename }} }}'
RUNS = "{ runsOrError { ... on Runs { results { runId jobName } } } }"
BACKFILLS = "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id status } } } }"


def _refusal(method="GET", path="/graphql", query=b"", **headers):
    return refusal(method, path, query, {"host": "127.0.0.1:3000", **headers}, HOSTS)


# --- the guard's rules -------------------------------------------------------------------------

def test_the_ui_itself_and_non_browser_clients_pass():
    assert _refusal("POST", **{"origin": "http://127.0.0.1:3000", "sec-fetch-site": "same-origin",
                               "content-type": "application/json"}) is None
    assert _refusal("POST", **{"content-type": "application/json"}) is None  # curl, the dagster CLI
    assert _refusal(path="/runs", **{"host": "localhost:3000", "sec-fetch-site": "none"}) is None
    # a link from elsewhere still opens a page (the page then talks same-origin)
    assert _refusal(path="/runs", **{"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}) is None
    assert _refusal(query=b"query=" + quote("{ version }").encode()) is None


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (dict(host="evil.example:3000"), "Host"),  # DNS rebinding
        (dict(origin="http://localhost:8000"), "cross-origin"),  # same site, another port
        (dict(origin="null"), "cross-origin"),  # a sandboxed frame
        (dict(**{"sec-fetch-site": "same-site"}), "another site"),
        (dict(**{"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}), "another site"),  # a link to /graphql
        (dict(query=b"query=" + quote(LAUNCH).encode()), "other than queries"),
        (dict(query=b"query=" + quote("query A { version } mutation B { x }").encode()), "other than queries"),
        (dict(query=b"query=%7Bnot%20graphql"), "other than queries"),
        (dict(method="POST", **{"content-type": "text/plain"}), "application/json"),
        (dict(method="POST", **{"content-type": "application/x-www-form-urlencoded"}), "application/json"),
    ],
)
def test_cross_site_requests_and_mutations_over_get_are_refused(request_, reason):
    assert reason in (_refusal(**request_) or "")


def test_only_the_bound_address_is_answered_off_loopback():
    hosts = allowed_hosts("192.168.1.5", 8080, ["books.example:443"])
    assert hosts == {"192.168.1.5:8080", "books.example:443"}
    assert allowed_hosts("::1", 3000) >= {"[::1]:3000", "127.0.0.1:3000", "localhost:3000"}


# --- the real thing ----------------------------------------------------------------------------

def _processes_of(session: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == session:  # field 6 of stat: the session id
                    found.add(int(entry.name))
    return found


@contextlib.contextmanager
def ui_in_background(tmp_path: Path):
    """`setsid mamcrawler ui &` from a script (SIGINT arrives ignored); yields (url, pid, tmpdir)."""
    home, scratch = tmp_path / "dagster_home", tmp_path / "tmp"
    home.mkdir()
    scratch.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    log = tmp_path / "ui.log"
    script = tmp_path / "start.sh"
    script.write_text(f"setsid {ROOT}/.venv/bin/mamcrawler ui --port {port} >{log} 2>&1 &\necho $!\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "TMPDIR": str(scratch)}
    pid = int(subprocess.run(["bash", str(script)], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _graphql(url, "{ assetNodes { id } }", quiet=True):
            assert time.monotonic() < deadline and Path(f"/proc/{pid}").exists(), log.read_text()[-3000:]
            time.sleep(1)
        yield url, pid, scratch
    finally:
        if Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _graphql(url: str, query: str, variables: dict | None = None, quiet: bool = False) -> dict:
    try:
        answer = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30).json()
    except (httpx.HTTPError, ValueError):
        if quiet:
            return {}
        raise
    data = answer.get("data") or {}
    return data if all(data.values()) else {}


@pytest.mark.service
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_ui_stops_cleanly_when_started_in_the_background(tmp_path, stop):
    with ui_in_background(tmp_path) as (url, pid, scratch):
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt")).split()[1], 16)
        assert caught & (1 << (signal.SIGINT - 1)) and caught & (1 << (signal.SIGTERM - 1))
        tree = _processes_of(pid)
        daemon = int((tmp_path / "ui.log").read_text().split("daemon pid ")[1].split(")")[0])
        tree |= {daemon} | _processes_of(daemon)
        assert len(tree) >= 4  # the UI, its code server, the daemon and the daemon's code server
        assert any(scratch.iterdir())  # the code servers' sockets live there while it runs
        os.kill(pid, stop)
        deadline = time.monotonic() + 60
        while any(Path(f"/proc/{p}").exists() for p in tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p for p in tree if Path(f"/proc/{p}").exists()]
        assert not left, f"still running: {left}"
        assert list(scratch.iterdir()) == []  # no temporary folder left behind
        assert "Dagster UI stopped" in (tmp_path / "ui.log").read_text()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/server_info", timeout=2)


ATTACK_PAGE = """<!doctype html><html><body>
<img src="{ui}/graphql?query={launch_url}">
<iframe name="sink"></iframe>
<form id="post" method="POST" action="{ui}/graphql?query={launch_url}" target="sink" enctype="text/plain">
  <input name='{{"query": "{launch_js}", "x": "' value='"}}'>
</form>
<script>
  fetch("{ui}/graphql", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
                          body: JSON.stringify({{query: "{launch_js}"}})}}).catch(() => null);
  fetch("{ui}/graphql?query={launch_url}", {{mode: "no-cors"}}).catch(() => null);
  document.getElementById("post").submit();
  setTimeout(() => document.title = "done", 3000);
</script></body></html>"""


@pytest.mark.service
def test_another_origin_cannot_launch_but_the_ui_itself_can(tmp_path):
    require_binary(CHROMIUM, "chromium")
    from playwright.sync_api import sync_playwright

    from tests.servers import serve

    with ui_in_background(tmp_path) as (ui, _pid, _scratch):
        page_html = ATTACK_PAGE.format(ui=ui, launch_url=quote(LAUNCH), launch_js=LAUNCH.replace('"', '\\"'))

        def attacker(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, text=page_html, headers={"Content-Type": "text/html"})

        with serve(attacker) as evil, sync_playwright() as pw:
            evil = evil.replace("127.0.0.1", "localhost")  # another loopback origin, the same site
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"{evil}/")
            page.wait_for_function("document.title === 'done'", timeout=30_000)
            time.sleep(2)
            assert _graphql(ui, RUNS)["runsOrError"]["results"] == []  # nothing was launched

            # The UI's own page: a launch with run config that points ABS elsewhere is refused...
            page.goto(f"{ui}/runs")
            launch = """async ([query, variables]) => (await (await fetch("/graphql", {method: "POST",
                headers: {"Content-Type": "application/json"}, body: JSON.stringify({query, variables})})).json())"""
            typed = ("mutation L($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
                     "... on LaunchRunSuccess { run { runId } } } }")
            selector = {"repositoryLocationName": "mamcrawler", "repositoryName": "__repository__", "jobName": "refresh_library"}
            redirect = {"resources": {"abs_client": {"config": {"base_url": evil, "api_key": {"env": "QBITTORRENT_PASSWORD"}}}}}
            answer = page.evaluate(launch, [typed, {"p": {"selector": selector, "runConfigData": json.dumps(redirect)}}])
            assert answer["data"]["launchRun"]["__typename"] == "RunConfigValidationInvalid"
            # ...and a plain launch and a backfill go through.
            answer = page.evaluate(launch, [typed, {"p": {"selector": selector}}])
            assert answer["data"]["launchRun"]["__typename"] == "LaunchRunSuccess", answer
            backfill = ("mutation B { launchPartitionBackfill(backfillParams: {assetSelection: [{path: [\"book_metadata\"]}], "
                        "partitionNames: [\"00\", \"01\"]}) { __typename ... on LaunchBackfillSuccess { backfillId } } }")
            answer = page.evaluate(launch, [backfill, {}])
            assert answer["data"]["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", answer
            browser.close()
        runs = _graphql(ui, RUNS)["runsOrError"]["results"]
        assert [r["jobName"] for r in runs] == ["refresh_library"]
        # The daemon runs: it picks the backfill up and launches its run.
        deadline = time.monotonic() + 120
        while len(_graphql(ui, RUNS)["runsOrError"]["results"]) < 2 and time.monotonic() < deadline:
            time.sleep(2)
        assert len(_graphql(ui, RUNS)["runsOrError"]["results"]) >= 2
        assert len(_graphql(ui, BACKFILLS)["partitionBackfillsOrError"]["results"]) == 1
