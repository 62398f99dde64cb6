"""Unreachable providers: a circuit breaker per provider and run, books left pending, budgets
spent only on answers."""

from datetime import UTC, datetime

import httpx
import polars as pl
import pytest
from dagster import DagsterInstance

from bench.unreachable import closed_port_url, dropping_server
from mamcrawler.candidates import BookQuery
from mamcrawler.enrichment import BUCKETS, OwnedBook, state_frame
from mamcrawler.warehouse import Warehouse, default_warehouse_path
from pipelines.definitions import build_definitions
from pipelines.profiles import Profile, build_resources
from resources.audible import AudibleProvider
from resources.google_books import GoogleBooksProvider
from resources.hardcover import HardcoverProvider
from resources.http import CircuitBreaker, ServiceUnreachable, send_with_retries
from resources.metadata_provider import DailyBudget
from resources.openlibrary import OpenLibraryProvider

ALL = {"dagster/asset_partition_range_start": BUCKETS[0], "dagster/asset_partition_range_end": BUCKETS[-1]}


def _refused():
    raise httpx.ConnectError("refused")


def test_the_breaker_opens_after_consecutive_connection_failures_and_then_sends_nothing():
    breaker, sent, slept = CircuitBreaker(threshold=3), [], []

    def send():
        sent.append(1)
        _refused()

    with pytest.raises(ServiceUnreachable, match="3 connection failures in a row"):
        send_with_retries(send, "x GET /", max_retries=10, sleep=slept.append, breaker=breaker)
    assert len(sent) == 3 and len(slept) == 2  # no wait after the failure that opened it
    with pytest.raises(ServiceUnreachable):
        send_with_retries(send, "x GET /", sleep=slept.append, breaker=breaker)
    assert len(sent) == 3


def test_http_answers_of_any_status_are_not_connection_failures():
    breaker = CircuitBreaker(threshold=3)
    answers = iter([_refused, _refused, lambda: httpx.Response(404), _refused, _refused, lambda: httpx.Response(503),
                    _refused, _refused, lambda: httpx.Response(200)])
    for _ in range(3):
        send_with_retries(lambda: next(answers)(), "x GET /", max_retries=5, sleep=lambda _: None, breaker=breaker,
                          retryable=lambda r: r.status_code != 503)
    assert not breaker.is_open


def queries(n):
    return [BookQuery(item_id=f"i{i}", title=f"Book {i}", author="Some Author") for i in range(n)]


@pytest.mark.parametrize("where", ["refused", "dropped"])
def test_an_unreachable_provider_is_given_up_once_its_books_stay_pending_and_its_budget_unspent(where):
    with dropping_server() as (dropping, dropped):
        url = closed_port_url() if where == "refused" else dropping
        google = GoogleBooksProvider(base_url=url, backoff_s=0.01, requests_per_second=1000, daily_budget=1000)
        budget, lines = DailyBudget(None), []
        found, stats, errors = google.enrich(queries(500), budget=budget, log=lines.append)
    assert found == {} and budget.used["google"] == 0
    assert stats.requests <= google.unreachable_after + google.concurrency  # not 500 x (1 + retries)
    assert len(errors) == 1 and "connection failures in a row" in errors[0]
    assert sum("UNREACHABLE" in line for line in lines) == 1 and "stays pending" in lines[0]
    assert stats.as_metadata()["unreachable"].startswith("unreachable after")
    if where == "dropped":
        assert dropped[0] >= google.unreachable_after


def test_a_budget_counts_only_answered_requests():
    calls = iter([httpx.ConnectError("x")] * 2 + [httpx.Response(200, json={"items": []})] * 10)

    def handler(request):
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    google = GoogleBooksProvider(base_url="http://google.test", backoff_s=0.0, requests_per_second=1000, concurrency=1)
    google.__dict__["_transport"] = lambda: httpx.MockTransport(handler)
    budget = DailyBudget(None)
    found, stats, _ = google.enrich(queries(3), budget=budget)
    assert stats.requests == 5 and budget.used["google"] == 3 and len(found) == 3


def test_a_book_no_provider_could_answer_is_pending_not_unmatched():
    books = [OwnedBook("a", "A", ("X",), None, None, None), OwnedBook("b", "B", ("X",), None, None, None)]
    empty = pl.DataFrame(schema={"item_id": pl.Utf8, "match_level": pl.Utf8})
    state = state_frame(books, {"google": {"b"}}, {"google": {"a"}}, empty, datetime.now(UTC))
    assert dict(state.select("item_id", "best_level").iter_rows()) == {"a": "PENDING", "b": "UNMATCHED"}


def test_enrichment_with_providers_unreachable_keeps_their_answers_and_leaves_the_books_pending():
    instance = DagsterInstance.ephemeral()
    defs = build_definitions(Profile("demo", "test"))
    defs.resolve_job_def("refresh_library").execute_in_process(instance=instance)
    defs.resolve_job_def("enrich_metadata").execute_in_process(instance=instance, tags=ALL)
    store = Warehouse(default_warehouse_path())
    dead_names = ["audible", "hardcover", "google", "openlibrary"]

    def answers_of_dead_providers():
        return store.read_table("book_metadata").filter(pl.col("provider").is_in(dead_names)).sort("item_id", "provider", "rank")

    before = answers_of_dead_providers()
    assert before.height > 0
    levels_before = dict(store.read_table("book_enrichment_state").select("item_id", "best_level").iter_rows())

    def spent_on_dead_providers():
        return store.read_table("provider_budget").filter(pl.col("provider").is_in(dead_names)).sort("provider")

    budget_before = spent_on_dead_providers()

    dead = closed_port_url()
    fast = {"backoff_s": 0.01, "requests_per_second": 1000}
    resources = build_resources(Profile("demo", "test")) | {
        "audible": AudibleProvider(base_url=dead, **fast), "hardcover": HardcoverProvider(base_url=dead, token="t", **fast),
        "google_books": GoogleBooksProvider(base_url=dead, **fast), "openlibrary": OpenLibraryProvider(base_url=dead, **fast),
    }
    dead_defs = type(defs)(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, resources=resources)
    result = dead_defs.resolve_job_def("enrich_metadata").execute_in_process(
        instance=instance, tags=ALL, run_config={"ops": {"book_metadata": {"config": {"refresh": True}}}}
    )
    assert result.success
    meta = result.asset_materializations_for_node("book_metadata")[0].metadata
    unreachable = meta["providers_unreachable"].value
    assert all(f"- {name}: unreachable after" in unreachable for name in dead_names)
    said = [e.message for e in instance.all_logs(result.run_id) if "UNREACHABLE" in (e.message or "")]
    assert len(said) == 4, said  # one line per provider, not one per book
    state = store.read_table("book_enrichment_state")
    assert state["pending"].list.len().min() >= 3  # every book owes an answer from the dead providers
    # Books keep the level of their earlier answers; none is UNMATCHED (no answer is not "no match").
    expected = {item: "PENDING" if level == "UNMATCHED" else level for item, level in levels_before.items()}
    assert dict(state.select("item_id", "best_level").iter_rows()) == expected
    assert answers_of_dead_providers().equals(before)  # earlier answers kept, untouched
    assert spent_on_dead_providers().equals(budget_before)  # requests that got no answer cost nothing
