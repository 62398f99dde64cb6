import string

from hypothesis import given
from hypothesis import strategies as st

from mamcrawler.names import author_key, clean_title, display_author, fold, series_key, split_authors, title_key


def test_author_variants_share_a_key():
    assert author_key("J. R. R. Tolkien") == author_key("J.R.R. Tolkien") == author_key("JRR Tolkien") == "jrr tolkien"
    assert author_key("Lem, Stanisław") == author_key("Stanisław Lem") == author_key("Stanislaw Lem")
    assert author_key("James S. A. Corey") == author_key("James S.A. Corey")
    assert author_key("Ursula K. Le Guin") == "ursula k le guin"
    assert author_key("Martin Luther King, Jr.") == "martin luther king"
    assert author_key("") == author_key(None) == ""


def test_split_authors_keeps_last_first_whole():
    assert split_authors("Terry Pratchett & Neil Gaiman") == ["Terry Pratchett", "Neil Gaiman"]
    assert split_authors("Terry Pratchett, Neil Gaiman") == ["Terry Pratchett", "Neil Gaiman"]
    assert split_authors("Terry Pratchett and Neil Gaiman; Stephen Baxter") == [
        "Terry Pratchett", "Neil Gaiman", "Stephen Baxter",
    ]
    assert split_authors("Lem, Stanisław") == ["Lem, Stanisław"]
    assert display_author("Lem, Stanisław") == "Stanisław Lem"


def test_title_noise_is_removed_but_numbers_in_titles_stay():
    assert clean_title("The Way of Kings (Unabridged) [m4b]") == "The Way of Kings"
    assert clean_title("Dune - Unabridged") == "Dune"
    assert clean_title("Project Hail Mary {64kbps}") == "Project Hail Mary"
    assert clean_title("Fahrenheit 451") == "Fahrenheit 451"
    assert clean_title("Catch-22") == "Catch-22"
    assert title_key("The Way of Kings (Unabridged)") == title_key("THE WAY OF KINGS") == "way of kings"
    assert title_key("2001: A Space Odyssey") == "2001 a space odyssey"


def test_series_key_folds_articles_and_suffixes():
    assert series_key("The Expanse") == series_key("Expanse Series") == series_key("the  EXPANSE") == "expanse"
    assert series_key("Remembrance of Earth’s Past") == series_key("Remembrance of Earth's Past")


def test_emoji_and_control_characters():
    assert fold("📚 Dune 🚀") == "dune"
    assert clean_title("Dune\x00\tMessiah") == "Dune Messiah"


words = st.text(alphabet=string.ascii_letters + "ąćęłńóśźżéüøß' -.", min_size=1, max_size=30)


@given(words)
def test_fold_is_idempotent_ascii_and_trimmed(text):
    once = fold(text)
    assert fold(once) == once
    assert once == once.strip() and "  " not in once
    assert all(ch in string.ascii_lowercase + string.digits + " " for ch in once)


@given(st.text(alphabet=string.ascii_letters, min_size=2, max_size=12), st.text(alphabet=string.ascii_letters, min_size=2, max_size=12))
def test_last_first_equals_first_last(first, last):
    assert author_key(f"{last}, {first}") == author_key(f"{first} {last}")


@given(st.text(max_size=200))
def test_folding_never_crashes(text):
    assert isinstance(author_key(text), str)
    assert isinstance(title_key(text), str)
    assert isinstance(split_authors(text), list)
