"""What every metadata provider resource shares: pacing, retries, caching, counting, errors.

A provider subclass only builds requests and parses answers (`search`). This base:
- paces requests with a token bucket per process (the `metadata_providers` Dagster pool
  keeps concurrent runs from adding their own buckets on top),
- retries 5xx and timeouts with backoff and honours `Retry-After` on 429 (the wait is
  counted as throttled seconds), never retries other 4xx,
- stops asking a provider for the rest of the run once it has not answered
  `unreachable_after` times in a row (its books stay pending for the next run),
- caches answers in the warehouse with a time-to-live (`ResponseCache`), so a monthly full
  refresh does not repeat yesterday's requests,
- rejects answers that are not JSON (HTML error pages with status 200, wrong content
  types, truncated bodies, bodies over `max_body_bytes`) with a counted reason.
Errors never carry request headers or query strings: keys and tokens stay out of logs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import polars as pl
from dagster import ConfigurableResource
from pydantic import Field

from mamcrawler.candidates import BookQuery, Candidate, sanitise
from mamcrawler.warehouse import Warehouse
from resources.fixed import FixedConfig
from resources.http import CircuitBreaker, ServiceUnreachable, send_with_retries
from resources.secrets import ScrubbedError, register, scrubbed_json

PROVIDER_POOL = "metadata_providers"

# httpx logs full URLs at INFO; a provider key sent as a query parameter must not reach logs.
logging.getLogger("httpx").setLevel(logging.WARNING)


class ProviderError(ScrubbedError):
    """Base: a provider call failed."""


class ProviderAuthError(ProviderError):
    """The provider rejected our credentials (401/403)."""


class ProviderQuotaError(ProviderError):
    """A daily budget is spent; the run stops asking this provider and resumes another day."""


class ProviderUnavailableError(ProviderError):
    """Unreachable, timing out or answering 5xx after retries."""


class ProviderUnreachableError(ProviderUnavailableError):
    """No answer at all several times in a row: the provider is skipped for the rest of the run."""


class ProviderResponseError(ProviderError):
    """An answer that is not the JSON the provider documents."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; thread-safe."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, max(1.0, burst), clock
        self.tokens = self.burst
        self.stamp = clock()
        self.lock = threading.Lock()

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Take one token, sleeping until there is one; returns the seconds slept."""
        waited = 0.0
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return waited
                delay = (1 - self.tokens) / self.rate
            sleep(delay)
            waited += delay

    def pause(self, seconds: float) -> None:
        """After a 429: no token for `seconds`, for every thread."""
        with self.lock:  # several threads may report the same 429: the pause does not add up
            self.tokens = min(self.tokens, -seconds * self.rate)


@dataclass
class ProviderStats:
    requests: int = 0
    cache_hits: int = 0
    errors: int = 0
    throttled_s: float = 0.0
    rate_limited: int = 0  # 429 answers received
    unreachable: str = ""  # why the provider was given up for this run, if it was
    skipped: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **amounts: float) -> None:
        with self.lock:
            for key, value in amounts.items():
                setattr(self, key, getattr(self, key) + value)

    def skip(self, reason: str) -> None:
        with self.lock:
            self.skipped[reason] += 1

    def as_metadata(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "cache_hits": self.cache_hits, "errors": self.errors,
            "throttled_seconds": round(self.throttled_s, 2), "rate_limited_answers": self.rate_limited,
            "skipped": dict(self.skipped), "unreachable": self.unreachable or None,
        }


CACHE_TABLE = "provider_cache"
CACHE_SCHEMA = {"provider": pl.Utf8, "request_key": pl.Utf8, "body": pl.Utf8, "fetched_at": pl.Datetime("us", "UTC")}


class ResponseCache:
    """Provider answers kept in the warehouse with a time-to-live.

    Loaded once per run and written back once at the end (DuckDB allows one writer:
    no per-request writes while other steps wait for the pool). `reuse=False` (a forced
    refresh) ignores what is stored but still stores what it fetches.
    """

    def __init__(self, warehouse: Warehouse | None, ttl: timedelta, now: datetime | None = None, reuse: bool = True) -> None:
        self.warehouse, self.ttl = warehouse, ttl
        self.now = now or datetime.now(UTC)
        self.entries: dict[tuple[str, str], str] = {}
        self.fresh: dict[tuple[str, str], str] = {}
        self.lock = threading.Lock()
        if reuse and warehouse is not None and warehouse.has_table(CACHE_TABLE):
            rows = warehouse.query(
                f"SELECT provider, request_key, body FROM {CACHE_TABLE} WHERE fetched_at >= ?", [self.now - ttl]
            )
            self.entries = {(p, k): b for p, k, b in rows.iter_rows()}

    def get(self, provider: str, key: str) -> Any | None:
        body = self.entries.get((provider, key))
        return None if body is None else json.loads(body)

    def put(self, provider: str, key: str, value: Any) -> None:
        body = json.dumps(value, separators=(",", ":"))
        with self.lock:
            self.entries[(provider, key)] = body
            self.fresh[(provider, key)] = body

    def flush(self) -> int:
        """Write this run's new answers; drop expired ones. Returns rows written."""
        if self.warehouse is None or not self.fresh:
            return 0
        frame = pl.DataFrame(
            [(p, k, b, self.now) for (p, k), b in self.fresh.items()], schema=CACHE_SCHEMA, orient="row"
        )
        self.warehouse.upsert(CACHE_TABLE, frame, key=("provider", "request_key"), expire_before=("fetched_at", self.now - self.ttl))
        written = len(self.fresh)
        self.fresh.clear()
        return written


