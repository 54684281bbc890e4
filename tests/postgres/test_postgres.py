"""The postgres connector against the stack's real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import psutil
import pyarrow as pa
import pytest
from reliability.report import FaultLog

from carbon_sdk import AuthFailed, NotFound, QueryError, Unreachable, postgres
from carbon_sdk.dev.pytest_plugin import StackEnv
from carbon_sdk.dev.supervisor import Stack
from carbon_sdk.health import Status, run
from carbon_sdk.settings.carbon import configure

pytestmark = pytest.mark.stack

TYPES_SQL = """
select 12.34::numeric(10, 2)                                   as amount,
       '2026-01-02 03:04:05+02'::timestamptz                   as at,
       '{"k": [1, 2]}'::jsonb                                  as doc,
       '00000000-0000-0000-0000-00000000002a'::uuid            as id,
       array[1, null, 3]                                       as ints,
       null::bigint                                            as nothing,
       42::bigint                                              as answer,
       'text'::text                                            as label,
       '2026-11-26'::date                                      as day,
       '\\x00ff'::bytea                                        as raw
"""


@pytest.fixture
def postgres_env(stack_env: StackEnv) -> dict[str, str]:
    """The SDK pointed at the stack's PostgreSQL (``CARBON_POSTGRES__*``)."""
    return stack_env("postgres")


def test_connect_is_configured_from_settings(postgres_env: dict[str, str]) -> None:
    with postgres.connect() as conn:
        assert conn.autocommit is False
        name, db = conn.execute(
            "select current_setting('application_name'), current_database()"
        ).fetchone()  # type: ignore[misc]
    assert name == "carbon-sdk"
    assert db == postgres_env["CARBON_POSTGRES__DATABASE"]


def test_connect_override_picks_another_database(postgres_env: object, fresh_database: str) -> None:
    with postgres.connect(database=fresh_database) as conn:
        assert conn.execute("select current_database()").fetchone() == (fresh_database,)


def test_type_matrix_arrow(postgres_env: object) -> None:
    table = postgres.query(TYPES_SQL, as_="arrow")
    schema = {f.name: f.type for f in table.schema}
    assert schema["amount"] == pa.decimal128(10, 2)
    assert schema["at"] == pa.timestamp("us", tz="UTC")
    assert schema["ints"] == pa.list_(pa.int32())
    assert schema["answer"] == pa.int64()
    assert schema["day"] == pa.date32()
    assert schema["raw"] == pa.binary()
    row = table.to_pylist()[0]
    assert row["amount"] == decimal.Decimal("12.34")
    assert row["at"] == dt.datetime(2026, 1, 2, 1, 4, 5, tzinfo=dt.UTC)
    assert row["ints"] == [1, None, 3]
    assert row["nothing"] is None
    assert row["raw"] == b"\x00\xff"


def test_type_matrix_pandas_and_polars(postgres_env: object) -> None:
    df = postgres.query(TYPES_SQL)
    assert isinstance(df, pd.DataFrame)
    assert str(df["answer"].dtype) == "Int64"
    assert df["nothing"].isna().all()
    assert df.loc[0, "amount"] == decimal.Decimal("12.34")
    assert df.loc[0, "id"] == str(uuid.UUID(int=42))
    assert str(df["at"].dtype) == "datetime64[us, UTC]"
    frame = postgres.query("select 1::int as a, null::text as b", as_="polars")
    assert isinstance(frame, pl.DataFrame)
    assert frame.to_dicts() == [{"a": 1, "b": None}]


def test_parameters_are_bound_by_the_server(postgres_env: object) -> None:
    hostile = "'; drop table if exists victims; --"
    df = postgres.query("select $1::text as s, $2::int + 1 as n", (hostile, 41))
    assert df.loc[0, "s"] == hostile
    assert df.loc[0, "n"] == 42
    with pytest.raises(TypeError, match="a sequence or a mapping, not str"):
        postgres.query("select $1", "not-a-tuple")  # type: ignore[arg-type]


