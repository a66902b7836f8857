"""Did-you-mean suggestions, name listings and quoted words for messages, at bounded cost.

The one place provcfg turns "a word the user wrote" plus "the names that exist" into the
text of an error message: the manifest loader, the problem mapper, the Runtime's lookups
and the error classes all come here.

* :meth:`Vocabulary.closest` / :func:`closest`: the name ``difflib`` rates closest (at least
  :data:`CUTOFF`), as before; but one question compares at most :data:`MAX_EXAMINED` names.
  A large vocabulary is indexed by length and by the first and last three characters, and
  the names sharing the smallest such groups with the word are compared first (a typo
  rarely touches both ends of a name); words longer than :data:`MAX_WORD` get only an
  exact (case-insensitive) match.
* :class:`Suggester`: the questions of one run (one manifest load) share a budget of
  :data:`COMPARISONS` name comparisons; once it is spent only exact matches are offered,
  so a file with 30,000 misspelled references over 30,000 names still validates quickly.
* :func:`listing`: ``a, b, c, d, e, ... and 1,195 more``: a message names a handful of
  candidates, never thousands.
* :func:`quote`: ``'word'`` (``repr``: control characters escaped), or
  ``<a 70,000-character name>`` for a word too long to echo.

It imports nothing from provcfg: every layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "COMPARISONS",
    "CUTOFF",
    "MAX_EXAMINED",
    "MAX_WORD",
    "SHOWN",
    "Suggester",
    "Vocabulary",
    "closest",
    "hint",
    "listing",
    "quote",
]

MAX_WORD: Final = 64
"""Longest word echoed in a message or compared fuzzily (names are at most 64 characters)."""
MAX_EXAMINED: Final = 100
"""Most names compared with the word for one question."""
COMPARISONS: Final = 5000
"""Name comparisons one :class:`Suggester` (one manifest load) makes in all."""
SHOWN: Final = 5
"""Names a listing shows before ``... and N more``."""
CUTOFF: Final = 0.6
"""``difflib`` similarity a name needs to be suggested (``get_close_matches``' default)."""
_ENDS: Final = 3  # characters of each end a large vocabulary is indexed by (fewer if short)


def _ends(length: int) -> int:
    """How many characters of each end index a name of ``length`` (1 to 3)."""
    return min(_ENDS, max(1, length // 3))


def quote(word: object) -> str:
    """``repr(word)`` for a short string (control characters escaped); a length for a long one.

    A long word is not echoed at all, not even in part: it may be a secret pasted in the
    wrong place, and a prefix would escape the secret scrubbing that matches whole values.
    """
    if isinstance(word, str) and len(word) > MAX_WORD:
        return f"<a {len(word):,}-character name>"
    return repr(word)


def listing(names: Iterable[object], limit: int = SHOWN, *, ordered: bool = False) -> str:
    """``a, b, c``: sorted (or in the given order with ``ordered``), at most ``limit`` shown,
    then ``... and N more``; ``(none)`` when empty."""
    unique = list(dict.fromkeys(str(n) for n in names))
    return _listing(unique if ordered else sorted(unique), limit)


def _listing(ordered: list[str], limit: int) -> str:
    if not ordered:
        return "(none)"
    shown = ", ".join(n if len(n) <= MAX_WORD else quote(n) for n in ordered[:limit])
    rest = len(ordered) - limit
    return f"{shown}, ... and {rest:,} more" if rest > 0 else shown


def hint(match: str | None, fix: str = "") -> str:
    """``; did you mean 'x'?`` for a match, else ``; <fix>`` (empty when there is no fix)."""
    if match is not None:
        return f"; did you mean {quote(match)}?"
    return f"; {fix}" if fix else ""


class Vocabulary:
    """A fixed set of names, prepared once to answer many did-you-mean questions cheaply.

    Exact matches (ignoring case) are a dict lookup; the listing for messages is built
    once; a vocabulary of more than :data:`MAX_EXAMINED` names is indexed (on first use)
    by ``(length, first three characters)`` and ``(length, last three characters)`` (one
    or two for names under nine characters), so a question looks at a few small groups
    of names within two characters of its length instead of every name.
    """

    __slots__ = ("_ends", "_folded", "_listing", "names")

    def __init__(self, names: Iterable[object]) -> None:
        unique = dict.fromkeys(n for n in names if isinstance(n, str))
        self.names: tuple[str, ...] = tuple(unique)
        self._folded: dict[str, str] = {}
        for name in self.names:
            self._folded.setdefault(name.casefold(), name)
        self._listing: str | None = None
        self._ends: dict[tuple[int, str, bool], list[str]] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def listing(self) -> str:
        """The names for a message: sorted, a handful, then ``... and N more``."""
        if self._listing is None:
            self._listing = _listing(sorted(self.names), SHOWN)
        return self._listing

    def exact(self, word: str) -> str | None:
        """The name equal to ``word`` ignoring case, if any."""
        return self._folded.get(word.casefold())

    def candidates(self, word: str) -> list[str]:
        """The names worth comparing with ``word``: at most :data:`MAX_EXAMINED` of them."""
        if len(self.names) <= MAX_EXAMINED:
            return [n for n in self.names if len(n) <= MAX_WORD]
        if self._ends is None:
            self._ends = {}
            for name in self.names:
                if 0 < len(name) <= MAX_WORD:
                    ends = _ends(len(name))
                    self._ends.setdefault((len(name), name[:ends], True), []).append(name)
                    self._ends.setdefault((len(name), name[-ends:], False), []).append(name)
        size = len(word)
        groups = [
            group
            for length in range(max(1, size - 2), size + 3)
            for key in (
                (length, word[: _ends(length)], True),
                (length, word[-_ends(length) :], False),
            )
            if (group := self._ends.get(key))
        ]
        # Whole groups, smallest first, while they fit; a group too big to fit is only
        # sampled when nothing else is left (a name typed wrong at both ends is not found).
        chosen: dict[str, None] = {}
        for group in sorted(groups, key=len):
            if len(chosen) + len(group) > MAX_EXAMINED:
                if not chosen:
                    return group[:MAX_EXAMINED]
                break
            chosen.update(dict.fromkeys(group))
        return list(chosen)

    def closest(self, word: str, cutoff: float = CUTOFF) -> str | None:
        """The name closest to ``word``, or None when none is close enough.

        A name equal ignoring case wins; otherwise the best ``difflib`` ratio of at least
        ``cutoff`` among :meth:`candidates` (ties: the greater name, as difflib does).
        """
        return self._closest(word, MAX_EXAMINED, cutoff)[0]

    def _closest(self, word: str, allowed: int, cutoff: float = CUTOFF) -> tuple[str | None, int]:
        """(closest name, names compared), comparing at most ``allowed`` names."""
        found = self._folded.get(word.casefold())
        if found is not None or not word or len(word) > MAX_WORD or allowed <= 0:
            return found, 0
        import difflib  # only on the error path: importing it costs milliseconds

        pool = self.candidates(word)[:allowed]
        matcher = difflib.SequenceMatcher()
        matcher.set_seq2(word)
        best: tuple[float, str] | None = None
        floor = cutoff
        for name in pool:
            matcher.set_seq1(name)
            # The quick upper bounds first; a name must at least tie the best so far.
            if matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor:
                continue
            score = matcher.ratio()
            if score >= floor and (best is None or (score, name) > best):
                best = (score, name)
                floor = score
        return (best[1] if best is not None else None), len(pool)


class Suggester:
    """The did-you-mean questions of one run, sharing a budget of name comparisons.

    Each :meth:`closest` call spends the comparisons it makes (at most
    :data:`MAX_EXAMINED`) out of ``budget``; once the budget is spent only exact
    (case-insensitive) matches are suggested. A whole run thus costs at most ``budget``
    comparisons of words of at most :data:`MAX_WORD` characters.
    """

    __slots__ = ("remaining",)

    def __init__(self, budget: int = COMPARISONS) -> None:
        self.remaining = budget

    def closest(self, word: str, names: Iterable[object] | Vocabulary) -> str | None:
        """The name closest to ``word`` (see :meth:`Vocabulary.closest`), within the budget."""
        vocabulary = names if isinstance(names, Vocabulary) else Vocabulary(names)
        found, spent = vocabulary._closest(word, min(self.remaining, MAX_EXAMINED))
        self.remaining -= spent
        return found

    def hint(self, word: str, names: Iterable[object] | Vocabulary, fix: str = "") -> str:
        """``; did you mean 'x'?`` for a close name, else ``; <fix>``."""
        return hint(self.closest(word, names), fix)


def closest(word: str, candidates: Iterable[object], cutoff: float = CUTOFF) -> str | None:
    """The candidate closest to ``word``, if any is close enough (difflib ratio >= ``cutoff``).

    One question, bounded cost: see :class:`Vocabulary`.
    """
    return Vocabulary(candidates).closest(word, cutoff)
