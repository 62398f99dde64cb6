"""One retry policy for every HTTP service: backoff on 5xx, 429 and connection errors.

4xx answers are never retried (a wrong token stays wrong); `Retry-After` (or
`RateLimit-Reset`) is honoured.
Errors raised from here carry the method and path only: never headers, cookies or a
query string, so a secret sent by a caller cannot leak into logs or exception text.
"""

from __future__ import annotations

import contextlib
import logging
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
) -> httpx.Response:
    """Call `send` until it returns a response not worth retrying; `what` names the call safely.

    `retryable` can refuse a retry (a spent daily quota will not pass); `on_wait` hears about
    every wait before it happens (a rate limiter pauses all its callers on a 429).
    """
    attempt = 0
    while True:
        try:
            response = send()
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            last: httpx.Response | Exception = exc
            wait = None
        else:
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
