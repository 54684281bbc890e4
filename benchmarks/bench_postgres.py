"""PostgreSQL reads and writes against the local stack: the SDK vs the tools a user would call.

Read: 1,000,000 rows x 10 mixed columns (int, bigint, float8, numeric(12,2), text, timestamptz,
date, bool, uuid, jsonb; some NULLs) made with ``generate_series``, read whole by

- ``postgres.query(sql, as_="arrow")`` and ``as_="pandas"`` (the subjects),
- ``pandas.read_sql`` over a plain SQLAlchemy ``postgresql+psycopg`` engine (the baseline),
- ADBC direct: ``adbc_driver_postgresql.dbapi`` ``fetch_arrow_table()`` / ``fetch_df()``,
- connectorx: ``connectorx.read_sql(..., return_type="arrow")`` / ``"pandas"``.

Write: a 100,000-row slice of the same table (as the pandas DataFrame ``postgres.query`` returns)
by ``postgres.write(df, ..., if_exists="replace")`` vs ``DataFrame.to_sql(method="multi")``.

Every approach runs in a fresh subprocess, so imports and peak RSS belong to that approach alone
(peak RSS during the call: ``harness.child_main``; results recorded before 2026-11-27 used the
process's ``ru_maxrss`` instead); the clock covers connect + read (+ conversion), not imports.
Rounds are interleaved (drift hits every approach alike) and medians recorded. Targets (issue 4):
the SDK >= 3x faster than ``pandas.read_sql`` and within 1.2x of the fastest direct tool. The
stack is started by the same supervisor as ``carbon-sdk dev up`` in a temporary
``CARBON_DEV_HOME`` and purged at the end.

    python benchmarks/bench_postgres.py                 # 1,000,000 rows, 3 rounds
    BENCH_PG_ROWS=200000 BENCH_PG_ROUNDS=1 python benchmarks/bench_postgres.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness import child_main, median_of, record, round_robin

ROWS = int(os.environ.get("BENCH_PG_ROWS", "1000000"))
WRITE_ROWS = int(os.environ.get("BENCH_PG_WRITE_ROWS", "100000"))
ROUNDS = int(os.environ.get("BENCH_PG_ROUNDS", "3"))
TABLE = "bench_read"
READ_SQL = f"select * from {TABLE}"
WRITE_SQL = f"select * from {TABLE} order by id limit {WRITE_ROWS}"
# PostgreSQL binds at most 65,535 parameters per statement: 10 columns x 6,000 rows stays below.
TO_SQL_CHUNK = 6000

DDL = [
    f"drop table if exists {TABLE}",
    f"""create table {TABLE} (
        id int, big bigint, f8 float8, amount numeric(12, 2), label text,
        ts timestamptz, day date, flag bool, uid uuid, doc jsonb)""",
    f"""insert into {TABLE}
        select g, g::bigint * 7919, g * 0.001,
               case when g % 97 = 0 then null else (g % 100000) * 1.37 end,
               case when g % 101 = 0 then null else 'name-' || g end,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
               date '2020-01-01' + g % 3650,
               case when g % 89 = 0 then null else g % 2 = 0 end,
               md5(g::text)::uuid,
               jsonb_build_object('k', g % 10, 'v', 'x' || g % 1000)
        from generate_series(1, %(rows)s) as g""",
    f"vacuum analyze {TABLE}",
]

READERS = {
    # name: (format, kind)
    "sdk_arrow": ("arrow", "sdk"),
    "adbc_arrow": ("arrow", "direct"),
    "connectorx_arrow": ("arrow", "direct"),
    "sdk_pandas": ("pandas", "sdk"),
    "adbc_pandas": ("pandas", "direct"),
    "connectorx_pandas": ("pandas", "direct"),
    "pandas_read_sql": ("pandas", "baseline"),
}
WRITERS = ("sdk_write", "to_sql_multi")
# Per-approach fields beyond harness.round_robin's own: the median import time.
KEEP = {"import_seconds": median_of(3)}


# ---- one approach, in its own process ----------------------------------------------------------


def child(approach: str) -> None:
    """Import what ``approach`` needs (timed as ``import_seconds``), time it once, print JSON."""
    uri = os.environ["BENCH_PG_URI"]
    started = time.perf_counter()
    run = _reader(approach, uri) if approach in READERS else _writer(approach, uri)
    imported = time.perf_counter() - started
    child_main(run, {"import_seconds": imported})


def _reader(approach: str, uri: str) -> Any:
    if approach.startswith("sdk_"):
        from carbon_sdk import postgres

        fmt = READERS[approach][0]
        # The SDK imports its clients on first use; import them here, outside the clock, as
        # every other approach does.
        import adbc_driver_postgresql.dbapi  # noqa: F401
        import pandas

        return lambda: len(postgres.query(READ_SQL, as_=fmt))
    if approach.startswith("adbc_"):
        import adbc_driver_postgresql.dbapi as dbapi
        import pandas

        def adbc() -> int:
            with dbapi.connect(uri) as conn, conn.cursor() as cursor:
                cursor.execute(READ_SQL)
                result = (
                    cursor.fetch_arrow_table() if approach == "adbc_arrow" else cursor.fetch_df()
                )
            return len(result)

        return adbc
    if approach.startswith("connectorx_"):
        import connectorx
        import pandas

        fmt = "arrow" if approach == "connectorx_arrow" else "pandas"
        return lambda: len(connectorx.read_sql(uri, READ_SQL, return_type=fmt))
    if approach == "pandas_read_sql":
        import pandas
        import sqlalchemy

        engine = sqlalchemy.create_engine(uri.replace("postgresql://", "postgresql+psycopg://", 1))
        return lambda: len(pandas.read_sql(READ_SQL, engine))
    raise SystemExit(f"unknown approach {approach}")


def _writer(approach: str, uri: str) -> Any:
    import sqlalchemy

    from carbon_sdk import postgres

    df = postgres.query(WRITE_SQL, as_="pandas")  # the input, not timed
    table = f"bench_write_{approach}"
    if approach == "sdk_write":
        return lambda: postgres.write(df, table, if_exists="replace")
    if approach == "to_sql_multi":
        engine = sqlalchemy.create_engine(uri.replace("postgresql://", "postgresql+psycopg://", 1))

        def to_sql() -> int:
            df.to_sql(
                table,
                engine,
                if_exists="replace",
                index=False,
                method="multi",
                chunksize=TO_SQL_CHUNK,
            )
            return len(df)

        return to_sql
    raise SystemExit(f"unknown approach {approach}")


# ---- the driver -----------------------------------------------------------------------------


def _extra(results: dict[str, dict], fmt: str) -> dict[str, Any]:
    direct = {a: results[a]["seconds"] for a, (f, kind) in READERS.items() if kind == "direct"}
    fastest = min((a for a in direct if READERS[a][0] == fmt), key=lambda a: direct[a])
    subject = results[f"sdk_{fmt}"]["seconds"]
    return {
        "rows": ROWS,
        "fastest_direct": fastest,
        "fastest_direct_seconds": direct[fastest],
        "ratio_to_fastest_direct": round(subject / direct[fastest], 3),
        "seconds": {a: r["seconds"] for a, r in results.items()},
        "peak_rss_mib": {a: r["peak_rss_mib"] for a, r in results.items()},
        "rss_growth_mib": {a: r["rss_growth_mib"] for a, r in results.items()},
        "import_seconds": {a: r["import_seconds"] for a, r in results.items()},
        "all_seconds": {a: r["all_seconds"] for a, r in results.items()},
    }


def _verdict(speedup: float, ratio: float) -> str:
    fast = "met" if speedup >= 3 else "MISSED"
    near = "met" if ratio <= 1.2 else "MISSED"
    return f">= 3x pandas.read_sql: {fast} ({speedup:.2f}x); within 1.2x of fastest direct: {near}"


def main() -> None:
    from carbon_sdk.dev.supervisor import Stack

    home = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    stack = Stack(home, profile=None)
    try:
        stack.up(["postgres"])
        pg = stack.settings()["postgres"]
        uri = (
            f"postgresql://{quote(str(pg['user']), safe='')}:"
            f"{quote(str(pg['password']), safe='')}@{pg['host']}:{pg['port']}/{pg['database']}"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "PG", "AWS_"))}
        env |= stack.env() | {
            "BENCH_PG_URI": uri,
            "CARBON_USER_CONFIG": str(home / "config.yaml"),
            "CARBON_CONFIG": str(home / "system.yaml"),
            "CARBON_SECRETS_DIR": str(home / "secrets"),
        }
        import psycopg

        started = time.perf_counter()
        with psycopg.connect(uri, autocommit=True) as conn:
            for statement in DDL:
                conn.execute(statement.replace("%(rows)s", str(ROWS)))
        print(f"created {TABLE} ({ROWS} rows) in {time.perf_counter() - started:.1f} s")

        reads = round_robin(__file__, list(READERS), env, ROUNDS, keep=KEEP)
        for fmt in ("arrow", "pandas"):
            subject = reads[f"sdk_{fmt}"]["seconds"]
            baseline = reads["pandas_read_sql"]["seconds"]
            extra = _extra(reads, fmt)
            verdict = _verdict(baseline / subject, extra["ratio_to_fastest_direct"])
            record(
                f"postgres_read_{fmt}",
                f'postgres.query(as_="{fmt}")',
                subject,
                "pandas.read_sql (SQLAlchemy postgresql+psycopg)",
                baseline,
                ROUNDS,
                f"{ROWS:,} rows x 10 cols, fresh process per run; {verdict} "
                f"(fastest direct: {extra['fastest_direct']})",
                **extra,
            )

        writes = round_robin(__file__, list(WRITERS), env, ROUNDS, keep=KEEP)
        record(
            "postgres_write",
            'postgres.write(df, if_exists="replace")',
            writes["sdk_write"]["seconds"],
            f'DataFrame.to_sql(method="multi", chunksize={TO_SQL_CHUNK})',
            writes["to_sql_multi"]["seconds"],
            ROUNDS,
            f"{WRITE_ROWS:,} rows x 10 cols (the pandas frame postgres.query returns); to_sql "
            "multi is slow by design: one multi-row INSERT per chunk, every value a bound "
            "parameter (and capped at 65,535 per statement)",
            rows=WRITE_ROWS,
            seconds={a: r["seconds"] for a, r in writes.items()},
            peak_rss_mib={a: r["peak_rss_mib"] for a, r in writes.items()},
            rss_growth_mib={a: r["rss_growth_mib"] for a, r in writes.items()},
            all_seconds={a: r["all_seconds"] for a, r in writes.items()},
        )
    finally:
        stack.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()
