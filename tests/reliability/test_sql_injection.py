"""Identifier and value injection through every helper that builds SQL, against the real
servers of the stack: ``postgres.write`` (table and schema names), ``postgres.query`` and
``trino.query`` parameters, ``trino.tables`` (catalog and schema) and ``trino.describe``.

Properties: a name reaches the server as exactly that identifier (quoted: case, quotes,
spaces, semicolons and Unicode kept), a value as exactly that value (bound), a sentinel table
survives every example, and what fails is a ValueError before anything is sent or a
carbon-sdk error, never a raw driver exception."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from carbon_sdk import postgres, trino
from carbon_sdk.dev.pytest_plugin import StackEnv
from carbon_sdk.errors import CarbonError

from .report import Results, Tally

pytestmark = [pytest.mark.stack, pytest.mark.slow]

HOSTILE = [
    'x"; drop table sentinel; --',
    "Robert'); DROP TABLE sentinel;--",
    "MixedCase",
    "with space",
    "semi;colon",
    "dollar$1",
    "back\\slash",
    "ünïcödé",
    "表",
    "select",
    '"',
    "'",
    "--",
    "/*",
]
# PostgreSQL identifiers: no NUL, at most 63 bytes (15 characters of up to 4 bytes); no dots
# (write() reads "a.b" as schema.table)
NAMES = st.sampled_from(HOSTILE) | st.text(
    st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="."),
    min_size=1,
    max_size=15,
)
VALUES = st.sampled_from(HOSTILE) | st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40
)
PG = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TRINO = settings(PG, max_examples=20)  # each example is a few queries of ~0.1-1 s


@pytest.fixture
def tally(report: dict[str, str], pytestconfig: pytest.Config) -> Iterator[Tally]:
    counts = Results.of(pytestconfig).tally
    yield counts
    report["hypothesis"] = counts.summary()


@pytest.fixture
def pg(stack_env: StackEnv, fresh_database: str) -> Iterator[psycopg.Connection[tuple[object]]]:
    """The test's database, a sentinel table in it, and a plain connection to look around."""
    stack_env("postgres")
    with psycopg.connect(
        **postgres.PostgresSettings.load(database=fresh_database).libpq_params(), autocommit=True
    ) as conn:
        conn.execute("create table sentinel as select 1 as x")
        yield conn
        assert conn.execute("select x from sentinel").fetchall() == [(1,)]


def pg_tables(conn: psycopg.Connection[tuple[object]], schema: str) -> list[str]:
    rows = conn.execute("select tablename from pg_tables where schemaname = %s", (schema,))
    return sorted(str(name) for (name,) in rows.fetchall())


@PG
@given(name=NAMES)
def test_postgres_write_quotes_table_names(
    name: str, pg: psycopg.Connection[tuple[object]], tally: Tally
) -> None:
    database = str(pg.info.dbname)
    frame = pd.DataFrame({"v": [name]})
    try:
        written = postgres.write(frame, name, if_exists="replace", database=database)
    except ValueError:
        tally.add("SQL identifiers", "error")
        return
    try:
        assert written == 1
        assert name in pg_tables(pg, "public")
        assert pg_tables(pg, "public") == sorted({"sentinel", name})
        rows = pg.execute(sql.SQL("select v from {}").format(sql.Identifier(name))).fetchall()
        assert rows == [(name,)]
    finally:
        pg.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(name)))
    tally.add("SQL identifiers", "ok")


@PG
@given(schema=NAMES)
def test_postgres_write_quotes_schema_names(
    schema: str, pg: psycopg.Connection[tuple[object]], tally: Tally
) -> None:
    pg.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    try:
        postgres.write(pd.DataFrame({"v": [1]}), "t", schema=schema, database=str(pg.info.dbname))
        assert pg_tables(pg, schema) == ["t"]
        assert pg_tables(pg, "public") == ["sentinel"]
    finally:
        pg.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))
    tally.add("SQL identifiers", "ok")


@PG
@given(value=VALUES)
def test_postgres_query_binds_values(
    value: str, pg: psycopg.Connection[tuple[object]], tally: Tally
) -> None:
    frame = postgres.query("select $1::text as v", (value,), database=str(pg.info.dbname))
    assert frame["v"].tolist() == [value]
    tally.add("SQL values", "ok")


@pytest.fixture
def trino_env(stack_env: StackEnv) -> Iterator[None]:
    stack_env("trino")
    trino.query("create schema if not exists memory.guard", progress=False)
    trino.query("create table if not exists memory.guard.sentinel as select 1 as x", progress=False)
    yield
    assert trino.query("select x from memory.guard.sentinel", progress=False)["x"].tolist() == [1]


@TRINO
@given(value=VALUES)
def test_trino_query_binds_values(value: str, trino_env: None, tally: Tally) -> None:
    frame = trino.query("select ? as v", (value,), progress=False)
    assert frame["v"].tolist() == [value]
    tally.add("SQL values", "ok")


@TRINO
@given(catalog=st.sampled_from(["memory", "tpch"]) | NAMES, schema=st.none() | NAMES)
def test_trino_tables_quotes_catalog_and_binds_schema(
    catalog: str, schema: str | None, trino_env: None, tally: Tally
) -> None:
    try:
        frame = trino.tables(catalog, schema)
    except CarbonError:  # e.g. the catalog does not exist: the server said so
        tally.add("SQL identifiers", "error")
        return
    assert set(frame["table_catalog"]) <= {catalog}
    if schema:
        assert set(frame["table_schema"]) <= {schema}
    tally.add("SQL identifiers", "ok")


@TRINO
@given(table=NAMES.map(lambda n: f"memory.guard.{n}") | NAMES | st.sampled_from(HOSTILE))
def test_trino_describe_takes_only_table_names(table: str, trino_env: None, tally: Tally) -> None:
    try:
        frame = trino.describe(table)
    except (ValueError, CarbonError):  # refused before sending, or the server's "not found"
        tally.add("SQL identifiers", "error")
        return
    assert list(frame.columns)[:2] == ["Column", "Type"]
    tally.add("SQL identifiers", "ok")
