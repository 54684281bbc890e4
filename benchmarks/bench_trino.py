"""Trino reads against the local stack: the SDK vs the tools a user would call.

``select * from tpch.sf1.orders`` (1,500,000 rows x 9 columns) read whole by

- ``trino.query(sql, as_="arrow")`` and ``as_="pandas"`` (the subjects),
- raw DB-API: ``trino.dbapi`` ``cursor.fetchall()`` + ``pandas.DataFrame(rows, columns=...)``
  (the best raw path a user writes by hand),
- ``pandas.read_sql`` over a plain SQLAlchemy ``trino://`` engine (the baseline),

and streamed by ``trino.iter_batches(sql, batch_rows=100_000)`` (peak RSS growth compared with
one batch's Arrow size).

Every approach runs in a fresh subprocess, so imports and peak RSS (``ru_maxrss``) belong to that
approach alone; the clock covers connect + read (+ conversion), not imports. Rounds are
interleaved and medians recorded. Targets (issue 5): the SDK >= 0.95x the best raw path, Arrow
>= 1.5x ``pandas.read_sql``, streaming peak RSS growth < 2x one batch. The dev stack's Trino has
no spooling manager configured, so every run uses the direct protocol (the SDK still sends its
encoding preference; the server ignores it). The stack is started by the same supervisor as
``carbon-sdk dev up`` in a temporary ``CARBON_DEV_HOME`` and purged at the end.

    python benchmarks/bench_trino.py                    # 3 rounds
    BENCH_TRINO_ROUNDS=1 python benchmarks/bench_trino.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import child_main, first_of, record, round_robin

ROUNDS = int(os.environ.get("BENCH_TRINO_ROUNDS", "3"))
SQL = os.environ.get("BENCH_TRINO_SQL", "select * from tpch.sf1.orders")
BATCH_ROWS = 100_000
APPROACHES = ("sdk_arrow", "sdk_pandas", "raw_fetchall_pandas", "pandas_read_sql", "sdk_stream")
# Per-approach fields beyond harness.round_robin's own: the largest batch of the first streamed run.
KEEP = {"batch_mib": first_of(1)}


def child(approach: str) -> None:
    """Import what ``approach`` needs, time it once, print one JSON line."""
    import pandas
    import pyarrow
    import sqlalchemy
    import trino as trino_client

    from carbon_sdk import trino

    host, port = os.environ["CARBON_TRINO__HOST"], int(os.environ["CARBON_TRINO__PORT"])
    user = os.environ.get("CARBON_TRINO__USER", "bench")
    extra: dict[str, Any] = {}

    def run() -> int:
        if approach in ("sdk_arrow", "sdk_pandas"):
            return len(trino.query(SQL, as_=approach.removeprefix("sdk_"), progress=False))
        if approach == "raw_fetchall_pandas":
            with trino_client.dbapi.connect(host=host, port=port, user=user) as conn:
                cur = conn.cursor()
                cur.execute(SQL)
                rows = cur.fetchall()
                names = [d[0] for d in cur.description]
            return len(pandas.DataFrame(rows, columns=names))
        if approach == "pandas_read_sql":
            engine = sqlalchemy.create_engine(f"trino://{user}@{host}:{port}/tpch")
            return len(pandas.read_sql(SQL, engine))
        if approach == "sdk_stream":
            total, largest = 0, 0
            for batch in trino.iter_batches(SQL, batch_rows=BATCH_ROWS):
                total += batch.num_rows
                largest = max(largest, batch.nbytes)
            extra["batch_mib"] = largest / 2**20
            return total
        raise SystemExit(f"unknown approach {approach}")

    del pyarrow
    child_main(run, extra)


def main() -> None:
    from carbon_sdk.dev.supervisor import Stack

    home = Path(tempfile.mkdtemp(prefix="bench-trino-"))
    stack = Stack(home, profile=None)
    try:
        started = time.perf_counter()
        stack.up(["postgres", "s3", "trino"])
        print(f"stack up in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "TRINO_"))}
        env |= stack.env() | {
            "CARBON_USER_CONFIG": str(home / "config.yaml"),
            "CARBON_CONFIG": str(home / "system.yaml"),
            "CARBON_SECRETS_DIR": str(home / "secrets"),
        }
        results = round_robin(__file__, APPROACHES, env, ROUNDS, digits=3, keep=KEEP)
        seconds = {a: r["seconds"] for a, r in results.items()}
        raw = seconds["raw_fetchall_pandas"]
        read_sql = seconds["pandas_read_sql"]
        stream = results["sdk_stream"]
        common = {
            "rows": results["sdk_arrow"]["rows"],
            "sql": SQL,
            "spooling": "off (the dev server has no spooling manager)",
            "seconds": seconds,
            "rss_growth_mib": {a: r["rss_growth_mib"] for a, r in results.items()},
            "all_seconds": {a: r["all_seconds"] for a, r in results.items()},
            "stream_batch_mib": stream.get("batch_mib"),
        }
        record(
            "trino_read_arrow",
            'trino.query(as_="arrow")',
            seconds["sdk_arrow"],
            "pandas.read_sql (SQLAlchemy trino://)",
            read_sql,
            ROUNDS,
            f"tpch.sf1.orders; target >= 1.5x read_sql: "
            f"{'met' if read_sql / seconds['sdk_arrow'] >= 1.5 else 'MISSED'}; "
            f"vs raw fetchall+DataFrame {raw / seconds['sdk_arrow']:.2f}x",
            **common,
        )
        record(
            "trino_read_pandas",
            'trino.query(as_="pandas")',
            seconds["sdk_pandas"],
            "cursor.fetchall() + pandas.DataFrame",
            raw,
            ROUNDS,
            f"tpch.sf1.orders; target >= 0.95x the best raw path: "
            f"{'met' if raw / seconds['sdk_pandas'] >= 0.95 else 'MISSED'}",
            **common,
        )
        batch = stream.get("batch_mib") or 0
        growth = stream["rss_growth_mib"]
        record(
            "trino_stream",
            f"trino.iter_batches(batch_rows={BATCH_ROWS})",
            seconds["sdk_stream"],
            'trino.query(as_="arrow")',
            seconds["sdk_arrow"],
            ROUNDS,
            f"peak RSS growth {growth:.0f} MiB vs one Arrow batch {batch:.0f} MiB "
            "(Python rows of a batch are ~5x its Arrow size)",
            **common,
        )
    finally:
        stack.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()
