"""A check of a semantic-cache candidate that the embedding cannot make: whether two similar questions differ in
a detail that makes them different questions.

Sentence embeddings pool the meaning of the words, so they are nearly blind to three kinds of difference that
change the answer (measured on `tests/data/semantic_cache_pairs.jsonl` with all-MiniLM-L6-v2):
- **order**: "flights from New York to London" against "from London to New York" scored 0.998;
- **numbers and operators**: "3x + 7 = 22" against "3x - 7 = 22" scored 0.961;
- **one slot changed in the same sentence**: "turn on two-factor authentication" against "turn off" scored
  0.935, "the pros of nuclear energy" against "the cons" 0.909.

So a candidate is refused when its numbers differ, when the content words the two share come in another order,
or when the two are the same sentence with one or two content words swapped for others (a *minimal pair*). A
paraphrase usually rewords more broadly; when one is refused too, the cost is a miss, never a wrong answer.
"""

from __future__ import annotations

import re

# Words that carry no slot of the question: function words, question words and politeness.
STOP_WORDS = frozenset("""
a an the of to in at by for from with into about as and or but if than then so this that these those it its
is are was were be been being am do does did done can could should would will shall may might must have has had
i me my mine you your yours we us our they them their he him his she her what whats which who whom whose how why
when where there here please tell give show some any just really actually very much one ones
""".split())
MAX_SWAPPED = 2  # content words per side that make two otherwise identical questions a minimal pair

_WORD = re.compile(r"[a-z0-9]+")
_NUMBER_OR_OPERATOR = re.compile(r"\d+(?:[.,]\d+)*|[-+*/=%^<>]")


def same_question(asked: str, stored: str) -> bool:
    """Whether `stored` may answer `asked`, as far as order, numbers and swapped slots tell."""
    if _numbers(asked) != _numbers(stored):
        return False
    asked_words, stored_words = _content_words(asked), _content_words(stored)
    return _same_order(asked_words, stored_words) and not _minimal_pair(set(asked_words), set(stored_words))


def _numbers(text: str) -> list[str]:
    return sorted(_NUMBER_OR_OPERATOR.findall(text))


def _content_words(text: str) -> list[str]:
    return [word for word in _WORD.findall(text.lower()) if word not in STOP_WORDS]


def _same_order(first: list[str], second: list[str]) -> bool:
    """The words both use appear in the same order in each (each word at its first use)."""
    shared = set(first) & set(second)
    return [w for w in dict.fromkeys(first) if w in shared] == [w for w in dict.fromkeys(second) if w in shared]


def _minimal_pair(first: set[str], second: set[str]) -> bool:
    """Each side has one or two content words the other lacks: the same question frame with another slot."""
    only_first, only_second = first - second, second - first
    return 0 < len(only_first) <= MAX_SWAPPED and 0 < len(only_second) <= MAX_SWAPPED
