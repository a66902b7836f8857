"""The one did-you-mean helper: difflib's answers, at a cost bounded whatever the input.

For vocabularies of up to MAX_EXAMINED names it answers exactly what
``difflib.get_close_matches(word, names, n=1)`` answers (plus a case-insensitive exact
match first). For larger ones it compares at most MAX_EXAMINED names per question and
still finds a one-character typo; a Suggester spends at most COMPARISONS comparisons in
all. Every module suggests through it (no other difflib user, no other "did you mean").
"""

from __future__ import annotations

import difflib
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from provcfg._errors import UnknownModelError, UnknownProviderError, UnknownRegionError
from provcfg._suggest import (
    COMPARISONS,
    MAX_EXAMINED,
    MAX_WORD,
    Suggester,
    Vocabulary,
    closest,
    hint,
    listing,
    quote,
)
from tests.support_manifest import ROOT

WORDS = st.text(alphabet="abcde_-01", min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(names=st.lists(WORDS, max_size=MAX_EXAMINED), word=WORDS)
def test_small_vocabularies_answer_as_difflib(names: list[str], word: str) -> None:
    """Up to MAX_EXAMINED names: the same answer as get_close_matches(n=1), or the exact
    case-insensitive match."""
    folded = {n.casefold(): n for n in reversed(names)}
    expected = folded.get(word.casefold())
    if expected is None:
        matches = difflib.get_close_matches(word, names, n=1)
        expected = matches[0] if matches else None
    assert closest(word, names) == expected


@settings(max_examples=40, deadline=None)
@given(
    names=st.lists(
        st.text(alphabet="abcdefghij-0123456789", min_size=8, max_size=20),
        min_size=MAX_EXAMINED + 1,
        max_size=MAX_EXAMINED * 4,
        unique=True,
    ),
    data=st.data(),
)
def test_large_vocabularies_still_find_a_one_character_typo(
    names: list[str], data: st.DataObject
) -> None:
    """Over thousands of names, a word one edit (inside the name) away from one still gets
    a suggestion at least as close as that name."""
    target = data.draw(st.sampled_from(names))
    at = data.draw(st.integers(3, len(target) - 4))
    word = target[:at] + target[at + 1 :]  # one character deleted inside the name
    suggestion = Vocabulary(names).closest(word)
    assert suggestion is not None
    ratio = difflib.SequenceMatcher(None, suggestion, word).ratio()
    assert ratio >= difflib.SequenceMatcher(None, target, word).ratio()


def test_one_question_compares_at_most_max_examined_names() -> None:
    """However many names share a length and both ends, one question looks at 100 of them."""
    names = [f"pool-{i:06d}-pool" for i in range(20_000)]
    vocabulary = Vocabulary(names)
    assert len(vocabulary.candidates("pool-12345-pool")) <= MAX_EXAMINED
    suggester = Suggester()
    suggester.closest("pool-12345-pool", vocabulary)
    assert COMPARISONS - suggester.remaining <= MAX_EXAMINED


def test_a_run_spends_at_most_its_budget() -> None:
    """10,000 questions over 5,000 names: the comparisons of a whole run stay in budget, and
    exact (case-insensitive) matches are still answered once it is spent."""
    names = [f"name-{i:05d}" for i in range(5000)]
    vocabulary = Vocabulary(names)
    suggester = Suggester()
    for i in range(10_000):
        suggester.closest(f"nme-{i:05d}", vocabulary)
    assert 0 <= suggester.remaining < MAX_EXAMINED
    assert suggester.closest("NAME-00042", vocabulary) == "name-00042"
    assert suggester.remaining >= 0


def test_long_words_are_neither_compared_nor_echoed() -> None:
    """A word over MAX_WORD characters gets no fuzzy match and is quoted by its length only."""
    long = "x" * (MAX_WORD + 1)
    assert closest(long, [long[:-1]]) is None
    assert quote(long) == f"<a {MAX_WORD + 1:,}-character name>"
    assert quote("a\nb") == "'a\\nb'"


def test_listing_shows_a_handful() -> None:
    """Listings are sorted, show five names, then how many more; empty is (none)."""
    assert listing([]) == "(none)"
    assert listing(["b", "a"]) == "a, b"
    names = [f"n{i:04d}" for i in range(1200)]
    assert listing(names) == "n0000, n0001, n0002, n0003, n0004, ... and 1,195 more"
    assert Vocabulary(names).listing() == listing(names)
    assert hint("x") == "; did you mean 'x'?" and hint(None, "fix it") == "; fix it"


def test_errors_list_a_handful_of_names() -> None:
    """The lookup errors of the Runtime name five candidates however many exist."""
    known = [f"p{i}" for i in range(1000)]
    for error in (
        UnknownProviderError("p1x", known, closest("p1x", known)),
        UnknownRegionError("p1x", known, closest("p1x", known)),
        UnknownModelError("api", "p1x", closest("p1x", known), known),
    ):
        text = str(error)
        assert "... and 995 more" in text and len(text) < 400, text
        assert "did you mean 'p1'?" in text


def test_one_helper_for_the_package() -> None:
    """No module but provcfg/_suggest.py formats a did-you-mean or calls get_close_matches
    (the model table's passthrough check keeps its own stricter typo test)."""
    for path in sorted((ROOT / "provcfg").rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(ROOT / "provcfg").as_posix()
        if name == "_suggest.py":
            continue
        assert not re.search(r"f\".*did you mean", text), name
        if "get_close_matches" in text:
            assert name == "_modeltable.py", name
            assert text.count("get_close_matches") == 1, name
