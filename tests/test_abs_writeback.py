"""The library refresh and the metadata write-back against a real Audiobookshelf 2.36.0.

The books are ffmpeg-made m4b files in the folder layouts people use ("Book 1 - Title",
"01 - Title"), then edited in ABS the way a user edits them (own genres, tags, narrators, an
HTML description, a phrase sequence). The demo providers (recorded answers) enrich them and
the write-back runs for real. Item dumps before and after: nothing the user had is lost,
what was written survives ABS's forced rescan, and a second run sends nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from mamcrawler.enrichment import BUCKETS
from mamcrawler.warehouse import Warehouse, default_warehouse_path
from pipelines.definitions import build_definitions
from pipelines.profiles import Profile, build_resources
from resources.audiobookshelf import AudiobookshelfResource
from resources.enrichment import EnrichmentSettings
from tests.abs_server import AbsServer, m4b_book

pytestmark = pytest.mark.abs

ALL = {"dagster/asset_partition_range_start": BUCKETS[0], "dagster/asset_partition_range_end": BUCKETS[-1]}
SANDERSON = "Brandon Sanderson"
# (folder under the library, title, author, narrator, genre tag)
BOOKS = [
    (f"{SANDERSON}/The Stormlight Archive/Book 1 - The Way of Kings", "The Way of Kings", SANDERSON, "Michael Kramer", "Fantasy"),
    (f"{SANDERSON}/The Stormlight Archive/02 - Words of Radiance", "Words of Radiance", SANDERSON, "Michael Kramer", "Fantasy"),
    (f"{SANDERSON}/The Stormlight Archive/Book 4 - Rhythm of War", "Rhythm of War", SANDERSON, None, "Fantasy"),
    (f"{SANDERSON}/Mistborn/Book 1 - The Final Empire", "The Final Empire", SANDERSON, "Michael Kramer", "Fantasy"),
    ("Cixin Liu/The Three-Body Problem/01 - The Three-Body Problem", "The Three-Body Problem", "Cixin Liu", None, "Science Fiction"),
    ("James S. A. Corey/The Expanse/Book 1 - Leviathan Wakes", "Leviathan Wakes", "James S. A. Corey", "Jefferson Mays", None),
    ("Andy Weir/Project Hail Mary", "Project Hail Mary", "Andy Weir", "Ray Porter", "Science Fiction"),
]
USER_HTML = "<p>My <b>own</b> notes: <i>read after</i> Mistborn.</p>"


def _dump(server: AbsServer, library_id: str) -> dict[str, dict]:
    """What a user sees of each book: metadata and tags, by folder."""
    out = {}
    for item in server.items(library_id):
        meta = item["media"]["metadata"]
        out[item["relPath"]] = {
            "title": meta["title"], "subtitle": meta["subtitle"], "authors": [a["name"] for a in meta["authors"]], "narrators": meta["narrators"],
            "series": [(s["name"], s["sequence"]) for s in meta["series"]], "genres": meta["genres"],
            "tags": item["media"]["tags"], "description": meta["description"], "asin": meta["asin"],
            "publishedYear": meta["publishedYear"],
        }
    return out


def _run(defs, job: str, instance: DagsterInstance, **kw) -> None:
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, **kw)
    assert result.success, [e.message for e in result.all_events if e.is_failure]


def _writeback_metadata(instance: DagsterInstance) -> dict:
    """The latest write-back materialisation's metadata (one run records it for every bucket)."""
    return instance.fetch_materializations(AssetKey("abs_metadata_writeback"), limit=1).records[0].asset_materialization.metadata


def _user_edits(server: AbsServer, library_id: str) -> None:
    """Edits a user makes in ABS's web UI (the same PATCH it sends)."""
    by_title = {i["media"]["metadata"]["title"]: i for i in server.items(library_id)}

    def patch(title: str, metadata: dict, tags: list[str] | None = None) -> None:
        body = {"metadata": metadata, **({"tags": tags} if tags is not None else {})}
        server.api("PATCH", f"/api/items/{by_title[title]['id']}/media", json=body).raise_for_status()

    patch("The Way of Kings", {"genres": ["Fantasy", "Military"]}, tags=["favourite", "re-read"])
    patch("Words of Radiance", {"genres": ["Fantasy", "Military"], "narrators": ["Michael Kramer", "Kate Reading"]})
    patch("Rhythm of War", {"genres": ["Military"], "description": USER_HTML})
    # A phrase sequence ABS keeps until its next rescan of the item.
    patch("The Final Empire", {"series": [{"name": "Mistborn", "sequence": "Book One"}]}, tags=["owned on CD"])


