"""ABS custom metadata provider servers (abs-tract Goodreads/Kindle, Audioteka, …) as providers.

The protocol (`shared/fixtures/custom-provider/README.md`, from advplyr/audiobookshelf's
`custom-metadata-provider-specification.yaml` and `server/providers/CustomProviderAdapter.js`):
`GET <url>/search?mediaType=book&query=<title>[&author=…][&isbn=…]`, the configured auth
value sent as `Authorization` verbatim, answer `{"matches": [BookMetadata…]}`. `<url>`
may carry a path (`…/goodreads`, `…/kindle/us`).

Answers are read exactly as ABS's adapter reads them, so a server that works in ABS works
here: a body without a `matches` array is malformed; numbers become strings (an array of
strings/numbers is joined with ","); `genres`/`tags` may be a comma string (split, trimmed,
de-duplicated); series entries without a string `series` are dropped and a numeric
`sequence` becomes a string; `duration` goes through `Number()` and is in MINUTES;
`description` is HTML; unknown keys are ignored. One difference on purpose: ABS turns a
failed request into "no matches", here a 401 or 5xx is a counted error, never silence.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import httpx
from dagster import Config, ConfigurableResource
from pydantic import Field, model_validator

from mamcrawler.candidates import BookQuery, Candidate, description_html, year_of
from mamcrawler.names import clean_text, split_authors
from resources.fixed import FixedConfig
from resources.metadata_provider import MetadataProvider, ProviderError, ProviderResponseError, ProviderSession
from resources.replay.custom_provider import REPLAY_AUTH, CustomProviderReplay

# How much each known server's answers count in the consensus, by name prefix: Goodreads
# and Kindle data is broad and mostly right, the Polish catalogues narrower.
DEFAULT_WEIGHTS = {"goodreads": 0.8, "kindle": 0.8, "audioteka": 0.7, "lubimyczytac": 0.6}
OTHER_WEIGHT = 0.5


def default_weight(server_name: str) -> float:
    name = server_name.strip().lower()
    return next((w for prefix, w in DEFAULT_WEIGHTS.items() if name.startswith(prefix)), OTHER_WEIGHT)


class CustomProviderServer(MetadataProvider):
    """One custom provider server. Its `server_name` names its candidates, stats and weight."""

    name: ClassVar[str] = "custom"
    server_name: str = Field(default="", description="Name of this server, e.g. goodreads, kindle-us, audioteka")
    base_url: str = Field(default="", description="Server URL as configured in ABS, e.g. http://abs-tract:8080/goodreads")
    auth: str = Field(default="", repr=False, description="Authorization header value, sent verbatim (optional)")
    weight: float = Field(default=OTHER_WEIGHT, description="Consensus weight; defaults by server name")

    @model_validator(mode="before")
    @classmethod
    def _weight_by_name(cls, data: Any) -> Any:
        """No weight given: take the default for the server's name."""
        if isinstance(data, dict) and data.get("weight") is None:
            data = {**data, "weight": default_weight(str(data.get("server_name") or ""))}
        return data

    @property
    def provider_name(self) -> str:
        return self.server_name or self.name

    @property
    def enabled(self) -> bool:
        return bool(self.base_url) and bool(self.server_name)

    @property
    def disabled_reason(self) -> str:
        missing = "URL" if not self.base_url else "server name"
        return f"{self.provider_name}: not configured (no {missing}), skipped"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": self.auth} if self.auth else {}

    def _classify(self, response: httpx.Response) -> ProviderError | None:
        """A 200 without a `matches` array is malformed here, before the cache keeps it."""
        error = super()._classify(response)
        if error is not None or len(response.content) > self.max_body_bytes:
            return error
        if "json" not in response.headers.get("Content-Type", "").lower():
            return None
        try:
            body = response.json()
        except ValueError:
            return None  # the base reports the broken body
        return None if _has_matches(body) else self._malformed()

    def _malformed(self) -> ProviderResponseError:
        return ProviderResponseError(f"{self.provider_name}: answer has no `matches` array (malformed)", "malformed")

    def search(self, session: ProviderSession, query: BookQuery) -> list[Candidate]:
        params = {"mediaType": "book", "query": query.title}
        if query.author:
            params["author"] = query.author
        if query.isbn:
            params["isbn"] = query.isbn  # ABS sends it too when the item has one
        body = session.get_json("/search", params)
        if not _has_matches(body):
            raise self._malformed()
        return [parse_match(match, self.provider_name) for match in body["matches"]]


class CustomServerConfig(Config):
    """One server as a user writes it in the settings."""

    name: str = Field(description="e.g. goodreads, kindle-us, audioteka, lubimyczytac")
    url: str = Field(description="Server URL as configured in ABS (may end in a path such as /goodreads)")
    auth: str = Field(default="", description="Authorization header value, sent verbatim; empty for none")
    weight: float | None = Field(default=None, description="Consensus weight; empty for the default by name")


