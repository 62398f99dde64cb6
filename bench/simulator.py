"""A provider simulator on loopback: fixed latency, a server-side rate limit that answers
429 when exceeded, and optional error injection. Bounded: it serves until stopped."""

import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

from mamcrawler.candidates import Candidate
from resources.metadata_provider import MetadataProvider


class SimulatorStats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.served = 0
        self.throttled = 0
        self.failed = 0


@contextlib.contextmanager
def provider_simulator(
    latency_s: float = 0.2, limit_per_s: float = 10.0, burst: float = 10.0, error_rate: float = 0.0, seed: int = 1
) -> Iterator[tuple[str, SimulatorStats]]:
    """Yields (base URL, stats). Over the limit -> 429 with Retry-After; a request is
    answered `latency_s` after it arrives, like a remote API."""
    stats = SimulatorStats()
    bucket = {"tokens": burst, "stamp": time.monotonic()}
    rng = random.Random(seed)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with stats.lock:
                now = time.monotonic()
                bucket["tokens"] = min(burst, bucket["tokens"] + (now - bucket["stamp"]) * limit_per_s)
                bucket["stamp"] = now
                allowed = bucket["tokens"] >= 1
                if allowed:
                    bucket["tokens"] -= 1
                fail = allowed and rng.random() < error_rate
            time.sleep(latency_s)
            if not allowed:
                with stats.lock:
                    stats.throttled += 1
                self._send(429, {"error": "rate limited"}, {"Retry-After": "1"})
            elif fail:
                with stats.lock:
                    stats.failed += 1
                self._send(503, {"error": "injected"})
            else:
                with stats.lock:
                    stats.served += 1
                title = parse_qs(urlparse(self.path).query).get("q", [""])[0]
                self._send(200, {"books": [{"title": title, "authors": ["Synthetic Author"]}]})

        def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", stats
    finally:
        server.shutdown()
        server.server_close()


class SimulatedProvider(MetadataProvider):
    """A provider speaking the simulator's tiny protocol, through the real base machinery."""

    name: ClassVar[str] = "simulated"
    server_name: str = "simulated"

    @property
    def provider_name(self) -> str:
        return self.server_name

    def search(self, session, query):
        body = session.get_json("/search", {"q": query.title})
        return [Candidate(provider=self.provider_name, title=b["title"], authors=tuple(b["authors"])) for b in body["books"]]
