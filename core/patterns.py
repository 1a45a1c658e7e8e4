"""Regular expressions written by users (regex scorers, regex output parsers), matched under a time limit.

The `regex` engine reads the same syntax as `re` (lookaround and backreferences included, which the
built-in benchmark dataset uses) and stops a search after MATCH_SECONDS, so a catastrophically
backtracking pattern such as `(a+)+$` costs a bounded slice of one core instead of a whole worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import regex

MATCH_SECONDS = 0.1


class PatternError(ValueError):
    """The pattern does not compile; the message says why."""


class PatternTimeoutError(ValueError):
    """A search ran longer than MATCH_SECONDS: the pattern backtracks too much on this text."""


class Pattern:
    """A compiled user pattern with `search` and `groupindex`, like `re.Pattern`."""

    def __init__(self, source: str, *, ignore_case: bool = False) -> None:
        try:
            self._compiled = regex.compile(source, regex.IGNORECASE if ignore_case else 0)
        except regex.error as exc:
            raise PatternError(f"invalid regular expression: {exc}") from None
        self.source = source

    @property
    def groupindex(self) -> Mapping[str, int]:
        return self._compiled.groupindex

    def search(self, text: str) -> Any:
        """The first match in `text`, or None; raises PatternTimeoutError past MATCH_SECONDS."""
        try:
            return self._compiled.search(text, timeout=MATCH_SECONDS)
        except TimeoutError:
            raise PatternTimeoutError(f"the pattern took longer than {MATCH_SECONDS:g} s on a text of "
                                      f"{len(text)} characters (it backtracks too much)") from None
