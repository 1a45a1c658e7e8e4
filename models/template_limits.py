"""What a prompt template may build: no value, and no rendered prompt, larger than MAX_CHARS.

A sandboxed template cannot reach Python internals, but `{{ input|center(100000000) }}` or
`{{ '%0100000000d'|format(1) }}` would still build hundreds of megabytes. So:
- an operation whose result size the template picks freely (a width, a count, an exponent, a separator
  or replacement repeated per item) has that size computed from its arguments before it runs;
- every value a filter, call, literal or `~` builds is measured afterwards (strings by length, containers
  by their items, a shared item once per occurrence), so nothing can grow from an oversized value;
- methods that build text from a width or count (`'x'.center(n)`, `.format`, `.join`, ...) are not callable:
  the filters of the same name are, bounded.
`check_static` applies the first rule to constant arguments when a workflow is validated.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from numbers import Number
from typing import Any

from jinja2 import nodes, pass_environment, pass_eval_context
from jinja2.filters import FILTERS, do_join, do_wordwrap

MAX_CHARS = 2_000_000  # any string or container a template builds, and the rendered prompt
MAX_ITEMS = 100_000  # counts: batch sizes, slices
MAX_EXPONENT = 100
MAX_INT_BITS = 100_000
MAX_JSON_INDENT = 16
MAX_URL_ATTRIBUTES = 200  # characters of urlize's target and rel, repeated for every link

AMPLIFYING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "format", "format_map", "join",
                                "replace", "translate", "to_bytes", "fromkeys"})
_PRINTF_FIELD = re.compile(r"%(?:\(([^)]*)\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.?)", re.DOTALL)


class LimitExceeded(ValueError):
    """An operation would build more than a template may."""


def size_of(value: Any, _memo: dict[int, int] | None = None) -> int:
    """Characters `value` spans as text: strings by length, containers by their items (shared ones each time)."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 3 + 1  # at least its decimal digits
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return 1
    memo = {} if _memo is None else _memo
    if id(value) not in memo:
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        if set(map(type, items)) <= {str}:  # the common case, without a Python call per item
            memo[id(value)] = len(value) + sum(map(len, items))
        else:
            memo[id(value)] = len(value) + sum(size_of(item, memo) for item in items)
    return memo[id(value)]


def limit(size: int, what: str) -> None:
    """Refuse an operation whose result would span `size` characters."""
    if size > MAX_CHARS:
        raise LimitExceeded(f"{what} would build {size:,} characters; a template may build at most {MAX_CHARS:,}")


def checked(value: Any, what: str = "a value") -> Any:
    """`value`, once measured."""
    limit(size_of(value), what)
    return value


def _count(value: Any, what: str) -> None:
    if isinstance(value, int) and value > MAX_ITEMS:
        raise LimitExceeded(f"{what} of {value:,} is more than the {MAX_ITEMS:,} a template may use")


def _width(value: Any) -> int:
    return value if isinstance(value, int) else 0


def check_printf(text: str, values: Any) -> None:
    """`text % values`: the text, plus each field's width and the value it reads (a named one each time)."""
    positional = iter(values if isinstance(values, tuple) else () if isinstance(values, Mapping) else (values,))
    total = len(text)
    for name, width, precision, conversion in _PRINTF_FIELD.findall(text):
        if "*" in (width, precision):
            raise LimitExceeded("`*` widths in `%` formatting are not allowed in templates")
        if conversion == "%":
            continue
        value = values.get(name) if name and isinstance(values, Mapping) else next(positional, None)
        total += max(_digits(width), _digits(precision)) + size_of(value)
    limit(total, "`%` formatting")


def _digits(number: str) -> int:
    """A width or precision as written (absent: 0); an absurdly long one counts as too large."""
    if not number:
        return 0
    return int(number) if len(number) < 10 else MAX_CHARS + 1


def check_binop(operator: str, left: Any, right: Any) -> None:
    """`*` and `+` on text or lists, `**` and `*` on integers, and `%` formatting, before they run."""
    sequences = (str, list, tuple)
    if operator == "**" and isinstance(right, int | float):
        if abs(right) > MAX_EXPONENT:
            raise LimitExceeded(f"an exponent larger than {MAX_EXPONENT} is not allowed")
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > MAX_INT_BITS:
            raise LimitExceeded(f"the power would have more than {MAX_INT_BITS:,} bits")
    elif operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, sequences) and isinstance(times, int):
                limit(size_of(seq) * times, "repetition")
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise LimitExceeded(f"the product would have more than {MAX_INT_BITS:,} bits")
    elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
        limit(size_of(left) + size_of(right), "concatenation")
    elif operator == "%" and isinstance(left, str):
        check_printf(left, right)


def join_bounded(parts: Iterable[Any]) -> str:
    """`~`: the parts' text, once their total size is known to fit."""
    parts = list(parts)
    limit(sum(size_of(part) for part in parts), "`~` concatenation")
    return "".join(map(str, parts))


def concat_bounded(parts: Iterable[str]) -> str:
    """Rendered output (and macro and block bodies), counted as it is produced."""
    pieces: list[str] = []
    total = 0
    for piece in parts:
        total += len(piece)
        limit(total, "the rendered text")
        pieces.append(piece)
    return "".join(pieces)


# -- filters: the size each would build, from its arguments, before it runs ----------------------------------

