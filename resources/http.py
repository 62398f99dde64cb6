"""One retry policy for every HTTP service: backoff on 5xx, 429 and connection errors, and
a circuit breaker that stops asking a service that does not answer at all.

4xx answers are never retried (a wrong token stays wrong); `Retry-After` (or
`RateLimit-Reset`) is honoured.
Errors raised from here carry the method and path only: never headers, cookies or a
query string, so a secret sent by a caller cannot leak into logs or exception text.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from resources.secrets import scrub

log = logging.getLogger("mamcrawler.http")

RETRY_STATUS = {429, 500, 502, 503, 504}


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: `Retry-After` (seconds or an HTTP date), else `RateLimit-Reset`
    (Hardcover sends unix seconds; others send a delta), capped at five minutes."""
    value = response.headers.get("Retry-After")
    seconds: float | None = None
    if value is not None:
        try:
            seconds = float(value)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
    elif (reset := response.headers.get("RateLimit-Reset")) is not None:
        with contextlib.suppress(ValueError):
            seconds = float(reset)
            if seconds > 1e9:
                seconds -= time.time()
    return None if seconds is None else min(300.0, max(0.0, seconds))


class ServiceUnreachable(Exception):
    """The circuit breaker is open: the service did not answer several times in a row."""


class CircuitBreaker:
    """Per service and run: `threshold` connection failures in a row (connect errors,
    timeouts, dropped connections; never an HTTP answer, whatever its status) open it, and
    every later call fails at once with `ServiceUnreachable` instead of waiting and retrying.
    Any answer closes the count again. Thread-safe."""

    def __init__(self, threshold: int = 5) -> None:
        self.threshold = threshold
        self.failures = 0
        self.last_error = ""
        self.is_open = False
        self.lock = threading.Lock()

    def check(self, what: str) -> None:
        if self.is_open:
            raise ServiceUnreachable(f"{what}: not sent, {self.describe()}")

    def failed(self, exc: Exception) -> None:
        with self.lock:
            self.failures += 1
            self.last_error = type(exc).__name__
            self.is_open = self.is_open or self.failures >= self.threshold

    def answered(self) -> None:
        with self.lock:
            if not self.is_open:
                self.failures = 0

    def describe(self) -> str:
        return f"unreachable after {self.failures} connection failures in a row (last: {self.last_error})"


def send_with_retries(
    send: Callable[[], httpx.Response],
    what: str,
    *,
    max_retries: int = 4,
    backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    retryable: Callable[[httpx.Response], bool] = lambda _: True,
    on_wait: Callable[[httpx.Response | Exception, float], None] = lambda _last, _delay: None,
    sleep: Callable[[float], None] = time.sleep,
    breaker: CircuitBreaker | None = None,
) -> httpx.Response:
    """Call `send` until it returns a response not worth retrying; `what` names the call safely.

    `retryable` can refuse a retry (a spent daily quota will not pass); `on_wait` hears about
    every wait before it happens (a rate limiter pauses all its callers on a 429); an open
    `breaker` raises `ServiceUnreachable` before any attempt.
    """
    attempt = 0
    while True:
        if breaker is not None:
            breaker.check(what)
        try:
            response = send()
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            last: httpx.Response | Exception = exc
            wait = None
            if breaker is not None:
                breaker.failed(exc)
                breaker.check(what)
        else:
            if breaker is not None:
                breaker.answered()
            if response.status_code not in RETRY_STATUS or not retryable(response):
                return response
            last, wait = response, retry_after(response)
        if attempt >= max_retries:
            if isinstance(last, Exception):
                raise last
            return last
        delay = wait if wait is not None else min(max_backoff_s, backoff_s * 2**attempt)
        log.warning("%s failed (%s); retry %d/%d in %.1fs", scrub(what), _describe(last), attempt + 1, max_retries, delay)
        on_wait(last, delay)
        sleep(delay)
        attempt += 1


def _describe(last: httpx.Response | Exception) -> str:
    return f"HTTP {last.status_code}" if isinstance(last, httpx.Response) else type(last).__name__
