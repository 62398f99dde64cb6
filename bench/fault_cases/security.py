"""Security faults, played as an attacker would: servers that echo the request back, run config
that points a service elsewhere, hostile downloads, a stolen login record.

Each case takes a fresh working folder and returns a `FaultResult`; `secrets_found` counts the
canaries left in that folder (Dagster home, warehouse, data files) and in the captured output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import httpx

from bench.fault_cases import CANARIES, FaultResult, canary_environment, secrets_found
from mamcrawler.importing import PlacementError, UnsafeName, place_files
from tests.servers import free_port, serve

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_CANARY = CANARIES["HARDCOVER_TOKEN"]  # sent as a custom provider's Authorization
KEYLESS_OFF = {name: "0" for name in ("MAMCRAWLER_AUDIBLE", "MAMCRAWLER_AUDNEXUS", "MAMCRAWLER_OPENLIBRARY", "MAMCRAWLER_GOOGLE_BOOKS")}


def _echo(request: httpx.Request) -> str:
    """Everything the client sent, the way an echoing server quotes it (httpbin's /anything:
    headers sorted by name, so `Authorization` and `Cookie` come early)."""
    headers = {k.title(): v for k, v in sorted(request.headers.items())}
    return json.dumps({"headers": headers, "method": request.method, "url": str(request.url),
                       "data": request.content.decode(errors="replace")})


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """`env` as this process's environment (EnvVars resolve from it) for an in-process case."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _production_env(work: Path, **extra: str) -> dict[str, str]:
    """The canaries as configured secrets, everything stored under `work`, nothing on the internet."""
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**canary_environment(), **KEYLESS_OFF, "DAGSTER_HOME": str(home),
           "MAMCRAWLER_WAREHOUSE": str(work / "data" / "warehouse.duckdb"), "MAMCRAWLER_PROFILE": "production"}
    env.pop("HARDCOVER_TOKEN")  # Hardcover's address is fixed: a token would send requests to the internet
    env.pop("GOOGLE_BOOKS_API_KEY")
    return env | extra


def _mamcrawler(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=600,
    )


def _leaks(work: Path, out: subprocess.CompletedProcess) -> int:
    return secrets_found([work], [out.stdout, out.stderr])


# --- servers that echo the request ---------------------------------------------------------

