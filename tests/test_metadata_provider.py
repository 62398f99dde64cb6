"""The shared provider machinery, against a loopback server that misbehaves on purpose."""

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import httpx
import pytest

from mamcrawler.candidates import BookQuery, Candidate
from mamcrawler.warehouse import Warehouse
from resources.metadata_provider import (
    DailyBudget,
    MetadataProvider,
    ProviderAuthError,
    ResponseCache,
    TokenBucket,
)
from tests.servers import serve


class EchoProvider(MetadataProvider):
    """Searches /search?q=<title> and turns {"books": [{"title"...}]} into candidates."""

    name: ClassVar[str] = "echo"

    def search(self, session, query):
        body = session.get_json("/search", {"q": query.title})
        return [Candidate(provider="echo", title=b.get("title"), year=b.get("year")) for b in body["books"]]


class Misbehaving:
    def __init__(self, plan):
        self.plan = plan  # title -> list of responses to give in turn
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        title = request.url.params.get("q", "")
        self.seen.append(title)
        answers = self.plan.get(title) or [httpx.Response(200, json={"books": [{"title": title}]})]
        return answers.pop(0) if len(answers) > 1 else answers[0]


def provider(url, **kw):
    return EchoProvider(base_url=url, **({"requests_per_second": 100.0, "backoff_s": 0.01} | kw))


def q(title):
    return BookQuery(item_id=title, title=title)


def test_token_bucket_paces_and_pauses():
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=1.0, clock=lambda: now[0])

    def sleep(seconds):
        now[0] += seconds

    waits = [bucket.acquire(sleep) for _ in range(5)]
    assert waits[0] == 0 and all(w == pytest.approx(0.5) for w in waits[1:])
    bucket.pause(3.0)
    assert bucket.acquire(sleep) == pytest.approx(3.5)


def test_bad_answers_are_skipped_with_a_counted_reason():
    plan = {
        "html": [httpx.Response(200, headers={"Content-Type": "text/html"}, text="<html>Sorry</html>")],
        "truncated": [httpx.Response(200, headers={"Content-Type": "application/json"}, content=b'{"books": [{"ti')],
        "huge": [httpx.Response(200, json={"books": [{"title": "x" * 11_000_000}]})],
        "absurd": [httpx.Response(200, json={"books": [{"title": "Absurd", "year": 0}, {"title": ""}]})],
        "shapeless": [httpx.Response(200, json={"volumes": []})],
    }
    with serve(Misbehaving(plan)) as url:
        found, stats, errors = provider(url).enrich([q(t) for t in [*plan, "fine"]])
    assert stats.skipped == {"not_json": 1, "bad_json": 1, "body_too_large": 1, "parse_error": 1,
                             "absurd_year": 1, "no_title": 1}
    assert found["fine"][0].title == "fine" and found["absurd"][0].year is None and len(found["absurd"]) == 1
    assert set(found) == {"fine", "absurd"} and len(errors) == 4


def test_rejected_credentials_stop_the_provider_once():
    server = Misbehaving({"denied": [httpx.Response(401, json={"error": "no"})]})
    with serve(server) as url:
        found, stats, errors = provider(url, concurrency=1).enrich([q("denied"), q("a"), q("b")])
    assert found == {} and server.seen == ["denied"]
    assert errors == ["echo rejected the credentials (HTTP 401)"] and stats.skipped == {"ProviderAuthError": 1}


def test_429_honours_retry_after_and_5xx_is_retried():
    plan = {
        "busy": [httpx.Response(429, headers={"Retry-After": "0.2"}), httpx.Response(200, json={"books": [{"title": "busy"}]})],
        "flaky": [httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"books": [{"title": "flaky"}]})],
    }
    server = Misbehaving(plan)
    with serve(server) as url:
        found, stats, errors = provider(url).enrich([q("busy"), q("flaky")])
    assert not errors and found["busy"][0].title == "busy" and found["flaky"][0].title == "flaky"
    assert stats.rate_limited == 1 and stats.throttled_s >= 0.2 and stats.requests == 5
    assert server.seen.count("flaky") == 3


def test_cache_with_ttl_in_the_warehouse(tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    server = Misbehaving({})
    with serve(server) as url:
        cache = ResponseCache(store, timedelta(days=30))
        provider(url).enrich([q("a"), q("b")], cache)
        assert cache.flush() == 2
        again = ResponseCache(store, timedelta(days=30))
        _, stats, _ = provider(url).enrich([q("a"), q("b"), q("c")], again)
        assert (stats.cache_hits, stats.requests) == (2, 1)
        later = ResponseCache(store, timedelta(days=30), now=datetime.now(UTC) + timedelta(days=31))
        _, stats, _ = provider(url).enrich([q("a")], later)
        assert (stats.cache_hits, stats.requests) == (0, 1)
    assert server.seen == ["a", "b", "c", "a"]
    assert json.loads(store.query("SELECT body FROM provider_cache WHERE request_key IS NOT NULL LIMIT 1")["body"][0])


def test_daily_budget_stops_the_provider_and_persists(tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    server = Misbehaving({})
    with serve(server) as url:
        limited = provider(url, daily_budget=3, concurrency=1)
        budget = DailyBudget(store, today="2026-11-25")
        found, _, errors = limited.enrich([q(str(i)) for i in range(5)], budget=budget)
        budget.save()
        assert len(found) == 3 and "daily budget of 3 requests is spent" in errors[0]
        found, _, _ = limited.enrich([q("x")], budget=DailyBudget(store, today="2026-11-25"))
        assert found == {}
        found, _, _ = limited.enrich([q("x")], budget=DailyBudget(store, today="2026-11-26"))
        assert set(found) == {"x"}
    assert len(server.seen) == 4


def test_auth_errors_never_show_the_secret():
    class Keyed(EchoProvider):
        token: str = ""

        def _headers(self):
            return {"Authorization": f"Bearer {self.token}"}

    with serve(Misbehaving({"t": [httpx.Response(401, json={"error": "bad token"})]})) as url:
        p = Keyed(base_url=url, token="SECRET-TOKEN-123", requests_per_second=100)
        with p.session() as session, pytest.raises(ProviderAuthError) as err:
            p.search(session, q("t"))
    assert "SECRET-TOKEN-123" not in str(err.value)


def test_a_slow_provider_still_reports_progress_on_time():
    """Progress comes every `progress_every_s` even while no book finishes (a slow answer)."""
    import time

    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.3)
        return httpx.Response(200, json={"books": [{"title": request.url.params["q"]}]})

    reports: list[tuple[float, int, int]] = []
    started = time.monotonic()
    with serve(slow) as url:
        got, _, errors = provider(url, concurrency=1).enrich(
            [q("A"), q("B")], progress=lambda done, s: reports.append((time.monotonic() - started, done, s.requests)),
            progress_every_s=0.1,
        )
    assert set(got) == {"A", "B"} and not errors
    assert reports[-1][1:] == (2, 2)  # the last report is the whole pass
    assert len(reports) >= 4  # 0.6 s of slow answers, a report at least every 0.1 s
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(reports)]
    assert max(gaps) < 0.35  # never a silent stretch as long as one answer
