"""The accuracy corpus (bench/corpus) and `python -m bench accuracy` against its targets.

The truth is written by hand; these tests check that it is consistent with the corpus it
judges (every row names a series the providers list, at a position they list) and that the
pipeline meets the targets on it: precision and recall of missing_books >= 0.99, no owned
book listed as missing.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from bench.accuracy import accuracy, fold, score, truth_as_listed
from bench.corpus import Corpus, load

MIN_ITEMS = 300
TARGET = 0.99


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load()


def _catalogued(corpus: Corpus) -> dict[str, list[tuple[set[str], set[float]]]]:
    """Folded series name -> (authors, positions) of each provider series of that name."""
    out: dict[str, list[tuple[set[str], set[float]]]] = defaultdict(list)
    for series in corpus.audible_series.values():
        authors = {fold(a) for asin, _ in series["children"] for a in corpus.audible_books[asin]["authors"]}
        positions = {float(seq) for _, seq in series["children"] if seq is not None and "-" not in seq}
        out[fold(series["title"])].append((authors, positions))
    for series in corpus.hardcover_series.values():
        authors = {fold(a) for book, _, _ in series["books"] for _, a in corpus.hardcover_books[book]["authors"]}
        out[fold(series["name"])].append((authors, {float(p) for _, p, _ in series["books"] if p is not None}))
    return out


def test_the_corpus_loads_with_enough_items(corpus):
    assert len(corpus.items) >= MIN_ITEMS
    assert len({item["id"] for item in corpus.items}) == len(corpus.items)  # one folder, one item


def test_every_truth_row_names_a_known_series_at_a_listed_position(corpus):
    catalogued = _catalogued(corpus)
    worlds = corpus.truth["series"]
    problems = []
    for wid, world in worlds.items():
        authors = {fold(a) for a in world["authors"]}
        listed: set[float] = set()
        for name in world["names"]:
            for series_authors, positions in catalogued.get(fold(name), ()):
                if series_authors & authors:
                    listed |= positions
        if not listed:
            problems.append(f"{wid}: no provider series named {world['names']} by {world['authors']}")
        for kind in ("missing", "upcoming"):
            problems += [f"{wid} {kind} #{p} ({t}) is at no listed position"
                         for p, t in (world.get(kind) or {}).items() if float(p) not in listed]
        for position, other in (world.get("same") or {}).items():
            target, _, _ = other.partition("#")
            if target not in worlds or float(position) not in listed:
                problems.append(f"{wid}: same #{position} -> {other} names no known series position")
    for spec in corpus.specs:  # every owned work names a world of the truth or an author's title
        for work in spec.get("owns") or []:
            if "#" in work and work.split("#")[0] not in worlds:
                problems.append(f"{spec['path']}: owns {work} of no series in the truth")
    assert problems == []


def test_the_truth_itself_scores_perfectly(corpus):
    # The yardstick: a pipeline answering exactly the truth gets 1.0 everywhere.
    figures = score(corpus, truth_as_listed(corpus))
    assert (figures["missing_precision"], figures["missing_recall"]) == (1.0, 1.0)
    assert (figures["upcoming_precision"], figures["upcoming_recall"]) == (1.0, 1.0)
    assert figures["wrong"] == [] and figures["missed"] == []


def test_the_pipeline_meets_the_accuracy_targets():
    figures = accuracy()
    assert figures["items"] >= MIN_ITEMS
    assert figures["missing_precision"] >= TARGET, figures["wrong"]
    assert figures["missing_recall"] >= TARGET, figures["missed"]
    assert figures["owned_listed_as_missing"] == 0, [w for w in figures["wrong"] if w["why"] == "owned"]