def echoing_abs(work: Path) -> FaultResult:
    """ABS (or a proxy before it) quotes the request, Bearer key and all, in a library name and
    in the error body of the items list."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/libraries":
            echoed = request.headers.get("authorization", "")
            return httpx.Response(200, json={"libraries": [{"id": "lib1", "name": f"Books {echoed}", "mediaType": "book"}]})
        return httpx.Response(400, text=_echo(request))

    with serve(handler) as url:
        out = _mamcrawler(work, _production_env(work, ABS_URL=url), "--skip-metadata", "--skip-acquisition")
    refused = out.returncode != 0 and "answered HTTP 400" in out.stderr
    leaks = _leaks(work, out)
    return FaultResult("security: echoing ABS", survived=refused and leaks == 0, secrets_found=leaks,
                       detail=out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "")


def echoing_provider_and_mam(work: Path) -> FaultResult:
    """A custom metadata provider answers with the request in its titles and error bodies; MAM
    quotes the cookie in its search error. The whole graph runs against them."""
    from resources.replay.abs import AbsReplay

    def provider(request: httpx.Request) -> httpx.Response:
        if "Dune" in request.url.params.get("query", ""):
            return httpx.Response(422, text=_echo(request))
        match = {"title": request.url.params.get("query", ""), "author": request.headers.get("authorization"),
                 "description": _echo(request), "series": [{"series": _echo(request), "sequence": "1"}]}
        return httpx.Response(200, json={"matches": [match]})

    def mam(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("jsonLoad.php"):
            return httpx.Response(200, json={"classname": "User", "ratio": 1.0, "seedbonus": 0, "vip_until": None,
                                             "username": request.headers.get("cookie")})
        return httpx.Response(200, json={"error": f"Nothing returned for {_echo(request)}"})

    with serve(AbsReplay(token=CANARIES["ABS_API_KEY"])) as abs_url, serve(provider) as provider_url, serve(mam) as mam_url:
        env = _production_env(
            work, ABS_URL=abs_url, MAMCRAWLER_CUSTOM_PROVIDERS=f"echo={provider_url}",
            CUSTOM_PROVIDER_AUTH_ECHO=PROVIDER_CANARY, MAMCRAWLER_MAM_URL=mam_url, MAMCRAWLER_MAM_MIN_INTERVAL_S="0",
            MAMCRAWLER_MAX_SEARCHES_PER_RUN="3", MAMCRAWLER_INDEXERS="mam",
        )
        out = _mamcrawler(work, env)
    leaks = _leaks(work, out)
    # Everything ran up to the search, which fails as MAM answered nothing but errors.
    ran = (work / "data" / "warehouse.duckdb").exists() and "MAM search answered error" in out.stderr
    return FaultResult("security: echoing provider and MAM", survived=ran and leaks == 0, secrets_found=leaks,
                       detail=f"exit {out.returncode}; " + (out.stderr.strip().splitlines() or [""])[-1])


# --- run config that points a service elsewhere --------------------------------------------

def run_config_redirects_abs(work: Path) -> FaultResult:
    """A launch with run config that sends the ABS client, with the qBittorrent password as
    its key, to another host: refused before anything is sent."""
    from dagster import DagsterInstance, DagsterInvalidConfigError

    from pipelines.definitions import build_definitions
    from pipelines.profiles import Profile

    seen: list[str] = []

    def attacker(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={"libraries": []})

    env = _production_env(work, ABS_URL="http://127.0.0.1:9")
    with serve(attacker) as url, _environment(env):
        run_config = {"resources": {"abs_client": {"config": {"base_url": url, "api_key": {"env": "QBITTORRENT_PASSWORD"}}}}}
        defs = build_definitions(Profile("production", "fault case"), env)
        try:
            with DagsterInstance.ephemeral() as instance:
                defs.resolve_job_def("refresh_library").execute_in_process(run_config=run_config, instance=instance)
            refused, detail = False, "the run was launched"
        except DagsterInvalidConfigError as exc:
            refused, detail = True, str(exc).splitlines()[-1].strip()
    leaks = secrets_found([work], seen)
    return FaultResult("security: run config redirects ABS", survived=refused and not seen, secrets_found=leaks,
                       detail=f"{detail}; attacker saw {len(seen)} requests")


def demo_dry_run_off(work: Path) -> FaultResult:
    """The demo with `acquisition.dry_run: false` in run config: refused; and its qBittorrent
    refuses to log in even when asked directly."""
    from dagster import DagsterInstance, DagsterInvalidConfigError

    from pipelines.definitions import build_definitions
    from pipelines.profiles import Profile
    from resources.qbittorrent import QBittorrentError

    defs = build_definitions(Profile("demo", "fault case"), {})
    run_config = {"resources": {"acquisition": {"config": {"dry_run": False}}}}
    try:
        with DagsterInstance.ephemeral() as instance:
            defs.resolve_job_def("search_and_queue").execute_in_process(run_config=run_config, instance=instance)
        refused = False
    except DagsterInvalidConfigError:
        refused = True
    try:
        defs.resources["qbittorrent"].torrents()
        contacted = True
    except QBittorrentError:
        contacted = False
    return FaultResult("security: demo with dry run off", survived=refused and not contacted,
                       detail=f"run config refused: {refused}; qBittorrent contacted: {contacted}")


# --- the qBittorrent login record ----------------------------------------------------------

def stolen_login_record(work: Path) -> FaultResult:
    """After a failed login the record on disk must not confirm a guessed password offline."""
    from resources.qbittorrent import QBittorrentAuthError, QBittorrentResource

    def qbittorrent(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="Fails.")  # qBittorrent's answer to a wrong password

    record = work / "data" / "qbittorrent_login.json"
    password = CANARIES["QBITTORRENT_PASSWORD"]
    with serve(qbittorrent) as url:
        client = QBittorrentResource(url=url, username="admin", password=password, login_state_path=str(record))
        with contextlib.suppress(QBittorrentAuthError):
            client.torrents()
    text = record.read_text() if record.exists() else ""
    unkeyed = hashlib.sha256(json.dumps(["admin", password]).encode()).hexdigest()
    offline_checkable = unkeyed[:16] in text
    key = record.with_suffix(".key")
    private = key.exists() and (key.stat().st_mode & 0o077) == 0
    return FaultResult("security: stolen qBittorrent login record", survived=bool(text) and not offline_checkable and private,
                       secrets_found=secrets_found([work]),
                       detail=f"record written: {bool(text)}; unkeyed hash in it: {offline_checkable}; key file 0600: {private}")


# --- the UI ---------------------------------------------------------------------------------

SELECTOR = '{repositoryLocationName: "mamcrawler", repositoryName: "__repository__", jobName: "refresh_library"}'
LAUNCH = f'mutation {{ launchRun(executionParams: {{selector: {SELECTOR}, mode: "default"}}) {{ __typename }} }}'


def processes_of(session: int) -> set[int]:
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
    """`setsid mamcrawler ui &` from a script (SIGINT arrives ignored); yields (url, pid, tmpdir).

    The TMPDIR given is short, so the UI's scratch folder (and the sockets in it) lies inside it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    scratch = Path(tempfile.mkdtemp(prefix="ui-", dir="/tmp"))
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    log = tmp_path / "ui.log"
    script = tmp_path / "start.sh"
    script.write_text(f"setsid {ROOT}/.venv/bin/mamcrawler ui --port {port} >{log} 2>&1 &\necho $!\n")
    env = {"MAMCRAWLER_WAREHOUSE": str(tmp_path / "data" / "warehouse.duckdb"), **os.environ,
           "DAGSTER_HOME": str(home), "TMPDIR": str(scratch)}
    pid = int(subprocess.run(["bash", str(script)], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not graphql(url, "{ assetNodes { id } }", quiet=True):
            if time.monotonic() > deadline or not Path(f"/proc/{pid}").exists():
                errors = [line for line in log.read_text().splitlines() if "Error" in line]
                raise RuntimeError("mamcrawler ui did not start:\n" + "\n".join(errors)[-3000:])
            time.sleep(1)
        yield url, pid, scratch
    finally:
        if Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(scratch, ignore_errors=True)


def graphql(url: str, query: str, variables: dict | None = None, quiet: bool = False) -> dict:
    try:
        answer = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30).json()
    except (httpx.HTTPError, ValueError):
        if quiet:
            return {}
        raise
    data = answer.get("data") or {}
    return data if all(data.values()) else {}


RUNS = "{ runsOrError { ... on Runs { results { runId jobName } } } }"


def ui_processes(work: Path, pid: int) -> set[int]:
    """The UI, the daemon it started and everything in their sessions (code servers)."""
    daemon = int((work / "ui.log").read_text().split("daemon pid ")[1].split(")")[0])
    return {pid, daemon} | processes_of(pid) | processes_of(daemon)


def stop_ui(pid: int, tree: set[int], signum: int, timeout_s: float = 60) -> list[int]:
    """Send `signum` to the UI; the processes of `tree` still running after `timeout_s`."""
    os.kill(pid, signum)
    deadline = time.monotonic() + timeout_s
    while any(Path(f"/proc/{p}").exists() for p in tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [p for p in tree if Path(f"/proc/{p}").exists()]


def ui_cross_site_then_sigterm(work: Path) -> FaultResult:
    """Requests as another page's would arrive (an <img>, a form, a no-cors fetch, DNS
    rebinding, a bare GET mutation): all refused, no run launched; then SIGTERM stops the
    whole tree and leaves no temporary file."""
    with ui_in_background(work) as (url, pid, scratch):
        port = url.rsplit(":", 1)[1]
        tree = ui_processes(work, pid)
        page = {"Origin": "http://localhost:1", "Sec-Fetch-Site": "same-site"}
        attempts = [
            httpx.get(f"{url}/graphql", params={"query": LAUNCH}, headers=page),
            httpx.get(f"{url}/graphql", params={"query": LAUNCH}),
            httpx.post(f"{url}/graphql", params={"query": LAUNCH}, content="x=y",
                       headers={**page, "Content-Type": "application/x-www-form-urlencoded"}),
            httpx.post(f"{url}/graphql", content=json.dumps({"query": LAUNCH}), headers={**page, "Content-Type": "text/plain"}),
            httpx.post(f"{url}/graphql", json={"query": LAUNCH}, headers={"Host": f"rebound.example:{port}"}),
        ]
        refused = sum(r.status_code == 403 for r in attempts)
        runs = len(graphql(url, RUNS)["runsOrError"]["results"])
        left = stop_ui(pid, tree, signal.SIGTERM)
        leftovers = list(scratch.iterdir())
    return FaultResult("security: UI cross-site requests, then SIGTERM", hung=bool(left),
                       survived=refused == len(attempts) and runs == 0 and not left and not leftovers,
                       detail=f"{refused}/{len(attempts)} refused, {runs} runs launched, {len(left)} processes left "
                       f"of {len(tree)}, {len(leftovers)} temporary files left")


# --- hostile downloads -------------------------------------------------------------------

def _download(work: Path) -> tuple[Path, Path, Path]:
    """A download folder with one real audio file, an outside file and an empty library."""
    download, outside, library = work / "download", work / "outside", work / "library"
    for folder in (download, outside, library):
        folder.mkdir(parents=True)
    (download / "01.mp3").write_bytes(b"ID3" + b"\x00" * 2000)
    (outside / "secret.txt").write_text("the user's private file")
    return download, outside, library


def _refused(name: str, work: Path, library: Path, outside: Path, attempt: Callable[[], object], reason: str) -> FaultResult:
    """`attempt` must fail with a placement error naming `reason`, leave the outside file alone
    and put nothing but what was already there into the library."""
    before = sorted(p for p in library.rglob("*"))
    secret = (outside / "secret.txt").read_bytes()
    try:
        attempt()
        return FaultResult(name, survived=False, detail="placed")
    except (PlacementError, UnsafeName) as exc:
        message = str(exc)
    except OSError as exc:
        return FaultResult(name, survived=False, detail=f"raw {type(exc).__name__} escaped: {exc}")
    untouched = (outside / "secret.txt").read_bytes() == secret and sorted(p for p in library.rglob("*")) == before
    return FaultResult(name, survived=reason in message and untouched, rows_lost=0 if untouched else 1, detail=message)


def symlink_out(work: Path) -> FaultResult:
    download, outside, library = _download(work)
    (download / "cover.jpg").symlink_to(outside / "secret.txt")
    sources = [(download / "01.mp3", PurePosixPath("01.mp3")), (download / "cover.jpg", PurePosixPath("cover.jpg"))]
    return _refused("security: download with a symlink out", work, library, outside,
                    lambda: place_files(sources, library / "Author" / "Title", root=download), "symbolic link")


def symlinked_folder(work: Path) -> FaultResult:
    download, outside, library = _download(work)
    (outside / "02.mp3").write_bytes(b"ID3" + b"\x01" * 2000)
    (download / "CD2").symlink_to(outside, target_is_directory=True)
    sources = [(download / "01.mp3", PurePosixPath("01.mp3")), (download / "CD2" / "02.mp3", PurePosixPath("CD2/02.mp3"))]
    return _refused("security: download with a symlinked folder", work, library, outside,
                    lambda: place_files(sources, library / "Author" / "Title", root=download), "symbolic link")


def hardlink_out(work: Path) -> FaultResult:
    download, outside, library = _download(work)
    os.link(outside / "secret.txt", download / "notes.mp3")
    sources = [(download / "01.mp3", PurePosixPath("01.mp3")), (download / "notes.mp3", PurePosixPath("notes.mp3"))]
    return _refused("security: download with a hard link out", work, library, outside,
                    lambda: place_files(sources, library / "Author" / "Title", root=download), "hard links")


def name_of_300_characters(work: Path) -> FaultResult:
    download, outside, library = _download(work)
    sources = [(download / "01.mp3", PurePosixPath("x" * 300 + ".mp3"))]
    return _refused("security: a name of 300 characters", work, library, outside,
                    lambda: place_files(sources, library / "Author" / "Title"), "length limit")


def path_over_the_limit(work: Path) -> FaultResult:
    download, outside, library = _download(work)
    deep = library.joinpath(*(["d" * 200] * 25))  # about 5,000 bytes: over PATH_MAX
    sources = [(download / "01.mp3", PurePosixPath("01.mp3"))]
    return _refused("security: a destination path over the limit", work, library, outside,
                    lambda: place_files(sources, deep), "length limit")


def existing_folder(work: Path) -> FaultResult:
    download, outside, library = _download(work)
    theirs = library / "Author" / "Title"
    theirs.mkdir(parents=True)
    (theirs / "their book.m4b").write_bytes(b"the user's own copy")
    sources = [(download / "01.mp3", PurePosixPath("01.mp3"))]
    return _refused("security: an existing book folder", work, library, outside,
                    lambda: place_files(sources, theirs, owner="0" * 40), "not merging")


def same_size_other_content(work: Path) -> FaultResult:
    download, outside, library = _download(work)
    destination = library / "Author" / "Title"
    (download / "02.mp3").write_bytes(b"ID3" + b"\x02" * 2000)
    place_files([(download / "01.mp3", PurePosixPath("01.mp3"))], destination, owner="ih")
    (destination / "02.mp3").write_bytes(b"ID3" + b"\x03" * 2000)  # same size, other bytes
    sources = [(download / "01.mp3", PurePosixPath("01.mp3")), (download / "02.mp3", PurePosixPath("02.mp3"))]
    return _refused("security: same size, other content", work, library, outside,
                    lambda: place_files(sources, destination, owner="ih"), "different '02.mp3'")


DOWNLOAD_CASES = [
    symlink_out, symlinked_folder, hardlink_out, name_of_300_characters, path_over_the_limit, existing_folder,
    same_size_other_content,
]
CASES = [
    ui_cross_site_then_sigterm, echoing_abs, echoing_provider_and_mam, run_config_redirects_abs, demo_dry_run_off, stolen_login_record,
    *DOWNLOAD_CASES,
]
