"""The one placeholder story (carbon_sdk._params): what is a placeholder, what it becomes."""

from __future__ import annotations

from typing import Any

import pytest

from carbon_sdk._params import bind, names


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        # PostgreSQL's own $n: unchanged
        ("select $1, $2", (1, 2), ("select $1, $2", [1, 2])),
        # psycopg's %s with a sequence; %% is a literal %
        (
            "select %s where x %% 2 = 0 and y like 'a%'",
            [7],
            ("select $1 where x % 2 = 0 and y like 'a%'", [7]),
        ),
        # psycopg's %(name)s with a mapping: one $n per distinct name
        (
            "select %(a)s, %(b)s, %(a)s",
            {"a": 1, "b": 2, "unused": 3},
            ("select $1, $2, $1", [1, 2]),
        ),
        # :name with a mapping; casts, literals, identifiers, comments and dollar quotes kept
        (
            "select :a::int, ':b', \"c:d\", E'it\\'s :e' -- :f\n/* :g */ $$ :h $$ $t$ :i $t$, :a",
            {"a": 1},
            (
                "select $1::int, ':b', \"c:d\", E'it\\'s :e' -- :f\n"
                "/* :g */ $$ :h $$ $t$ :i $t$, $1",
                [1],
            ),
        ),
        # ? is a jsonb operator in PostgreSQL, not a placeholder
        ("select '{}'::jsonb ? :k", {"k": "x"}, ("select '{}'::jsonb ? $1", ["x"])),
        # a sequence leaves :name alone (e.g. an array slice a[1:n])
        ("select a[1:n] from t where id = $1", (5,), ("select a[1:n] from t where id = $1", [5])),
        # no params: the SQL as it is
        ("select :a, %s", None, ("select :a, %s", None)),
    ],
)
def test_postgres(sql: str, params: Any, expected: tuple[str, list[Any] | None]) -> None:
    assert bind(sql, params, "postgres") == expected


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        ("select ?, ?", (1, 2), ("select ?, ?", [1, 2])),
        ("select :a, :b, :a, ':c'", {"a": 1, "b": 2}, ("select ?, ?, ?, ':c'", [1, 2, 1])),
        # trino has no psycopg placeholders: % is the modulo operator
        ("select x % 2, :a", {"a": 1}, ("select x % 2, ?", [1])),
        ("select 1", {}, ("select 1", None)),
    ],
)
def test_trino(sql: str, params: Any, expected: tuple[str, list[Any] | None]) -> None:
    assert bind(sql, params, "trino") == expected


def test_names_in_order_without_casts_or_literals() -> None:
    sql = "select :a, ':b', :c, :a, x::int, %(d)s -- :e"
    assert names(sql, "postgres") == ["a", "c", "d"]
    assert names(sql, "trino") == ["a", "c"]


@pytest.mark.parametrize(
    ("sql", "params", "dialect", "error", "match"),
    [
        ("select :a", {"b": 1}, "trino", ValueError, r"no value for :a \(given: b\)"),
        ("select a[lo:hi]", {}, "postgres", ValueError, r"a\[lo : hi\]"),
        ("select ?", {"a": 1}, "trino", TypeError, "mapping binds named placeholders"),
        ("select $1", {"a": 1}, "postgres", TypeError, "mapping binds named placeholders"),
        ("select %s, $1", (1,), "postgres", TypeError, "mixes %s and \\$n"),
        ("select %s", (1, 2), "postgres", ValueError, "1 %s placeholders but 2 values"),
        ("select %(a)s", (1,), "postgres", TypeError, "take a mapping"),
        ("select %s, 5 % 2", (1,), "postgres", ValueError, "write a literal % as %%"),
        ("select 1", "x", "postgres", TypeError, "sequence or a mapping, not str"),
        ("select 1", 42, "trino", TypeError, "sequence or a mapping, not int"),
    ],
)
def test_misuse_says_what_to_do(
    sql: str, params: Any, dialect: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        bind(sql, params, dialect)