class CustomProviders(FixedConfig, ConfigurableResource):
    """Every configured custom provider server; each becomes its own provider."""

    servers: list[CustomServerConfig] = Field(default_factory=list)
    requests_per_second: float = Field(default=1.0, gt=0, description="Per server: these servers scrape their sources")
    timeout_s: float = 20.0

    def providers(self) -> list[CustomProviderServer]:
        return [self._server(s) for s in self.servers]

    def _server_class(self) -> type[CustomProviderServer]:
        return CustomProviderServer

    def _server(self, config: CustomServerConfig) -> CustomProviderServer:
        return self._server_class()(
            server_name=config.name.strip(),
            base_url=config.url.strip(),
            auth=config.auth,
            weight=config.weight,
            requests_per_second=self.requests_per_second,
            timeout_s=self.timeout_s,
        )


class ReplayCustomProviderServer(CustomProviderServer):
    """The demo: the real client against the recorded servers, in-process."""

    server_name: str = "goodreads"
    base_url: str = "http://custom-provider.replay/goodreads"
    auth: str = Field(default=REPLAY_AUTH, repr=False)
    requests_per_second: float = 200.0  # in-process replay: nothing remote to be polite to

    def _transport(self) -> httpx.BaseTransport:
        return httpx.MockTransport(CustomProviderReplay())


class ReplayCustomProviders(CustomProviders):
    """The demo's three recorded servers: Goodreads, Kindle (US) and a full-fields server."""

    servers: list[CustomServerConfig] = Field(
        default_factory=lambda: [
            CustomServerConfig(name="goodreads", url="http://custom-provider.replay/goodreads", auth=REPLAY_AUTH),
            CustomServerConfig(name="kindle-us", url="http://custom-provider.replay/kindle/us", auth=REPLAY_AUTH),
            CustomServerConfig(name="fullfields", url="http://custom-provider.replay", auth=REPLAY_AUTH),
        ]
    )
    requests_per_second: float = 200.0  # in-process replay: nothing remote to be polite to

    def _server_class(self) -> type[CustomProviderServer]:
        return ReplayCustomProviderServer


# --- parsing, as ABS's CustomProviderAdapter does -------------------------------------
def _has_matches(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("matches"), list)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _js_number_text(value: int | float) -> str:
    """JavaScript's String(number): 8.0 -> "8", 2.5 -> "2.5"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_string(value: Any) -> str | None:
    """ABS's toStringOrUndefined: strings and numbers as text, arrays of them joined by ","."""
    if isinstance(value, str):
        return value
    if _is_number(value):
        return _js_number_text(value)
    if isinstance(value, list) and all(isinstance(v, str) or _is_number(v) for v in value):
        return ",".join(v if isinstance(v, str) else _js_number_text(v) for v in value)
    return None


def tag_list(value: Any) -> tuple[str, ...]:
    """ABS's validateTagsGenresArray: a comma string or an array of strings; trimmed, no
    empties, de-duplicated; anything else (null, numbers in the array) is nothing."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        return ()
    return tuple(dict.fromkeys(t.strip() for t in items if t.strip()))


def series_list(value: Any) -> tuple[tuple[str, str | None], ...]:
    """ABS's validateSeriesArray: entries need a string `series`; a truthy string or
    numeric `sequence` is kept as text."""
    if not isinstance(value, list):
        return ()
    out = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("series"), str) or not entry["series"]:
            continue
        sequence = entry.get("sequence")
        keep = sequence and (isinstance(sequence, str) or _is_number(sequence))
        out.append((clean_text(entry["series"]), to_string(sequence) if keep else None))
    return tuple(out)


def duration_minutes(value: Any) -> float | None:
    """ABS: `!isNaN(d) && d !== null ? Number(d) : undefined`. Numeric strings count."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None  # Number("") is 0 in ABS: no length given, not a zero-length book
        try:
            value = float(text)
        except ValueError:
            return None
    if not _is_number(value) or not math.isfinite(value):
        return None
    return float(value) if value else None


def parse_match(match: Any, provider: str) -> Candidate:
    """One `BookMetadata` as a candidate; a match without a title is left for `sanitise`
    to reject with a counted reason."""
    if not isinstance(match, dict):
        match = {}
    minutes = duration_minutes(match.get("duration"))
    description = match.get("description")
    tags = tag_list(match.get("tags"))
    text = {key: clean_text(to_string(match.get(key))) or None for key in (
        "title", "subtitle", "author", "narrator", "publisher", "publishedYear", "cover", "isbn", "asin", "language",
    )}
    return Candidate(
        provider=provider,
        provider_id=text["asin"] or text["isbn"],
        title=text["title"],
        subtitle=text["subtitle"],
        authors=tuple(split_authors(text["author"])),
        narrators=tuple(split_authors(text["narrator"])),
        series=series_list(match.get("series")),
        year=year_of(text["publishedYear"]),
        publisher=text["publisher"],
        isbn=text["isbn"],
        asin=text["asin"].upper() if text["asin"] else None,
        language=text["language"],
        genres=tag_list(match.get("genres")),
        description=description_html(description) if isinstance(description, str) else None,
        cover=text["cover"] if text["cover"] and text["cover"].startswith("http") else None,
        duration_s=minutes * 60 if minutes is not None else None,
        is_audiobook=minutes is not None or text["narrator"] is not None,
        extra={"tags": tags} if tags else {},
    )
