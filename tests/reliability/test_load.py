"""Load (issue #17): 50 notebook-like clients, threads and worker processes, run the doctor and
small PostgreSQL, Trino and S3 queries against the stack for 60 s. Zero errors and progress for
every client are asserted; latencies are measured (``benchmarks/results/load.json``, the load
table in docs/reliability.md), never asserted: the machine has 2 shared cores.

The driver is ``benchmarks/bench_load.py`` (``make bench`` runs it on a stack of its own)."""

from __future__ import annotations

import pytest
from bench_load import OPERATIONS, prepare, run_load, save

from carbon_sdk.dev.pytest_plugin import StackEnv

from .report import Load, LoadRow, Results

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.load]

CLIENTS = 50
PROCESSES = 4  # notebook kernels of their own, 5 threads each; the other 30 are threads here
THREADS_PER_PROCESS = 5
SECONDS = 60.0


def test_fifty_clients_for_a_minute_without_an_error(
    stack_env: StackEnv, fresh_bucket_prefix: str, pytestconfig: pytest.Config
) -> None:
    stack_env("postgres", "s3", "trino")
    prepare(fresh_bucket_prefix)
    result = run_load(CLIENTS, PROCESSES, THREADS_PER_PROCESS, SECONDS)
    save(result)
    summary = result.summary()
    Results.of(pytestconfig).load = Load(
        f"{CLIENTS} clients ({PROCESSES} processes x {THREADS_PER_PROCESS} threads, "
        f"{CLIENTS - PROCESSES * THREADS_PER_PROCESS} threads in the test process) for "
        f"{SECONDS:g} s: {sum(result.load.per_client)} calls, {len(result.load.errors)} errors, "
        f"every client at least {min(result.load.per_client)} calls",
        [
            LoadRow(op, int(row["calls"]), row["p50_ms"], row["p95_ms"], row["alone_p50_ms"])
            for op, row in summary.items()
        ],
    )
    assert result.load.errors == [], result.load.errors[:5]
    assert len(result.load.per_client) == CLIENTS
    assert min(result.load.per_client) > 0, result.load.per_client  # every client progressed
    assert all(summary[op]["calls"] > 0 for op in OPERATIONS), summary
