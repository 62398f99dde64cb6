"""The real Dagster webserver, looked at through headless Chromium (Debian's, via Playwright)."""

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance

from pipelines.definitions import build_definitions
from pipelines.profiles import Profile
from tests.conftest import ARTIFACTS, require_binary
from tests.servers import free_port
from tests.test_definitions import GRAPH

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@contextlib.contextmanager
def webserver(home: Path, command: str = "dagster-webserver"):
    """Start `dagster-webserver` (or `dagster dev`) on a free loopback port; stop its whole process group."""
    port = free_port()
    log = (home / "webserver.log").open("w")
    args = ["dev"] if command == "dagster" else []
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin" / command), *args, "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=ROOT, env={**os.environ, "DAGSTER_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so the whole tree stops with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dagster-webserver did not start:\n" + (home / "webserver.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        # `dagster dev` ignores SIGTERM sent from a non-interactive shell unless it leads its
        # own session: start_new_session above, then signal the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def _dismiss_welcome(page) -> None:
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Skip").click(timeout=3000)


@pytest.mark.service
def test_lineage_and_materialisation_metadata_in_the_ui(tmp_path, monkeypatch):
    require_binary(CHROMIUM, "chromium")
    from playwright.sync_api import sync_playwright

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        defs = build_definitions(Profile("demo", "t"))
        for job in ("refresh_library", "search_and_queue"):
            assert defs.resolve_job_def(job).execute_in_process(instance=instance).success
    ARTIFACTS.mkdir(exist_ok=True)
    with webserver(home) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/assets/missing_books?view=lineage&lineageScope=upstream&lineageDepth=5")
        _dismiss_welcome(page)
        for name in ("abs_library_items", "library_books", "missing_books"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        for group in ("library", "completeness"):
            assert page.get_by_text(group, exact=True).count() >= 1
        page.screenshot(path=str(ARTIFACTS / "lineage.png"))

        page.goto(f"{url}/assets/missing_books")
        _dismiss_welcome(page)
        page.get_by_text("status_counts").first.wait_for(timeout=60_000)
        body = page.inner_text("body")
        assert "45" in body and "demo" in body
        page.screenshot(path=str(ARTIFACTS / "missing_books.png"), full_page=True)

        page.goto(f"{url}/assets/series_completeness")
        _dismiss_welcome(page)
        page.get_by_text("picture").first.wait_for(timeout=60_000)
        assert "Discworld" in page.inner_text("body")
        page.screenshot(path=str(ARTIFACTS / "series_completeness.png"), full_page=True)

        # Every candidate release with its score, and the reason for each choice.
        page.goto(f"{url}/assets/release_candidates")
        _dismiss_welcome(page)
        page.get_by_text("books_with_a_release").first.wait_for(timeout=60_000)
        assert "omnibus covers owned" in page.inner_text("body")  # the rejections table
        page.locator("tr", has_text="choices").get_by_text("Show Markdown").click()
        page.get_by_text("best of 1 acceptable release").first.wait_for(timeout=10_000)
        page.wait_for_timeout(500)  # the dialog fades in; the screenshot is for people
        page.screenshot(path=str(ARTIFACTS / "release_candidates.png"), full_page=True)

        page.goto(f"{url}/assets/download_requests")
        _dismiss_welcome(page)
        page.get_by_text("would_send").first.wait_for(timeout=60_000)
        assert "dry run" in page.inner_text("body")
        page.screenshot(path=str(ARTIFACTS / "download_requests.png"), full_page=True)
        browser.close()


@pytest.mark.service
def test_dagster_dev_serves_the_code_location_and_stops(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    with webserver(home, command="dagster") as url:
        query = "{ assetNodes { assetKey { path } groupName } }"
        deadline = time.monotonic() + 120
        while True:  # the code server loads after the webserver answers
            nodes = httpx.post(f"{url}/graphql", json={"query": query}, timeout=10).json()["data"]["assetNodes"]
            if nodes or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert {(n["assetKey"]["path"][0], n["groupName"]) for n in nodes} == {(k, g) for k, (g, _) in GRAPH.items()}
        port = url.rsplit(":", 1)[1]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