BUDGET_TABLE = "provider_budget"


class DailyBudget:
    """Requests spent per provider per UTC day, kept in the warehouse across runs.

    When a provider's budget is spent, `check` raises `ProviderQuotaError`: the run stops
    asking that provider and the next day's run carries on where it stopped. Only answered
    requests are spent: a request that never reached the provider costs nothing.
    """

    def __init__(self, warehouse: Warehouse | None, today: str | None = None) -> None:
        self.warehouse = warehouse
        self.today = today or datetime.now(UTC).date().isoformat()
        self.used: Counter = Counter()
        self.lock = threading.Lock()
        if warehouse is not None and warehouse.has_table(BUDGET_TABLE):
            rows = warehouse.query(f"SELECT provider, used FROM {BUDGET_TABLE} WHERE day = ?", [self.today])
            self.used.update(dict(rows.iter_rows()))

    def check(self, provider: str, limit: int | None) -> None:
        if limit is not None and self.used[provider] >= limit:
            raise ProviderQuotaError(
                f"{provider}: the daily budget of {limit} requests is spent; the rest waits for tomorrow (UTC)"
            )

    def spend(self, provider: str) -> None:
        with self.lock:
            self.used[provider] += 1

    def save(self) -> None:
        if self.warehouse is None or not self.used:
            return
        frame = pl.DataFrame(
            [(p, self.today, n) for p, n in self.used.items()],
            schema={"provider": pl.Utf8, "day": pl.Utf8, "used": pl.Int64}, orient="row",
        )
        self.warehouse.upsert(BUDGET_TABLE, frame, key=("provider", "day"))


@contextlib.contextmanager
def provider_state(warehouse: Warehouse, ttl: timedelta, reuse: bool = True) -> Iterator[tuple[ResponseCache, DailyBudget]]:
    """A run's response cache and daily budgets, written back once when the run's calls are done."""
    cache, budget = ResponseCache(warehouse, ttl, reuse=reuse), DailyBudget(warehouse)
    try:
        yield cache, budget
    finally:  # a failed run keeps what it fetched and what it spent
        cache.flush()
        budget.save()