def test_refresh_and_writeback_keep_what_the_user_had_and_repeat_as_nothing(tmp_path, abs_server):
    library_dir = tmp_path / "library"
    for folder, title, author, narrator, genre in BOOKS:
        m4b_book(library_dir / folder, title=title, author=author, narrator=narrator, genre=genre)
    library_id = abs_server.create_library(f"writeback-{tmp_path.name}", library_dir)["id"]
    abs_server.scan(library_id)
    _user_edits(abs_server, library_id)
    before = _dump(abs_server, library_id)
    assert before[BOOKS[3][0]]["series"] == [("Mistborn", "Book One")]

    resources = build_resources(Profile("demo", "test")) | {
        "abs_client": AudiobookshelfResource(base_url=abs_server.url, api_key=abs_server.api_key, library_ids=[library_id],
                                             backoff_s=0.01),
        "enrichment": EnrichmentSettings(writeback_enabled=True, writeback_min_confidence="LOW"),
    }
    defs = build_definitions(Profile("demo", "test"))
    defs = type(defs)(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, resources=resources)
    instance = DagsterInstance.ephemeral()
    store = Warehouse(default_warehouse_path())

    # The refresh read the real library: every book, series and position from the folders.
    _run(defs, "refresh_library", instance)
    books = store.read_table("library_books")
    assert books.height == len(BOOKS)
    stormlight = books.filter(pl.col("title").is_in(["The Way of Kings", "Words of Radiance", "Rhythm of War"]))
    assert stormlight.height == 3
    missing = store.read_table("missing_books").filter(pl.col("series") == "The Stormlight Archive")
    assert missing["position"].to_list() == [3.0], "the one gap of the owned positions 1, 2 and 4"

    _run(defs, "enrich_metadata", instance, tags=ALL)
    first = _writeback_metadata(instance)
    after = _dump(abs_server, library_id)
    applied = store.read_table("metadata_corrections").filter(pl.col("mode") == "applied")
    assert applied.height, "confident corrections were sent"
    changed = {rel for rel in before if before[rel] != after[rel]}
    assert changed, "the write-back changed books in ABS"
    for rel, old in before.items():
        new = after[rel]
        assert set(old["genres"]) <= set(new["genres"]), (rel, old["genres"], new["genres"])
        assert new["tags"] == old["tags"], rel
        assert set(old["narrators"]) <= set(new["narrators"]), rel
        assert {name for name, _ in old["series"]} <= {name for name, _ in new["series"]}, rel
        if old["description"]:
            assert new["description"] == old["description"], rel
        for name, sequence in new["series"]:
            assert sequence is None or " " not in sequence, (rel, name, sequence)
    assert after[BOOKS[2][0]]["description"] == USER_HTML  # HTML kept as the user wrote it
    assert ("Mistborn", "1") in after[BOOKS[3][0]]["series"]  # the phrase rescued as a number
    # The providers put The Three-Body Problem in Remembrance of Earth's Past; ABS's own series stays.
    three_body = {name for name, _ in after[BOOKS[4][0]]["series"]}
    assert {"The Three-Body Problem", "Remembrance of Earth's Past"} <= three_body
    # A provider's description written into an empty field keeps its HTML.
    written = [d for rel, d in ((r, after[r]["description"]) for r in changed) if d and not before[rel]["description"]]
    assert any("<" in d for d in written), written

    # ABS's forced rescan re-reads every item from its metadata.json: nothing written is lost.
    abs_server.scan(library_id, force=True)
    rescanned = _dump(abs_server, library_id)
    assert rescanned == after

    # A second run (fresh snapshot, refreshed answers) finds nothing to send.
    sent_before = store.read_table("metadata_corrections").height
    _run(defs, "refresh_library", instance)
    _run(defs, "enrich_metadata", instance, tags=ALL,
         run_config={"ops": {"book_metadata": {"config": {"refresh": True}}}})
    assert _dump(abs_server, library_id) == after
    assert store.read_table("metadata_corrections").height == sent_before
    meta = _writeback_metadata(instance)
    assert "applied" not in meta["books"].value and meta["summary"].value == "nothing to change"
    # One unit per counter: the log, the materialisation and the CLI say books and fields alike.
    books = applied["item_id"].n_unique()
    assert first["summary"].value.startswith(f"applied: {books} books ({applied.height} fields)")
    assert f"| applied | {books} |" in first["books"].value and f"| applied | {applied.height} |" in first["fields"].value
    from pipelines.cli import _metadata_summary
    # The CLI counts corrections (one per book and field) by their latest outcome, over all runs.
    assert f" {applied.height} applied" in _metadata_summary(store, datetime.now(UTC))
