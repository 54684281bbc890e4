"""Trino reads against the local stack: the SDK vs the tools a user would call.

``select * from tpch.sf1.orders`` (1,500,000 rows x 9 columns) read whole by

- ``trino.query(sql, as_="arrow")`` (spooled protocol: the stack's Trino spools to its S3) and
  ``as_="pandas"`` (the subjects),
- ``trino.query(sql, as_="arrow", encoding=[])`` (the SDK's direct-protocol fallback),
- raw DB-API: ``trino.dbapi`` ``cursor.fetchall()`` + ``pandas.DataFrame(rows, columns=...)``
  (the best raw path a user writes by hand; the client negotiates spooling itself),
- ``pandas.read_sql`` over a plain SQLAlchemy ``trino://`` engine (the baseline),
- ConnectorX's Trino source (``trino+http://``, Rust decode, direct protocol) into Arrow,

and streamed by ``trino.iter_batches(sql, batch_rows=100_000)`` (peak RSS growth compared with
one batch's Arrow size, after a short warm-up stream in the same process). A floor comes with
them: ``server_floor`` fetches every segment of the same query (segment cursor, keep-alive
sessions on as many threads as the SDK's ``query()``) and decodes nothing, so its time is what
the server and the storage need to produce and hand over the result: a client that also
converts the rows is slower.

Every approach runs in a fresh subprocess, so imports and peak RSS belong to that approach
alone; the clock covers connect + read (+ conversion), not imports. Each child also
reports the CPU seconds the Trino JVM spent during its run and its own (Python) CPU seconds.
One unrecorded spooled and one direct read warm the server first; rounds are interleaved and
medians recorded. Targets (issue 12): Arrow >= 4x
``pandas.read_sql`` and >= 1.1x ConnectorX. The stack is started by the same supervisor as
``carbon-sdk dev up`` in a temporary ``CARBON_DEV_HOME`` and purged at the end.

    python benchmarks/bench_trino.py                    # 3 rounds
    BENCH_TRINO_ROUNDS=1 python benchmarks/bench_trino.py
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    child_main,
    first_of,
    median_of,
    peak_rss_mib,
    record,
    reset_peak_rss,
    round_robin,
    run_child,
)

ROUNDS = int(os.environ.get("BENCH_TRINO_ROUNDS", "3"))
SQL = os.environ.get("BENCH_TRINO_SQL", "select * from tpch.sf1.orders")
BATCH_ROWS = 100_000
WARMUP_ROWS = 2 * BATCH_ROWS
APPROACHES = (
    "sdk_arrow",
    "sdk_direct_arrow",
    "sdk_pandas",
    "raw_fetchall_pandas",
    "pandas_read_sql",
    "connectorx_arrow",
    "sdk_stream",
    "server_floor",
)
# Per-approach fields beyond harness.round_robin's own: the largest batch of the first streamed
# run, the protocol the SDK used, and the CPU split (medians).
KEEP = {
    "batch_mib": first_of(1),
    "cold_growth_mib": median_of(1),
    "arrow_mb": first_of(1),
    "protocol": lambda values: values[0],
    "trino_cpu_s": median_of(2),
    "python_cpu_s": median_of(2),
}


def _cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the Trino JVM ``pid`` and of this process (all threads)."""
    import psutil

    trino_times = psutil.Process(pid).cpu_times()
    own = resource.getrusage(resource.RUSAGE_SELF)
    return trino_times.user + trino_times.system, own.ru_utime + own.ru_stime


