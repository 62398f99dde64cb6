"""MAM and Torznab behind one small interface: search for a book, fetch a chosen torrent."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mamcrawler.releases import Release
from resources.mam import MamAuthError, MamError, MamResource, MamSession, MamUnreachableError
from resources.secrets import ScrubbedError
from resources.torznab import TorznabAuthError, TorznabError, TorznabResource, TorznabUnreachableError

INDEXERS = ("mam", "torznab")


class IndexerAuthError(ScrubbedError):
    """An indexer refused our credentials: searching on is pointless until the user acts."""


class IndexerUnavailableError(ScrubbedError):
    """The indexer did not answer (down, 5xx, rate limited): the release is not to blame."""


class IndexerNotConfiguredError(ScrubbedError):
    """A release from an indexer that is no longer configured."""


@dataclass
class Found:
    releases: list[Release] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    truncated: bool = False


class Indexers:
    """The configured indexers for one run (one MAM session, so a rotated cookie is kept)."""

    def __init__(self, mam: MamSession | None, torznab: TorznabResource | None) -> None:
        self.mam = mam
        self.torznab = torznab

    def user_is_vip(self) -> bool:
        """Whether VIP torrents are freeleech for this user; unknown (MAM away) counts as no."""
        if self.mam is None:
            return False
        try:
            return self.mam.account_status().is_vip
        except MamAuthError as exc:
            raise IndexerAuthError(str(exc)) from None
        except MamError:
            return False

    def search(self, title: str, author: str | None) -> Found:
        found = Found()
        if self.mam is not None:
            try:
                result = self.mam.search(title, author)
            except MamAuthError as exc:
                raise IndexerAuthError(str(exc)) from None
            except MamError as exc:
                found.errors.append(f"mam: {exc}")
            else:
                found.releases += result.releases
                found.requests += result.requests
                found.truncated |= result.truncated
                _add(found.skipped, result.skipped)
        if self.torznab is not None and self.torznab.indexers:
            try:
                result = self.torznab.search(title, author)
            except TorznabError as exc:
                found.errors.append(f"torznab: {exc}")
            else:
                found.releases += result.releases
                found.requests += result.requests
                found.truncated |= result.truncated
                _add(found.skipped, result.skipped)
                found.errors += [f"{name}: {error}" for name, error in result.errors.items()]
        return found

    def fetch(self, candidate: dict[str, Any]) -> bytes | str:
        """The .torrent (or magnet) of a chosen `release_candidates` row.

        Raises IndexerAuthError / IndexerUnavailableError when the indexer is to blame, and
        the indexer's own error when this release is (a bad or missing .torrent)."""
        if candidate["indexer"] == "mam":
            if self.mam is None:
                raise IndexerNotConfiguredError("MAM is not among MAMCRAWLER_INDEXERS")
            try:
                return self.mam.download_torrent(candidate["release_id"])
            except MamAuthError as exc:
                raise IndexerAuthError(str(exc)) from None
            except MamUnreachableError as exc:
                raise IndexerUnavailableError(f"mam: {exc}") from None
        if candidate.get("magnet") and not candidate.get("download_url"):
            return candidate["magnet"]
        if self.torznab is None or candidate["indexer"] not in {i.name for i in self.torznab.indexers}:
            raise IndexerNotConfiguredError(f"Torznab indexer {candidate['indexer']!r} is not configured")
        release = Release(
            indexer=candidate["indexer"],
            release_id=candidate["release_id"],
            title=candidate["title"],
            download_url=candidate.get("download_url"),
            magnet=candidate.get("magnet"),
            info_hash=candidate.get("info_hash"),
        )
        try:
            return self.torznab.download_torrent(release)
        except TorznabAuthError as exc:
            raise IndexerAuthError(str(exc)) from None
        except TorznabUnreachableError as exc:
            raise IndexerUnavailableError(f"{candidate['indexer']}: {exc}") from None


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for reason, count in more.items():
        total[reason] = total.get(reason, 0) + count


@contextlib.contextmanager
def open_indexers(names: list[str], mam: MamResource, torznab: TorznabResource) -> Iterator[Indexers]:
    unknown = sorted(set(names) - set(INDEXERS))
    if unknown:
        raise ValueError(f"unknown indexer(s) {', '.join(unknown)}; choose from {', '.join(INDEXERS)}")
    if "mam" in names:
        with mam.session() as session:
            yield Indexers(session, torznab if "torznab" in names else None)
    else:
        yield Indexers(None, torznab if "torznab" in names else None)
