"""One retry policy for every HTTP service: backoff on 5xx, 429 and connection errors.

4xx answers are never retried (a wrong token stays wrong); `Retry-After` is honoured.
Errors raised from here carry the method and path only: never headers, cookies or a
query string, so a secret sent by a caller cannot leak into logs or exception text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

log = logging.getLogger("mamcrawler.http")

RETRY_STATUS = {429, 500, 502, 503, 504}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def send_with_retries(
    send: Callable[[], httpx.Response],
    what: str,
    *,
    max_retries: int = 4,
    backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """Call `send` until it returns a non-retryable response; `what` names the call safely."""
    attempt = 0
    while True:
        try:
            response = send()
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            last: httpx.Response | Exception = exc
            wait = None
        else:
            if response.status_code not in RETRY_STATUS:
                return response
            last, wait = response, _retry_after(response)
        if attempt >= max_retries:
            if isinstance(last, Exception):
                raise last
            return last
        delay = min(max_backoff_s, wait if wait is not None else backoff_s * 2**attempt)
        log.warning("%s failed (%s); retry %d/%d in %.1fs", what, _describe(last), attempt + 1, max_retries, delay)
        sleep(delay)
        attempt += 1


def _describe(last: httpx.Response | Exception) -> str:
    return f"HTTP {last.status_code}" if isinstance(last, httpx.Response) else type(last).__name__