def _fetch_only(trino_client: Any, host: str, port: int, user: str) -> int:
    """Fetch (download and acknowledge) every segment of ``SQL`` on as many threads as the
    SDK's ``query()`` uses, decoding nothing; the rows counted from the segments' metadata."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from carbon_sdk.trino import DEFAULT_ENCODINGS, SEGMENT_THREADS

    local = threading.local()

    def fetch(segment: Any) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers["Accept-Encoding"] = "identity"
        headers = {k: v[0] for k, v in segment.headers.items() if v}
        local.session.get(segment.uri, headers=headers, timeout=60).raise_for_status()
        local.session.get(segment.ack_uri, headers=headers, timeout=60)

    first = [DEFAULT_ENCODINGS[0]]  # the encoding the SDK asks for first
    conn = trino_client.dbapi.connect(host=host, port=port, user=user, encoding=first)
    cur = conn.cursor("segment")
    cur.execute(SQL)
    rows = 0
    with ThreadPoolExecutor(SEGMENT_THREADS) as pool:
        fetched = []
        for decodable in iter(cur.fetchone, None):
            segment = decodable.segment
            rows += int(segment.metadata["rowsCount"])
            if getattr(segment, "uri", None) is not None:
                fetched.append(pool.submit(fetch, segment))
        for future in fetched:
            future.result()
    conn.close()
    return rows


def child(approach: str) -> None:
    """Import what ``approach`` needs, time it once, print one JSON line."""
    import connectorx
    import pandas
    import pyarrow
    import sqlalchemy
    import trino as trino_client

    from carbon_sdk import trino

    host, port = os.environ["CARBON_TRINO__HOST"], int(os.environ["CARBON_TRINO__PORT"])
    user = os.environ.get("CARBON_TRINO__USER", "bench")
    extra: dict[str, Any] = {}

    def measured() -> int:
        trino_before, own_before = _cpu(int(os.environ["BENCH_TRINO_PID"]))
        rows = run()
        trino_after, own_after = _cpu(int(os.environ["BENCH_TRINO_PID"]))
        extra["trino_cpu_s"] = trino_after - trino_before
        extra["python_cpu_s"] = own_after - own_before
        return rows

    def run() -> int:
        if approach in ("sdk_arrow", "sdk_pandas", "sdk_direct_arrow"):
            as_ = "pandas" if approach == "sdk_pandas" else "arrow"
            direct = {"encoding": []} if approach == "sdk_direct_arrow" else {}
            result = trino.query(SQL, as_=as_, progress=False, **direct)
            extra["protocol"] = trino.protocol_of(result)
            if as_ == "arrow":
                extra["arrow_mb"] = result.nbytes / 1e6
            return len(result)
        if approach == "connectorx_arrow":
            url = f"trino+http://{user}@{host}:{port}/tpch"
            return len(connectorx.read_sql(url, SQL, return_type="arrow"))
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
        if approach == "server_floor":
            return _fetch_only(trino_client, host, port, user)
        if approach == "sdk_stream":
            total, largest = 0, 0
            for batch in trino.iter_batches(SQL, batch_rows=BATCH_ROWS):
                total += batch.num_rows
                largest = max(largest, batch.nbytes)
                extra["protocol"] = trino.protocol_of(batch)
            extra["batch_mib"] = largest / 2**20
            return total
        raise SystemExit(f"unknown approach {approach}")

    if approach == "sdk_stream":
        # One-time costs (allocator arenas, Arrow kernels' code pages touched first) belong to
        # the first stream of a process: measured on a short one, so the measured stream shows
        # what streaming holds.
        before = reset_peak_rss()
        for _ in trino.iter_batches(f"select * from ({SQL}) limit {WARMUP_ROWS}"):
            pass
        extra["cold_growth_mib"] = peak_rss_mib() - before
    del pyarrow
    child_main(measured, extra)


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
        (record_,) = [r for r in stack.records() if r.name == "trino"]
        assert record_.handle is not None
        env["BENCH_TRINO_PID"] = str(record_.handle.pid)
        # The server's first reads of each protocol run before its JIT compiler has caught up:
        # one unrecorded read of each, so no approach pays for being first.
        for approach in ("sdk_arrow", "sdk_direct_arrow"):
            run_child(__file__, approach, env)
        results = round_robin(__file__, APPROACHES, env, ROUNDS, digits=3, keep=KEEP)
        seconds = {a: r["seconds"] for a, r in results.items()}
        rows = results["sdk_arrow"]["rows"]
        read_sql, cx = seconds["pandas_read_sql"], seconds["connectorx_arrow"]
        arrow, floor = seconds["sdk_arrow"], seconds["server_floor"]
        stream = results["sdk_stream"]
        arrow_mb = results["sdk_arrow"]["arrow_mb"]  # the result's size as Arrow
        common = {
            "rows": rows,
            "sql": SQL,
            "spooling": "on: the stack's Trino spools to its S3 (retrieval mode storage)",
            "protocol": {a: r.get("protocol") for a, r in results.items()},
            "seconds": seconds,
            "rows_per_s": {a: round(rows / t) for a, t in seconds.items()},
            "arrow_mb": arrow_mb,
            "arrow_mb_per_s": {a: round(arrow_mb / t, 1) for a, t in seconds.items()},
            "trino_cpu_s": {a: r.get("trino_cpu_s") for a, r in results.items()},
            "python_cpu_s": {a: r.get("python_cpu_s") for a, r in results.items()},
            "rss_growth_mib": {a: r["rss_growth_mib"] for a, r in results.items()},
            "all_seconds": {a: r["all_seconds"] for a, r in results.items()},
            "stream_batch_mib": stream.get("batch_mib"),
            "stream_cold_growth_mib": stream.get("cold_growth_mib"),
        }
        record(
            "trino_read_arrow",
            'trino.query(as_="arrow") (spooled)',
            arrow,
            "pandas.read_sql (SQLAlchemy trino://)",
            read_sql,
            ROUNDS,
            f"tpch.sf1.orders; target >= 4x read_sql: "
            f"{'met' if read_sql / arrow >= 4 else 'MISSED'} ({read_sql / arrow:.2f}x); "
            f"target >= 1.1x ConnectorX: {'met' if cx / arrow >= 1.1 else 'MISSED'} "
            f"({cx / arrow:.2f}x); direct-protocol SDK {seconds['sdk_direct_arrow']:.1f} s; "
            f"raw fetchall+DataFrame {seconds['raw_fetchall_pandas']:.1f} s; server floor "
            f"(segments fetched on the SDK's threads, nothing decoded) {floor:.1f} s, "
            f"{read_sql / floor:.2f}x read_sql",
            **common,
        )
        record(
            "trino_read_pandas",
            'trino.query(as_="pandas")',
            seconds["sdk_pandas"],
            "cursor.fetchall() + pandas.DataFrame",
            seconds["raw_fetchall_pandas"],
            ROUNDS,
            "tpch.sf1.orders; the plain client as a user calls it (direct protocol, gzip)",
            **common,
        )
        batch = stream.get("batch_mib") or 0
        growth = stream["rss_growth_mib"]
        record(
            "trino_stream",
            f"trino.iter_batches(batch_rows={BATCH_ROWS})",
            seconds["sdk_stream"],
            'trino.query(as_="arrow")',
            arrow,
            ROUNDS,
            f"peak RSS growth {growth:.0f} MiB vs one Arrow batch {batch:.0f} MiB "
            f"({growth / batch if batch else 0:.1f}x; target < 3x: "
            f"{'met' if batch and growth < 3 * batch else 'MISSED'}), measured after a "
            f"{WARMUP_ROWS:,}-row stream in the same process; that first stream of a fresh "
            f"process grew {stream.get('cold_growth_mib', 0):.0f} MiB (allocator arenas and "
            "code pages touched once)",
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
