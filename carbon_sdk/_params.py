"""One placeholder story for every SQL connector and the ``%%trino``/``%%postgres`` magics.

========  ================================  =======================
params    PostgreSQL                        Trino
========  ================================  =======================
sequence  ``$1, $2 ...`` or psycopg ``%s``  ``?``
mapping   ``:name`` or psycopg ``%(name)s``  ``:name``
========  ================================  =======================

:func:`bind` rewrites named and psycopg placeholders to the server's own positional ones and
orders the values to match; the values themselves are never written into the SQL text, the
server binds them (PostgreSQL's extended protocol, Trino's prepared statements). Placeholders
are only recognised in SQL code: never inside string literals, quoted identifiers, comments,
PostgreSQL dollar-quoted bodies, or a ``::type`` cast. See docs/sql-parameters.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Dialect = Literal["postgres", "trino"]
Params = Sequence[Any] | Mapping[str, Any] | None

_SKIP = r"""
    --[^\n]*                                   # line comment
  | /\*.*?(?:\*/|\Z)                           # block comment
  | (?<![\w$])[Ee]'(?:[^'\\]|\\.|'')*(?:'|\Z)  # E'...' string with backslash escapes
  | '(?:[^']|'')*(?:'|\Z)                      # string literal
  | "(?:[^"]|"")*(?:"|\Z)                      # quoted identifier
  | ::                                         # a cast (x::int), not a placeholder
"""
_DOLLAR_QUOTE = r"| (?<![\w$])\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z)"
_PLACEHOLDERS = r"""
  | (?P<colon>(?<!:):[A-Za-z_]\w*)             # :name
  | (?P<pyformat>%\([^)]*\)s)                  # %(name)s
  | (?P<percent>%[s%]?)                        # %s, %%, or a lone %
  | (?P<qmark>\?)
  | (?P<dollar>(?<![\w$])\$\d+)                # $1
"""
_SCANNERS = {
    "postgres": re.compile(f"(?P<skip>{_SKIP}{_DOLLAR_QUOTE}){_PLACEHOLDERS}", re.X | re.S),
    "trino": re.compile(f"(?P<skip>{_SKIP}){_PLACEHOLDERS}", re.X | re.S),
}
_NAMED = {"postgres": ("colon", "pyformat"), "trino": ("colon",)}
_POSITIONAL = {"postgres": ("dollar", "percent_s"), "trino": ("qmark",)}
STORY = (
    "pass a sequence for positional placeholders ($1 or %s in postgres, ? in trino) or a "
    "mapping for named ones (:name, or %(name)s in postgres); see docs/sql-parameters.md"
)


@dataclass(frozen=True)
class Placeholder:
    """One placeholder found in SQL code: where it is, its kind and (named ones) its name."""

    start: int
    end: int
    kind: str  # colon, pyformat, percent_s, percent_escape, percent_lone, qmark, dollar
    name: str | None = None


def scan(sql: str, dialect: Dialect) -> list[Placeholder]:
    """Every placeholder in the code of ``sql`` (literals, identifiers, comments skipped)."""
    found = []
    for match in _SCANNERS[dialect].finditer(sql):
        kind = match.lastgroup
        text = match.group()
        if kind in (None, "skip", "tag"):
            continue
        name = None
        if kind == "colon":
            name = text[1:]
        elif kind == "pyformat":
            name = text[2:-2]
        elif kind == "percent":
            kind = {"%s": "percent_s", "%%": "percent_escape"}.get(text, "percent_lone")
        found.append(Placeholder(match.start(), match.end(), kind, name))
    return [p for p in found if _meaningful(p, dialect)]


def _meaningful(placeholder: Placeholder, dialect: Dialect) -> bool:
    """Trino has no psycopg placeholders and no ``$1``; PostgreSQL's ``?`` is a JSON operator."""
    if dialect == "trino":
        return placeholder.kind in ("colon", "qmark")
    return placeholder.kind != "qmark"


def names(sql: str, dialect: Dialect) -> list[str]:
    """The distinct names of the named placeholders of ``sql``, in order of appearance."""
    kinds = _NAMED[dialect]
    return list(dict.fromkeys(str(p.name) for p in scan(sql, dialect) if p.kind in kinds))