def test_unknown_format_is_rejected(postgres_env: object) -> None:
    with pytest.raises(ValueError, match="pandas, arrow, polars"):
        postgres.query("select 1", as_="csv")  # type: ignore[arg-type]


def test_iter_batches_streams_with_bounded_memory(postgres_env: object) -> None:
    rows, batch_rows = 3_000_000, 100_000
    sql = f"select g as id, repeat('x', 100) as payload from generate_series(1, {rows}) g"
    list(postgres.iter_batches("select 1"))  # load the driver before measuring
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak, total, sizes = baseline, 0, set()
    for batch in postgres.iter_batches(sql, batch_rows=batch_rows):
        sizes.add(batch.num_rows)
        total += batch.num_rows
        peak = max(peak, process.memory_info().rss)
    assert total == rows
    assert sizes == {batch_rows}
    whole_result = rows * 110  # ~330 MB if materialised at once
    assert peak - baseline < whole_result / 2, f"grew {(peak - baseline) / 1e6:.0f} MB"


def test_write_modes_and_round_trip(postgres_env: object, fresh_database: str) -> None:
    df = pd.DataFrame(
        {
            "id": pd.array([1, 2, None], dtype="Int64"),
            "name": ["a", "b", None],
            "at": pd.to_datetime(["2026-01-01T00:00:00Z"] * 3),
        }
    )
    assert postgres.write(df, "people", database=fresh_database) == 3
    with pytest.raises(QueryError, match="already exists"):
        postgres.write(df, "people", database=fresh_database)
    postgres.write(
        pl.DataFrame({"id": [4], "name": ["d"]}),
        "people",
        if_exists="append",
        database=fresh_database,
    )
    back = postgres.query(
        "select id, name from people order by id nulls last", database=fresh_database
    )
    assert back["id"].tolist()[:3] == [1, 2, 4]
    assert back["name"].tolist()[:3] == ["a", "b", "d"]
    assert back["name"].isna().tolist() == [False, False, False, True]
    postgres.write(pa.table({"x": [1.5]}), "people", if_exists="replace", database=fresh_database)
    assert postgres.query("select * from people", database=fresh_database).columns.tolist() == ["x"]


def test_write_in_a_schema(postgres_env: object, fresh_database: str) -> None:
    with postgres.connect(database=fresh_database, autocommit=True) as conn:
        conn.execute("create schema staging")
    postgres.write(pa.table({"v": [1, 2]}), "t", schema="staging", database=fresh_database)
    assert (
        postgres.query("select sum(v) as s from staging.t", database=fresh_database).loc[0, "s"]
        == 3
    )


def test_unsupported_dtype_writes_nothing(postgres_env: object, fresh_database: str) -> None:
    postgres.write(pd.DataFrame({"v": [1]}), "keep", database=fresh_database)
    bad = pd.DataFrame({"v": [1, "two", object()]})
    with pytest.raises(TypeError, match="column v"):
        postgres.write(bad, "keep", if_exists="replace", database=fresh_database)
    with pytest.raises(TypeError, match="pandas/polars DataFrame or a pyarrow Table"):
        postgres.write([{"v": 1}], "keep", if_exists="replace", database=fresh_database)
    assert postgres.query("select v from keep", database=fresh_database)["v"].tolist() == [1]


def test_failed_ingest_rolls_back(postgres_env: object, fresh_database: str) -> None:
    """A type mismatch found by the server mid-transaction leaves the table as it was."""
    postgres.write(pa.table({"v": pa.array([1], pa.int32())}), "typed", database=fresh_database)
    with pytest.raises(QueryError):
        postgres.write(
            pa.table({"v": ["not an int"]}), "typed", if_exists="append", database=fresh_database
        )
    assert (
        postgres.query("select count(*) as n from typed", database=fresh_database).loc[0, "n"] == 1
    )


