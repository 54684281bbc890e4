"""The IPython extension's costs: ``%load_ext carbon_sdk``, and a ``%%trino`` / ``%%postgres``
cell against a cell calling ``trino.query()`` / ``postgres.query()`` for the same SQL, same run.

Targets (issue #15): ``%load_ext carbon_sdk`` < 30 ms with no client imported; a ``%%trino``
cell < 20 ms over ``trino.query()``. The load is timed in fresh processes (each child creates an
IPython shell, then times the one ``%load_ext``) against ``%load_ext autoreload``, IPython's own
extension. Both kinds of cell run in one IPython shell on the local stack, interleaved, and both
display their DataFrame (the shell's output is discarded): the difference is what the magic adds
(parsing, parameter lookup, the report line), taken as the median of the paired differences
of neighbouring runs (the server's own time varies more than that). The bare ``query()`` call,
without a cell and its display, is recorded too (``call_seconds``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import record, run_child

LOAD_ROUNDS = 15
CELL_ROUNDS = 40
SQL = {"trino": "select * from tpch.tiny.nation", "postgres": "select * from pg_catalog.pg_type"}


def child(approach: str) -> None:
    """One fresh process: time loading one extension into a new shell; list what it imported."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "storemagic")  # %load_ext's own imports, outside the timing
    before = set(sys.modules)
    started = time.perf_counter()
    shell.run_line_magic("load_ext", approach)
    took = time.perf_counter() - started
    new = sorted({m.split(".")[0] for m in set(sys.modules) - before})
    print(json.dumps({"seconds": took, "imported": new}))


def load_costs() -> None:
    env = dict(os.environ)
    times: dict[str, list[float]] = {"carbon_sdk": [], "autoreload": []}
    imported: list[str] = []
    for _ in range(LOAD_ROUNDS):
        for approach in times:
            result = run_child(__file__, approach, env)
            times[approach].append(result["seconds"])
            if approach == "carbon_sdk":
                imported = result["imported"]
    subject = statistics.median(times["carbon_sdk"])
    baseline = statistics.median(times["autoreload"])
    record(
        "magics_load_ext",
        "%load_ext carbon_sdk",
        subject,
        "%load_ext autoreload",
        baseline,
        LOAD_ROUNDS,
        f"{1000 * subject:.2f} ms (target < 30 ms); imported: {', '.join(imported)}",
        load_ms=round(1000 * subject, 3),
        imported=imported,
    )


def cell_overheads(env: dict[str, str]) -> None:
    os.environ.update(env)
    from IPython.core.interactiveshell import InteractiveShell

    from carbon_sdk import postgres, trino

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "carbon_sdk")
    shell.run_cell("from carbon_sdk import postgres, trino").raise_error()
    for service, connector in (("trino", trino), ("postgres", postgres)):
        sql = SQL[service]

        def cell(source: str) -> float:
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                shell.run_cell(source).raise_error()
            return time.perf_counter() - started

        def call(connector: object = connector, sql: str = sql) -> float:
            started = time.perf_counter()
            connector.query(sql)  # type: ignore[attr-defined]
            return time.perf_counter() - started

        magic_cell, query_cell = f"%%{service}\n{sql}", f"{service}.query({sql!r})"
        cell(magic_cell), cell(query_cell), call()  # warm up: client imports, first connection
        times: dict[str, list[float]] = {"magic": [], "query": [], "call": []}
        for _ in range(CELL_ROUNDS):
            times["magic"].append(cell(magic_cell))
            times["query"].append(cell(query_cell))
            times["call"].append(call())
        subject, baseline, bare = (statistics.median(times[k]) for k in ("magic", "query", "call"))
        # the median of paired differences: the server's time varies more than the magic costs
        paired = zip(times["magic"], times["query"], strict=True)
        overhead = 1000 * statistics.median(m - q for m, q in paired)
        target = " (target < 20 ms)" if service == "trino" else ""
        record(
            f"magics_{service}_cell",
            f"%%{service} cell ({sql})",
            subject,
            f"cell {service}.query(...)",
            baseline,
            CELL_ROUNDS,
            f"cell overhead {overhead:.1f} ms{target} (median of paired differences); bare "
            f"{service}.query() call {1000 * bare:.0f} ms; medians of interleaved runs",
            overhead_ms=round(overhead, 2),
            call_seconds=round(bare, 6),
        )


def main() -> None:
    from carbon_sdk.dev.supervisor import Stack

    load_costs()
    home = Path(tempfile.mkdtemp(prefix="bench-magics-"))
    stack = Stack(home, profile=None)
    try:
        stack.up(["postgres", "trino"])
        env = stack.env() | {
            "CARBON_USER_CONFIG": str(home / "config.yaml"),
            "CARBON_CONFIG": str(home / "system.yaml"),
            "CARBON_SECRETS_DIR": str(home / "secrets"),
        }
        cell_overheads(env)
    finally:
        stack.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2])
    else:
        main()