class MetadataProvider(FixedConfig, ConfigurableResource):
    """Base of every metadata provider resource. `enabled=False` (no URL or key) skips it."""

    name: ClassVar[str] = "provider"
    base_url: str = ""
    requests_per_second: float = Field(default=1.0, gt=0)
    burst: float = 1.0
    concurrency: int = Field(default=4, ge=1, le=32, description="Requests in flight at once")
    timeout_s: float = 20.0
    max_retries: int = 3
    backoff_s: float = 1.0
    max_body_bytes: int = 5_000_000
    weight: float = Field(default=1.0, description="How much this provider's answers count in the consensus")

    daily_budget: int | None = Field(default=None, description="Requests allowed per UTC day (Google Books: about 1,000)")
    unreachable_after: int = Field(
        default=5, ge=1, description="Connection failures in a row after which the provider is skipped for the run"
    )
    switched_off_by: str = Field(default="", description="The setting that switched this provider off (e.g. MAMCRAWLER_AUDIBLE=0)")

    @property
    def provider_name(self) -> str:
        """The name on candidates, stats, cache keys and weights (custom servers have their own)."""
        return self.name

    @property
    def enabled(self) -> bool:
        return bool(self.base_url) and not self.switched_off_by

    @property
    def disabled_reason(self) -> str:
        if self.switched_off_by:
            return f"{self.provider_name}: switched off ({self.switched_off_by}), skipped"
        return f"{self.provider_name}: not configured (no URL), skipped"

    # Query parameters that carry secrets: never part of a cache key (a rotated key keeps the cache).
    secret_params: ClassVar[tuple[str, ...]] = ()
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key", "token", "auth")

    # --- what subclasses implement -------------------------------------------------
    def search(self, session: ProviderSession, query: BookQuery) -> list[Candidate]:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        return {}

    def _transport(self) -> httpx.BaseTransport | None:
        return None

    def _retryable(self, response: httpx.Response) -> bool:
        """Whether a 429/5xx is worth retrying (a spent daily quota is not)."""
        return True

    def _classify(self, response: httpx.Response) -> ProviderError | None:
        """Map an error answer to our errors; subclasses add quirks (Google's 403 quota)."""
        if response.status_code in (401, 403):
            return ProviderAuthError(f"{self.provider_name} rejected the credentials (HTTP {response.status_code})")
        if response.status_code >= 500 or response.status_code == 429:
            return ProviderUnavailableError(f"{self.provider_name} answered HTTP {response.status_code} after retries")
        if response.status_code >= 400:
            return ProviderResponseError(f"{self.provider_name} answered HTTP {response.status_code}", "http_error")
        return None

    # --- the shared machinery ------------------------------------------------------
    @contextlib.contextmanager
    def session(
        self, cache: ResponseCache | None = None, stats: ProviderStats | None = None, budget: DailyBudget | None = None
    ) -> Iterator[ProviderSession]:
        headers = self._headers()
        register(*headers.values(), *(str(getattr(self, name, "") or "") for name in self.secret_fields))
        with httpx.Client(
            base_url=self.base_url.rstrip("/"),
            headers={"Accept": "application/json", **headers},
            timeout=self.timeout_s,
            transport=self._transport(),
            follow_redirects=True,
        ) as client:
            yield ProviderSession(self, client, cache, stats or ProviderStats(), budget)

    def enrich(
        self,
        queries: list[BookQuery],
        cache: ResponseCache | None = None,
        budget: DailyBudget | None = None,
        progress: Callable[[int, ProviderStats], None] = lambda done, stats: None,
        progress_every_s: float = 20.0,
        log: Callable[[str], None] = lambda line: None,
    ) -> tuple[dict[str, list[Candidate]], ProviderStats, list[str]]:
        """Search every query, `concurrency` at a time; returns candidates per item, stats, errors.
        `progress(books done, stats)` is called at least every `progress_every_s` and at the end;
        `log` gets the one line that says the provider was given up as unreachable.

        A spent quota, rejected credentials or an unreachable provider stop this provider for
        the rest of the run (the other items stay pending for the next run); any other error
        is counted against its item and the run goes on.
        """
        stats = ProviderStats()
        found: dict[str, list[Candidate]] = {}
        errors: list[str] = []
        stop = threading.Event()

        def one(session: ProviderSession, query: BookQuery) -> None:
            if stop.is_set():
                return
            try:
                raw = self.search(session, query)
            except (ProviderQuotaError, ProviderAuthError, ProviderUnreachableError) as exc:
                # Asking again cannot help: stop this provider for the rest of the run, say it once.
                stats.add(errors=1)
                with stats.lock:
                    first = not stop.is_set()
                    stop.set()
                if first:
                    stats.skip(type(exc).__name__)
                    errors.append(str(exc))
                    if isinstance(exc, ProviderUnreachableError):
                        log(session.give_up())
                return
            except ProviderError as exc:
                stats.add(errors=1)
                stats.skip(getattr(exc, "reason", type(exc).__name__))
                errors.append(f"{query.item_id}: {exc}")
                return
            except Exception as exc:  # an answer shaped unlike the documented one
                stats.add(errors=1)
                stats.skip("parse_error")
                errors.append(f"{query.item_id}: {self.provider_name} answer could not be read ({type(exc).__name__})")
                return
            kept = []
            for candidate in raw:
                try:
                    clean, reasons = sanitise(candidate)
                except Exception:  # a field of a type the parser let through: this candidate only
                    clean, reasons = None, ["unreadable_candidate"]
                for reason in reasons:
                    stats.skip(reason)
                if clean is not None:
                    kept.append(clean)
            found[query.item_id] = kept

        with self.session(cache, stats, budget) as session, ThreadPoolExecutor(self.concurrency) as pool:
            # A small window of futures in flight, so waiting (with a timeout, for the
            # progress line) stays cheap however many books there are.
            todo, inflight, done, last = iter(queries), set(), 0, time.monotonic()
            while True:
                while len(inflight) < 4 * self.concurrency and (query := next(todo, None)) is not None:
                    inflight.add(pool.submit(one, session, query))
                if not inflight:
                    break
                finished, inflight = wait(inflight, timeout=progress_every_s, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()
                done += len(finished)
                if time.monotonic() - last >= progress_every_s:
                    progress(done, stats)
                    last = time.monotonic()
            progress(done, stats)
        return found, stats, errors


_buckets: dict[tuple[str, str], TokenBucket] = {}
_buckets_lock = threading.Lock()


def _bucket(provider: MetadataProvider) -> TokenBucket:
    """One bucket per provider and URL in this process, shared by all its sessions."""
    key = (provider.provider_name, provider.base_url)
    with _buckets_lock:
        bucket = _buckets.get(key)
        if bucket is None or bucket.rate != provider.requests_per_second:
            bucket = _buckets[key] = TokenBucket(provider.requests_per_second, provider.burst)
        return bucket


class ProviderSession:
    """One run's connection to one provider: `get_json` / `post_json` with all the rules."""

    def __init__(
        self,
        provider: MetadataProvider,
        client: httpx.Client,
        cache: ResponseCache | None,
        stats: ProviderStats,
        budget: DailyBudget | None = None,
    ):
        self.provider, self.client, self.cache, self.stats, self.budget = provider, client, cache, stats, budget
        self.bucket = _bucket(provider)
        self.breaker = CircuitBreaker(provider.unreachable_after)  # per provider and run

    def give_up(self) -> str:
        """Record that the breaker gave this provider up for the run; the one line to log."""
        self.stats.unreachable = self.breaker.describe()
        return (f"{self.provider.provider_name} is UNREACHABLE ({self.provider.base_url}): {self.stats.unreachable}; "
                f"not asked again this run, what it was to answer stays pending for the next run")

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._call("GET", path, params=dict(params or {}))

    def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._call("POST", path, json=dict(body))

    def _call(self, method: str, path: str, params: dict | None = None, json: dict | None = None) -> Any:
        name = self.provider.provider_name
        visible = {k: v for k, v in (params or {}).items() if k not in self.provider.secret_params}
        key = _request_key(method, f"{self.client.base_url}{path}", visible, json)
        if self.cache is not None and (hit := self.cache.get(name, key)) is not None:
            self.stats.add(cache_hits=1)
            return hit

        def send() -> httpx.Response:
            if self.budget is not None:
                self.budget.check(name, self.provider.daily_budget)
            throttled = self.bucket.acquire()
            self.breaker.check(f"{name} {method} {path}")  # it may have opened while this call waited
            self.stats.add(throttled_s=throttled, requests=1)
            response = self.client.request(method, path, params=params, json=json)
            if self.budget is not None:
                self.budget.spend(name)
            if response.status_code == 429:
                self.stats.add(rate_limited=1)
            return response

        def on_wait(last: httpx.Response | Exception, delay: float) -> None:
            if isinstance(last, httpx.Response) and last.status_code == 429:
                self.bucket.pause(delay)  # every thread of this provider waits, not just this one
                self.stats.add(throttled_s=delay)

        try:
            response = send_with_retries(
                send, f"{name} {method} {path}", max_retries=self.provider.max_retries,
                backoff_s=self.provider.backoff_s, retryable=self.provider._retryable, on_wait=on_wait,
                breaker=self.breaker,
            )
        except ServiceUnreachable:
            raise ProviderUnreachableError(f"{name}: {self.provider.base_url} {self.breaker.describe()}") from None
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise ProviderUnavailableError(f"{name}: no answer from {self.provider.base_url} ({type(exc).__name__})") from None
        if (error := self.provider._classify(response)) is not None:
            raise error
        value = _json_body(name, response, self.provider.max_body_bytes)
        if self.cache is not None:
            self.cache.put(name, key, value)
        return value


def _request_key(method: str, path: str, params: dict | None, body: dict | None) -> str:
    text = json.dumps([method, path, sorted((params or {}).items()), body], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _json_body(name: str, response: httpx.Response, max_bytes: int) -> Any:
    if len(response.content) > max_bytes:
        raise ProviderResponseError(f"{name}: answer of {len(response.content)} bytes is over the limit", "body_too_large")
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type.lower():
        raise ProviderResponseError(f"{name}: answered {content_type or 'no content type'}, not JSON", "not_json")
    try:
        return scrubbed_json(response)
    except ValueError:
        raise ProviderResponseError(f"{name}: answer is not valid JSON (truncated?)", "bad_json") from None