def test_write_killed_mid_copy_rolls_back(
    postgres_env: object, fresh_database: str, fault_log: FaultLog
) -> None:
    """The writing connection killed mid-COPY (its backend terminated, as a server crash or
    a failover does): an error within the configured deadline, the table as it was, and the
    next write works."""
    bounds = {"connect_timeout": 2.0, "request_timeout": 10.0}
    configure(postgres=bounds)
    one = pa.table({"v": pa.array([1], pa.int64()), "w": pa.array([1], pa.int64())})
    postgres.write(one, "kept", database=fresh_database)
    rows = 5_000_000
    big = pa.table({"v": np.arange(rows), "w": np.arange(rows)})
    killed: list[float] = []

    def kill_the_copy() -> None:
        deadline = time.monotonic() + 60
        with postgres.connect(autocommit=True) as admin:
            while time.monotonic() < deadline:
                found = admin.execute(
                    "select pid from pg_stat_activity where datname = %s and query ilike 'copy%%'"
                    " and state = 'active'",
                    (fresh_database,),
                ).fetchall()
                if found:
                    admin.execute("select pg_terminate_backend(%s)", (found[0][0],))
                    killed.append(time.monotonic())
                    return
                time.sleep(0.01)

    killer = threading.Thread(target=kill_the_copy)
    killer.start()
    # a lost connection, not a TLS setting: over TLS libpq says "SSL connection has been
    # closed unexpectedly", which had been classified as TLSError ("check postgres.ca_bundle")
    with pytest.raises(Unreachable) as info:
        postgres.write(big, "kept", if_exists="append", database=fresh_database)
    killer.join()
    assert killed, "the COPY was never seen running"
    elapsed = time.monotonic() - killed[0]
    bound = bounds["connect_timeout"] + bounds["request_timeout"]
    fault_log("postgres", "killed mid-operation", info.value, elapsed, bound)
    assert elapsed < bound, f"{elapsed:.1f} s: {info.value}"
    assert "postgres" in str(info.value)
    count = "select count(*) as n from kept"
    assert postgres.query(count, database=fresh_database).loc[0, "n"] == 1  # rolled back
    postgres.write(one, "kept", if_exists="append", database=fresh_database)
    assert postgres.query(count, database=fresh_database).loc[0, "n"] == 2  # usable again


def test_syntax_error_has_message_and_position(postgres_env: object) -> None:
    with pytest.raises(QueryError) as info:
        postgres.query("select 1 frm nowhere")
    message = str(info.value)
    assert 'syntax error at or near "nowhere"' in message
    assert "SQLSTATE 42601, position 14" in message


def test_missing_table_is_a_query_error(postgres_env: object) -> None:
    with pytest.raises(QueryError, match='relation "no_such_table" does not exist'):
        postgres.query("select * from no_such_table")


def test_wrong_password_is_auth_failed_without_the_password(postgres_env: object) -> None:
    configure(postgres={"password": "canary-wrong-pw"})
    with pytest.raises(AuthFailed) as info:
        postgres.query("select 1")
    assert "postgres.password" in str(info.value)
    assert "canary-wrong-pw" not in str(info.value)
    (result,) = run(["postgres"]).results
    assert result.status is Status.AUTH_FAILED
    assert "canary-wrong-pw" not in result.detail + (result.hint or "")


def test_wrong_port_is_unreachable(postgres_env: object, fault_log: FaultLog) -> None:
    configure(postgres={"port": 1})
    started = time.monotonic()
    with pytest.raises(Unreachable, match="refused"):
        postgres.connect()
    fault_log("postgres", "stopped", Unreachable, time.monotonic() - started, 5)
    assert time.monotonic() - started < 5


def test_missing_database_is_not_found(postgres_env: object) -> None:
    with pytest.raises(NotFound, match='database "nope_db" does not exist'):
        postgres.query("select 1", database="nope_db")


def test_doctor_reports_version_and_user(postgres_env: dict[str, str]) -> None:
    (result,) = run(["postgres"]).results
    assert result.status is Status.OK, result
    assert result.detail.startswith("PostgreSQL ")
    assert f"as {postgres_env['CARBON_POSTGRES__USER']}" in result.detail


