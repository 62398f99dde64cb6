import json

from mamcrawler.candidates import Candidate, isbn13, sanitise
from mamcrawler.enrichment import OwnedBook, book_confidence, consensus, match, sequel_numbers

WAY = OwnedBook("i1", "The Way of Kings", ("Brandon Sanderson",), isbn="9780765326355", asin="B0TEST0001", duration_s=164460)


def cand(provider="audible", **kw):
    base = {"title": "The Way of Kings", "authors": ("Brandon Sanderson",)}
    return Candidate(provider=provider, **(base | kw))


def test_identifiers_make_a_high_match():
    m = match(WAY, cand(asin="B0TEST0001"))
    assert m.level == "HIGH" and "asin" in m.evidence
    m = match(WAY, cand(provider="google", isbn="9780765326355"))
    assert m.level == "HIGH" and "isbn" in m.evidence


def test_title_and_author_without_ids():
    book = OwnedBook("i2", "Words of Radiance", ("Brandon Sanderson",))
    assert match(book, cand(title="Words of Radiance")).level == "HIGH"
    assert match(book, cand(title="Words of Radiance", authors=("Someone Else",))).level in ("LOW", "UNMATCHED")
    assert match(book, cand(title="Rhythm of War")).level == "UNMATCHED"
    # Folded forms: case, noise and "Last, First" do not matter.
    assert match(book, cand(title="WORDS OF RADIANCE (Unabridged)", authors=("Sanderson, Brandon",))).level == "HIGH"


def test_sequel_numbers_never_match_each_other():
    assert sequel_numbers("Remnant II") == {2} and sequel_numbers("Save State Hero 5") == {5}
    assert sequel_numbers("2001: A Space Odyssey") == set()
    for owned, offered in (("Remnant II", "Remnant III"), ("Save State Hero 3", "Save State Hero 5"), ("Book 3", "Book 5")):
        m = match(OwnedBook("x", owned, ("A B",)), cand(title=offered, authors=("A B",)))
        assert m.level == "UNMATCHED" and m.evidence == ("sequel_number_mismatch",)
    assert match(OwnedBook("x", "Remnant II", ("A B",)), cand(title="Remnant II", authors=("A B",))).level == "HIGH"


def test_runtime_tells_editions_apart():
    book = OwnedBook("i", "The Hobbit", ("J. R. R. Tolkien",), duration_s=11 * 3600)
    same = match(book, cand(title="The Hobbit", authors=("J.R.R. Tolkien",), duration_s=11 * 3600 + 30, is_audiobook=True))
    other = match(book, cand(title="The Hobbit", authors=("J.R.R. Tolkien",), duration_s=4 * 3600, is_audiobook=True,
                             asin="B0OTHER001", narrators=("BBC Cast",)))
    assert same.edition == "same" and other.edition == "other" and same.score >= other.score
    assert any("another edition" in e for e in other.evidence)
    # Another edition is still the same book, but its ASIN, narrators and runtime are not ours.
    level, _ = book_confidence([other])
    fields = {f.field for f in consensus([other], {"audible": 1.0}, level)}
    assert "title" in fields and not fields & {"asin", "narrators", "duration_s"}
    fields = {f.field for f in consensus([same, other], {"audible": 1.0}, "HIGH")}
    assert {"duration_s"} <= fields


def test_part_of_a_split_edition_is_not_the_whole_book():
    m = match(WAY, cand("goodreads", subtitle="Part One"))
    assert "volume number on one side only" in m.evidence and m.level != "HIGH"
    level, _ = book_confidence([match(WAY, cand("google", isbn="9780765326355")), m])
    subtitle = {f.field: f for f in consensus([m], {"goodreads": 0.8}, level)}["subtitle"]
    assert subtitle.confidence == m.level  # no surer than the match that offers it


def test_consensus_keeps_contradictions_visible():
    matches = [
        match(WAY, cand("audible", asin="B0TEST0001", series=(("The Stormlight Archive", "1"),), is_audiobook=True, duration_s=164460)),
        match(WAY, cand("hardcover", series=(("The Stormlight Archive", "2"),), year=2010)),
        match(WAY, cand("google", isbn="9780765326355", year=2010, publisher="Tor")),
    ]
    level, _ = book_confidence(matches)
    assert level == "HIGH"
    fields = {f.field: f for f in consensus(matches, {"audible": 1.0, "hardcover": 0.9, "google": 1.0}, level)}
    series = fields["series"]
    assert series.conflict and series.confidence != "HIGH"
    assert json.loads(series.value_json) == [{"name": "The Stormlight Archive", "sequence": "1"}]
    alternatives = json.loads(series.alternatives_json)
    assert alternatives == [{"value": [{"name": "The Stormlight Archive", "sequence": "2"}], "providers": ["hardcover"]}]
    assert fields["year"].agreeing == ("google", "hardcover") and not fields["year"].conflict
    assert fields["year"].confidence == "HIGH"
    assert fields["duration_s"].provider == "audible"  # edition fields come from audiobook editions only


def test_a_tie_is_low_confidence():
    book = OwnedBook("i", "Guards! Guards!", ("Terry Pratchett",))
    matches = [
        match(book, cand("a", title="Guards! Guards!", authors=("Terry Pratchett",), year=1989)),
        match(book, cand("b", title="Guards! Guards!", authors=("Terry Pratchett",), year=1990)),
    ]
    year = {f.field: f for f in consensus(matches, {"a": 1.0, "b": 1.0}, "HIGH")}["year"]
    assert year.conflict and year.confidence == "LOW"


def test_sanitise_rejects_absurd_values():
    clean, reasons = sanitise(cand(year=0, duration_s=-5, authors=tuple(f"A{i} B" for i in range(500)), isbn="123", asin="bad"))
    assert clean.year is None and clean.duration_s is None and clean.authors == () and clean.isbn is None and clean.asin is None
    assert set(reasons) == {"absurd_year", "absurd_duration", "too_many_authors", "bad_isbn", "bad_asin"}
    assert sanitise(cand(title="  "))[0] is None
    assert isbn13("0-7653-2635-3") == "9780765326355" and isbn13("9780765326356") is None


def test_one_vote_per_provider():
    matches = [match(WAY, cand("audible", year=2010)), match(WAY, cand("hardcover", year=2010))]
    matches += [match(WAY, cand("google", year=2011, publisher=f"Edition {i}")) for i in range(3)]
    year = {f.field: f for f in consensus(matches, {"audible": 1.0, "hardcover": 0.9, "google": 1.0}, "HIGH")}["year"]
    assert json.loads(year.value_json) == 2010 and year.agreeing == ("audible", "hardcover")
