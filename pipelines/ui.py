"""`mamcrawler ui`: the Dagster webserver and daemon, behind a guard no web page can get past,
stopped cleanly by Ctrl-C or SIGTERM however it was started.

Dagster's GraphQL answers any Origin, takes mutations over GET and reads a form POST's query
from the URL, so any page the user visits could launch runs. `CrossSiteGuard` (ASGI middleware
around the webserver's app) refuses a request whose Host is not this server's (DNS
rebinding), whose Origin is another's, or whose `Sec-Fetch-Site` says another site sent it
(a link to a UI page still opens); on `/graphql` it refuses operations other than queries
in the URL, and POST bodies that are not JSON (a cross-site page cannot send JSON without a
CORS preflight, which is never granted).

`dagster dev` ignores SIGTERM, and a process a script starts in the background inherits
SIGINT ignored (and Dagster maps SIGTERM to SIGINT's handler): this command sets both
handlers itself before it starts anything, so its children inherit the defaults. Every
temporary file of the tree goes under one folder (`TMPDIR`) that is removed at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
STOP_TIMEOUT_S = 30.0


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host values this server answers to: the bound address, and every loopback name when
    it is bound to loopback (`extra`: names a reverse proxy or another machine uses)."""
    names = {host, *LOOPBACK} if host in ("127.0.0.1", "localhost", "::1") else {host}
    names = {f"[{n}]" if ":" in n and not n.startswith("[") else n for n in names}
    return frozenset({f"{n.lower()}:{port}" for n in names} | {h.lower() for h in extra})


def refusal(method: str, path: str, query_string: bytes, headers: dict[str, str], hosts: frozenset[str]) -> str | None:
    """Why a request must not reach the webserver, or None."""
    host = headers.get("host", "").lower()
    if host not in hosts:
        return f"Host {host or '(none)'} is not this server"
    origin = headers.get("origin")
    if origin is not None and origin.lower() not in {f"http://{h}" for h in hosts}:
        return f"cross-origin request from {origin}"
    site = headers.get("sec-fetch-site")
    navigation = method == "GET" and headers.get("sec-fetch-mode") == "navigate" and not path.endswith("/graphql")
    if site not in (None, "same-origin", "none") and not navigation:
        return f"request sent by another site (Sec-Fetch-Site: {site})"
    if path.endswith("/graphql"):
        for query in parse_qs(query_string.decode("latin-1")).get("query", []):
            if not _only_queries(query):
                return "GraphQL operations other than queries are not taken from the URL"
        if method == "POST" and not headers.get("content-type", "").lower().startswith(("application/json", "application/graphql")):
            return "GraphQL over POST must be application/json"
    return None


def _only_queries(text: str) -> bool:
    try:
        document = parse(text)
    except GraphQLError:
        return False
    return all(
        d.operation == OperationType.QUERY for d in document.definitions if isinstance(d, OperationDefinitionNode)
    )


class CrossSiteGuard:
    """ASGI middleware: `refusal` decides, a refused request gets 403 and never reaches the app."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        reason = refusal(scope.get("method", "GET"), scope["path"], scope.get("query_string", b""), headers, self.hosts)
        if reason is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # websocket.connect; closing before accepting answers 403
            await send({"type": "websocket.close", "code": 1008})
            return None
        body = f"refused: {reason}\n".encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return None


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def _on_signal(signum: int, _frame: object) -> None:
    # One signal starts the shutdown; more would only interrupt the cleanup.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stop(signal.Signals(signum).name)


def _die_with_parent() -> None:
    """In the daemon's child: SIGTERM when this process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _start_daemon(workspace: Path, log: Path) -> subprocess.Popen:
    daemon = Path(sys.executable).with_name("dagster-daemon")
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(daemon), "run", "-w", str(workspace)], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )


def _stop_daemon(daemon: subprocess.Popen) -> None:
    """SIGTERM (Dagster's daemon then stops its code server), then the whole group by force."""
    if daemon.poll() is None:
        daemon.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.wait(timeout=STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(daemon.pid, signal.SIGKILL)  # anything of its group left behind
    with contextlib.suppress(subprocess.TimeoutExpired):
        daemon.wait(timeout=5)


@contextlib.asynccontextmanager
async def _lifespan(_app: object) -> AsyncIterator[None]:
    import asyncio

    with contextlib.suppress(asyncio.CancelledError):  # uvicorn cancels it on shutdown
        yield


# Dagster puts each code server's gRPC socket in TMPDIR as "<TMPDIR>/tmpXXXXXXXX", and a Unix
# socket path holds 107 bytes at most: under a long TMPDIR every code server failed to start
# and the UI came up with no assets.
SOCKET_PATH_MAX = 107
_SCRATCH_AND_SOCKET = len("/mamcrawler-ui-XXXXXXXX/tmpXXXXXXXX")


def scratch_folder() -> Path:
    """A fresh folder for every temporary file of the UI's process tree, short enough for the
    sockets in it: under TMPDIR when that leaves room, else under /tmp."""
    base = tempfile.gettempdir()
    if len(os.fsencode(base)) + _SCRATCH_AND_SOCKET > SOCKET_PATH_MAX:
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="mamcrawler-ui-", dir=base))


def serve(host: str, port: int, workspace: Path, extra_hosts: Iterable[str] = (), say: Callable[[str], None] = print) -> int:
    """Run the guarded webserver and the daemon until SIGINT or SIGTERM; 0 after a clean stop."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)
    scratch = scratch_folder()
    os.environ["TMPDIR"] = str(scratch)  # every temporary file of the tree, removed below
    tempfile.tempdir = None
    daemon: subprocess.Popen | None = None
    stopped_by = ""
    try:
        import uvicorn
        from dagster import DagsterInstance
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import WorkspaceFileTarget
        from dagster_webserver.app import create_app_from_workspace_process_context
        from dagster_webserver.version import __version__

        from pipelines.cli import ensure_dagster_home

        home = ensure_dagster_home()
        with DagsterInstance.get() as instance:
            daemon = _start_daemon(workspace, home / "daemon.log")
            target = WorkspaceFileTarget(paths=[str(workspace)])
            with WorkspaceProcessContext(instance, version=__version__, read_only=False, workspace_load_target=target) as context:
                app = create_app_from_workspace_process_context(context, lifespan=_lifespan)
                hosts = allowed_hosts(host, port, extra_hosts)
                config = uvicorn.Config(CrossSiteGuard(app, hosts), host=host, port=port, log_level="warning",
                                        timeout_graceful_shutdown=5, lifespan="on")
                say(f"Dagster UI on http://{'[' + host + ']' if ':' in host else host}:{port} (daemon pid {daemon.pid}); "
                    f"stop it with Ctrl-C or `kill {os.getpid()}`")
                uvicorn.Server(config).run()
    except _Stop as stop:
        stopped_by = str(stop)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if daemon is not None:
            _stop_daemon(daemon)
        shutil.rmtree(scratch, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    say(f"Dagster UI stopped{f' ({stopped_by})' if stopped_by else ''}; daemon and code servers stopped")
    return 0