def bind(sql: str, params: Params, dialect: Dialect) -> tuple[str, list[Any] | None]:
    """``sql`` with the server's positional placeholders and the values in their order.

    ``params``: None (the SQL is sent as it is), a sequence (positional placeholders) or a
    mapping (named placeholders; keys not used are ignored). Raises TypeError for params of
    another type or a mix of styles, ValueError for a missing name or a count mismatch.
    """
    if params is None:
        return sql, None
    if isinstance(params, Mapping):
        return _bind_named(sql, params, dialect)
    if isinstance(params, str | bytes) or not isinstance(params, Sequence):
        raise TypeError(
            f"params must be a sequence or a mapping, not {type(params).__name__}: " + STORY
        )
    values = list(params)
    if dialect == "trino":
        return sql, values
    found = scan(sql, dialect)
    if any(p.kind == "pyformat" for p in found):
        raise TypeError("%(name)s placeholders take a mapping of values, not a sequence: " + STORY)
    if not any(p.kind == "percent_s" for p in found):
        return sql, values  # PostgreSQL's own $1, $2 ...
    if any(p.kind == "dollar" for p in found):
        raise TypeError("the SQL mixes %s and $n placeholders: use one style")
    count = sum(p.kind == "percent_s" for p in found)
    if count != len(values):
        raise ValueError(f"the SQL has {count} %s placeholders but {len(values)} values were given")
    numbers = iter(range(1, count + 1))
    sql = _rewrite(sql, found, {"percent_s"}, lambda p: f"${next(numbers)}", percent=True)
    return sql, values


def _bind_named(
    sql: str, params: Mapping[str, Any], dialect: Dialect
) -> tuple[str, list[Any] | None]:
    found = scan(sql, dialect)
    positional = [p for p in found if p.kind in _POSITIONAL[dialect]]
    if positional:
        shown = sql[positional[0].start : positional[0].end]
        raise TypeError(f"a mapping binds named placeholders, but the SQL has {shown}: " + STORY)
    named = [p for p in found if p.kind in _NAMED[dialect]]
    missing = [n for n in dict.fromkeys(str(p.name) for p in named) if n not in params]
    if missing:
        given = ", ".join(sorted(map(str, params))) or "none"
        hint = (
            "; an array slice a[lo:hi] needs a space: a[lo : hi]" if dialect == "postgres" else ""
        )
        shown = ", ".join(":" + n for n in missing)
        raise ValueError(f"no value for {shown} (given: {given}){hint}")
    if not named:
        return sql, None
    values: list[Any] = []
    percent = any(p.kind == "pyformat" for p in named)
    if dialect == "trino":

        def replace(p: Placeholder) -> str:
            values.append(params[str(p.name)])
            return "?"

        return _rewrite(sql, found, {"colon"}, replace, percent=False), values
    numbers: dict[str, int] = {}

    def number(p: Placeholder) -> str:
        name = str(p.name)
        if name not in numbers:
            numbers[name] = len(numbers) + 1
            values.append(params[name])
        return f"${numbers[name]}"

    return _rewrite(sql, found, set(_NAMED[dialect]), number, percent=percent), values


def _rewrite(
    sql: str,
    found: list[Placeholder],
    kinds: set[str],
    replace: Callable[[Placeholder], str],
    *,
    percent: bool,
) -> str:
    """``sql`` with each placeholder of ``kinds`` replaced; with ``percent`` (psycopg style)
    ``%%`` becomes ``%`` and a lone ``%`` is an error, as in psycopg."""
    parts, at = [], 0
    for p in found:
        if p.kind in ("percent_escape", "percent_lone"):
            if not percent:
                continue
            if p.kind == "percent_lone":
                raise ValueError(
                    f"a lone % at position {p.start + 1}: with psycopg placeholders "
                    "(%s, %(name)s) write a literal % as %%"
                )
            parts.append(sql[at : p.start] + "%")
        elif p.kind in kinds:
            parts.append(sql[at : p.start] + replace(p))
        else:
            continue
        at = p.end
    parts.append(sql[at:])
    return "".join(parts)