def test_engine_hides_password_and_works_with_pandas(postgres_env: dict[str, str]) -> None:
    engine = postgres.engine()
    assert postgres_env["CARBON_POSTGRES__PASSWORD"] not in repr(engine.url)
    assert pd.read_sql("select 7 as x", engine).loc[0, "x"] == 7
    engine.dispose()


def test_pool_replaces_a_connection_killed_mid_query(postgres_env: object) -> None:
    """A backend terminated mid-query (as a server shutdown does) gives a clear error, and the
    pool hands out a working connection afterwards, not the broken one."""
    with postgres.pool(min_size=1, max_size=1) as pool:
        with pool.connection() as conn:
            pid = conn.info.backend_pid
        killer = threading.Timer(0.5, lambda: _terminate(pid))
        killer.start()
        with pytest.raises(Exception) as info, pool.connection() as conn:
            conn.execute("select pg_sleep(30)")
        killer.join()
        assert "terminat" in str(info.value)
        with pool.connection() as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            assert conn.info.backend_pid != pid


def _terminate(pid: int) -> None:
    with postgres.connect(autocommit=True) as admin:
        admin.execute("select pg_terminate_backend($1)".replace("$1", "%s"), (pid,))


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A PostgreSQL server of its own, so stopping it does not disturb the other tests."""
    stack = Stack(Path(tmp_path_factory.mktemp("own-pg")), profile=None)
    stack.up(["postgres"])
    yield stack
    stack.down(purge=True)


def test_server_stopped_mid_query(own_postgres: Stack) -> None:
    pg = own_postgres.settings()["postgres"]
    configure(postgres={k: v for k, v in pg.items()})
    stopper = threading.Timer(1.0, own_postgres.down)
    stopper.start()
    started = time.monotonic()
    with pytest.raises((Unreachable, QueryError)) as info:
        postgres.query("select pg_sleep(30)")
    stopper.join()
    assert time.monotonic() - started < 15
    assert "terminat" in str(info.value).lower() or "shut" in str(info.value).lower()
    with pytest.raises(Unreachable):
        postgres.query("select 1")


# -- hardening: errors that name the cause, IPv6, dotted names ----------------------------------


def test_pool_with_a_wrong_password_says_so(postgres_env: object) -> None:
    started = time.monotonic()
    with pytest.raises(AuthFailed, match=r"postgres\.password"):
        postgres.pool(password="wrong", connect_timeout=3)
    assert time.monotonic() - started < 3  # not a PoolTimeout after the pool's wait


def test_engine_errors_are_carbon_errors(postgres_env: object) -> None:
    import sqlalchemy

    with pytest.raises(AuthFailed) as auth:
        postgres.engine(password="wrong").connect()
    import psycopg

    assert isinstance(auth.value.__cause__, sqlalchemy.exc.DBAPIError | psycopg.Error)
    with postgres.engine().connect() as conn, pytest.raises(QueryError, match="42P01"):
        conn.execute(sqlalchemy.text("select * from no_such_table"))


def test_ipv6_loopback_host_works_everywhere(postgres_env: dict[str, str]) -> None:
    import socket

    probe = socket.socket(socket.AF_INET6)
    try:
        probe.connect(("::1", int(postgres_env["CARBON_POSTGRES__PORT"])))
    except OSError:
        # the stack's server listens on 127.0.0.1 only: the address must reach libpq intact
        with pytest.raises(Unreachable, match=r"::1"):
            postgres.query("select 1", host="::1")
        return
    finally:
        probe.close()
    assert postgres.query("select 1 as x", host="::1")["x"].tolist() == [1]


def test_write_accepts_schema_dot_table(postgres_env: object, fresh_database: str) -> None:
    with postgres.connect(database=fresh_database, autocommit=True) as conn:
        conn.execute("create schema staging")
    written = postgres.write(pd.DataFrame({"c": ["a"]}), "staging.cities", database=fresh_database)
    assert written == 1
    got = postgres.query("select c from staging.cities", database=fresh_database)
    assert got["c"].tolist() == ["a"]