def _lines(value: Any) -> int:
    return str(value).count("\n") + 1


def _center(value: Any, width: Any = 80) -> None:
    limit(max(size_of(value), _width(width)), "center")


def _indent(value: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
    unit = len(width) if isinstance(width, str) else _width(width)
    limit(size_of(value) + _lines(value) * unit, "indent")


def _replace(value: Any, old: Any, new: Any, count: Any = None) -> None:
    text, old, new = str(value), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    limit(len(text) + hits * (len(new) - len(old)), "replace")


def _format(value: Any, *args: Any, **kwargs: Any) -> None:
    check_printf(str(value), kwargs or args)


def _batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
    _count(linecount, "a batch size")


def _slice(value: Any, slices: Any, fill_with: Any = None) -> None:
    _count(slices, "a number of slices")


def _tojson(value: Any, indent: Any = None) -> None:
    if (len(indent) if isinstance(indent, str) else _width(indent)) > MAX_JSON_INDENT:
        raise LimitExceeded(f"a tojson indent larger than {MAX_JSON_INDENT} is not allowed")


def _urlize(value: Any, trim_url_limit: Any = None, nofollow: bool = False, target: Any = None, rel: Any = None,
            extra_schemes: Any = None) -> None:
    if len(str(target or "")) + len(str(rel or "")) > MAX_URL_ATTRIBUTES:
        raise LimitExceeded(f"urlize's target and rel may be at most {MAX_URL_ATTRIBUTES} characters together")


def _sum(iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if not isinstance(start, Number):
        raise LimitExceeded("sum adds numbers in templates (a list `start` would copy the list once per item)")


FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _center, "indent": _indent, "replace": _replace, "format": _format, "batch": _batch,
    "slice": _slice, "tojson": _tojson, "urlize": _urlize, "sum": _sum,
}


@pass_eval_context
def _join(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> str:
    """`join`, once the items and the separators repeated between them are known to fit."""
    items = list(value)
    limit(size_of(items) + len(items) * len(str(d)), "join")
    return do_join(eval_ctx, items, d, attribute)


@pass_environment
def _wordwrap(environment: Any, s: str, width: int = 79, break_long_words: bool = True, wrapstring: str | None = None,
              break_on_hyphens: bool = True) -> str:
    """`wordwrap`, once the wrap string repeated at every break is known to fit (lines never contain a newline)."""
    wrapped = do_wordwrap(environment, s, width, break_long_words, "\n", break_on_hyphens)
    wrapstring = environment.newline_sequence if wrapstring is None else str(wrapstring)
    limit(len(wrapped) + wrapped.count("\n") * (len(wrapstring) - 1), "wordwrap")
    return wrapped.replace("\n", wrapstring)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` with its argument check first (if it has one) and its result measured."""
    check = FILTER_CHECKS.get(name)
    skip = 1 if hasattr(func, "jinja_pass_arg") else 0  # the context or environment Jinja passes first

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if check is not None:
            check(*args[skip:], **kwargs)
        return checked(func(*args, **kwargs), f"the {name} filter")

    return bounded


def bounded_filters() -> dict[str, Callable[..., Any]]:
    """Jinja's filters, each bounded."""
    filters: dict[str, Callable[..., Any]] = {**FILTERS, "join": _join, "wordwrap": _wordwrap}
    return {name: _bounded_filter(name, func) for name, func in filters.items()}


# -- static checks: constant arguments, when the workflow is validated ------------------------------------

_OPERATORS = {nodes.Mul: "*", nodes.Pow: "**", nodes.Mod: "%", nodes.Add: "+"}


def check_static(root: nodes.Node) -> None:
    """Refuse calls of amplifying methods, and filters and operators whose constant arguments exceed a limit."""
    for node in [root, *root.find_all((nodes.Call, nodes.Filter, nodes.BinExpr))]:
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            if node.node.attr in AMPLIFYING_METHODS:
                raise LimitExceeded(f"calling .{node.node.attr}() is not allowed in templates; "
                                    "use the filter of the same name where there is one")
        elif isinstance(node, nodes.Filter) and node.name in FILTER_CHECKS and node.node is not None:
            _check_constant_filter(node)
        elif isinstance(node, nodes.BinExpr) and type(node) in _OPERATORS:
            left, right = _constant(node.left), _constant(node.right)
            if right is not None and (left is not None or type(node) is nodes.Pow):  # an exponent alone can refuse
                check_binop(_OPERATORS[type(node)], 0 if left is None else left, right)


def _check_constant_filter(node: nodes.Filter) -> None:
    """Run the filter's check on its constant arguments (a non-constant value counts as empty text)."""
    args = [_constant(arg) for arg in node.args]
    kwargs = {str(kw.key): _constant(kw.value) for kw in node.kwargs}
    if node.dyn_args is not None or node.dyn_kwargs is not None or None in args or None in kwargs.values():
        return
    value = _constant(node.node)
    try:
        FILTER_CHECKS[node.name]("" if value is None else value, *args, **kwargs)
    except TypeError:
        return  # wrong arguments: Jinja reports them when the template runs


def _constant(node: nodes.Node | None) -> Any:
    """The value of a literal (or a list, tuple or dict of literals), or None."""
    if not isinstance(node, nodes.Expr):
        return None
    try:
        return node.as_const()
    except Exception:  # Impossible, or whatever the constant operation raises
        return None
