"""The IPython extension's costs: ``%load_ext carbon_sdk``, and a ``%%trino`` / ``%%postgres``
cell against calling ``trino.query()`` / ``postgres.query()`` for the same SQL, same run.

Targets (issue #15): ``%load_ext carbon_sdk`` < 30 ms with no client imported; a ``%%trino``
cell < 20 ms over ``trino.query()``. The load is timed in fresh processes (each child creates an
IPython shell, then times the one ``%load_ext``) against ``%load_ext autoreload``, IPython's own
extension. The cells run in one IPython shell on the local stack, interleaved with the plain
calls; the shell's display output goes to /dev/null.
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
CELL_ROUNDS = 30
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
    for service, connector in (("trino", trino), ("postgres", postgres)):
        sql = SQL[service]

        def magic(service: str = service, sql: str = sql) -> float:
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                shell.run_cell(f"%%{service}\n{sql}").raise_error()
            return time.perf_counter() - started

        def plain(connector: object = connector, sql: str = sql) -> float:
            started = time.perf_counter()
            connector.query(sql)  # type: ignore[attr-defined]
            return time.perf_counter() - started

        magic(), plain()  # warm up: client imports, first connection
        magic_times, plain_times = [], []
        for _ in range(CELL_ROUNDS):
            magic_times.append(magic())
            plain_times.append(plain())
        subject, baseline = statistics.median(magic_times), statistics.median(plain_times)
        overhead = 1000 * (subject - baseline)
        target = " (target < 20 ms)" if service == "trino" else ""
        record(
            f"magics_{service}_cell",
            f"%%{service} cell ({sql})",
            subject,
            f"{service}.query()",
            baseline,
            CELL_ROUNDS,
            f"cell overhead {overhead:.1f} ms{target}, medians of interleaved runs",
            overhead_ms=round(overhead, 2),
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
