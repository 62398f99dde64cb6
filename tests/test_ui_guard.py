"""`mamcrawler ui`: no other web page can drive it, its own pages still can, and it stops
cleanly on SIGTERM and SIGINT when a script starts it in the background with setsid."""

import json
import signal
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from bench.fault_cases.security import LAUNCH, RUNS, graphql, stop_ui, ui_in_background, ui_processes
from pipelines.ui import SOCKET_PATH_MAX, allowed_hosts, refusal, scratch_folder
from tests.conftest import require_binary

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HOSTS = allowed_hosts("127.0.0.1", 3000)
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

def test_the_scratch_folder_leaves_room_for_the_code_server_sockets(tmp_path, monkeypatch):
    """Under a long TMPDIR (pytest's own under xdist) every code server failed to bind."""
    short, long = Path(tempfile.mkdtemp(dir="/tmp")), tmp_path / ("x" * 90)
    long.mkdir()
    for tmpdir, parent in ((short, short), (long, Path("/tmp"))):
        monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
        scratch = scratch_folder()
        try:
            assert scratch.parent == parent
            assert len(str(scratch / "tmpabcdefgh")) <= SOCKET_PATH_MAX
        finally:
            scratch.rmdir()
    short.rmdir()


@pytest.mark.service
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_ui_stops_cleanly_when_started_in_the_background(tmp_path, stop):
    with ui_in_background(tmp_path) as (url, pid, scratch):
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt")).split()[1], 16)
        assert caught & (1 << (signal.SIGINT - 1)) and caught & (1 << (signal.SIGTERM - 1))
        tree = ui_processes(tmp_path, pid)
        assert len(tree) >= 4  # the UI, its code server, the daemon and the daemon's code server
        assert any(scratch.iterdir())  # the code servers' sockets live there while it runs
        assert stop_ui(pid, tree, stop) == []
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
            assert graphql(ui, RUNS)["runsOrError"]["results"] == []  # nothing was launched

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
        runs = graphql(ui, RUNS)["runsOrError"]["results"]
        assert [r["jobName"] for r in runs] == ["refresh_library"]
        # The daemon runs: it picks the backfill up and launches its run.
        deadline = time.monotonic() + 120
        while len(graphql(ui, RUNS)["runsOrError"]["results"]) < 2 and time.monotonic() < deadline:
            time.sleep(2)
        assert len(graphql(ui, RUNS)["runsOrError"]["results"]) >= 2
        assert len(graphql(ui, BACKFILLS)["partitionBackfillsOrError"]["results"]) == 1
