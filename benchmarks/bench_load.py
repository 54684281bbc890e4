"""Load: many notebook-like clients (threads in this process plus a few worker processes, each a
"kernel" with threads) run the doctor and small queries against a running stack for a while.

Every client cycles through ``OPERATIONS`` (each starting at a different one) until the time is
up, timing every call; any exception is an error. Before the load, one client alone runs the
same cycle for a few seconds: that is the baseline (latency without contention). The doctor
runs in-process (``carbon_sdk.health.run(isolation="thread")``, what a notebook's
``carbon_sdk.doctor()`` does minus the check processes): 50 CLI subprocesses would measure
fork and interpreter start on a 2-core machine, not the services.

Used by ``tests/reliability/test_load.py`` (the issue's 60 s x 50 clients on the test session's
stack; zero errors and every client progressing are asserted there, latencies never) and by
``make bench`` (``python bench_load.py``: a stack of its own). Both write ``results/load.json``
and its SUMMARY row.

Worker processes are ``python bench_load.py child <threads> <seconds>``: they import and warm
up, print ``ready``, wait for their first operation's index on stdin, run their threads for
the duration, and print one JSON line of samples.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import record

SERVICES = ("postgres", "s3", "trino")
# The doctor's own bound per run. 50 clients on 2 cores put its p95 at ~17 s (427 ms alone):
# a run that overshoots 60 s means a saturated machine, which the latencies already show.
DOCTOR_TIMEOUT = 60.0
PREFIX_ENV = "CARBON_LOAD_S3_PREFIX"  # s3://bucket/prefix/ the s3.ls operation lists


def _doctor() -> None:
    from carbon_sdk.health import run

    report = run(SERVICES, timeout=DOCTOR_TIMEOUT, isolation="thread")
    if not report.ok:
        raise RuntimeError(report.to_json())


def _postgres() -> None:
    from carbon_sdk import postgres

    postgres.query("select n, n * n as sq from generate_series(1, 100) as n", as_="arrow")


def _trino() -> None:
    from carbon_sdk import trino

    trino.query("select * from tpch.tiny.nation", as_="arrow", progress=False)


def _s3() -> None:
    from carbon_sdk import s3

    if not s3.ls(os.environ[PREFIX_ENV]):
        raise RuntimeError(f"nothing listed under {os.environ[PREFIX_ENV]}")


def prepare(prefix: str) -> None:
    """Write two small objects under ``prefix`` (``s3://bucket/key/``) for the ``s3.ls``
    operation and name it in ``CARBON_LOAD_S3_PREFIX`` (worker processes inherit it)."""
    from carbon_sdk import s3

    parsed = s3.S3Url.parse(prefix)
    for name in ("a.txt", "b.txt"):
        s3.client().put_object(Bucket=parsed.bucket, Key=parsed.key + name, Body=b"load")
    os.environ[PREFIX_ENV] = prefix


OPERATIONS: dict[str, Callable[[], None]] = {
    "doctor": _doctor,
    "postgres.query": _postgres,
    "trino.query": _trino,
    "s3.ls": _s3,
}


@dataclass
class Samples:
    """What clients measured: seconds per operation, operations per client, errors."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: {o: [] for o in OPERATIONS})
    per_client: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def merge(self, other: Samples) -> None:
        for operation, values in other.seconds.items():
            self.seconds[operation].extend(values)
        self.per_client.extend(other.per_client)
        self.errors.extend(other.errors)

    def to_json(self) -> str:
        return json.dumps(
            {"seconds": self.seconds, "per_client": self.per_client, "errors": self.errors}
        )

    @classmethod
    def from_json(cls, line: str) -> Samples:
        data = json.loads(line)
        return cls(data["seconds"], data["per_client"], data["errors"])


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def run_clients(count: int, seconds: float, first: int = 0) -> Samples:
    """``count`` client threads cycling through the operations for ``seconds``; client ``i``
    starts at operation ``first + i`` (so clients of all processes spread over them)."""
    names = list(OPERATIONS)
    samples = Samples(per_client=[0] * count)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        turn = first + index
        while time.monotonic() < deadline:
            operation = names[turn % len(names)]
            turn += 1
            started = time.perf_counter()
            try:
                OPERATIONS[operation]()
            except Exception as exc:  # counted and reported: the load must have none
                with lock:
                    samples.errors.append(f"{operation}: {type(exc).__name__}: {exc}"[:2000])
                continue
            took = time.perf_counter() - started
            with lock:
                samples.seconds[operation].append(took)
                samples.per_client[index] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)  # a call still running that long is a hang: reported below
    if any(t.is_alive() for t in threads):
        samples.errors.append(f"a client did not return within {seconds + 120:g} s")
    return samples


def warm_up() -> None:
    """Import every client library and open every service once (not measured)."""
    for operation in OPERATIONS.values():
        operation()


@dataclass(frozen=True)
class LoadResult:
    """A load run: the baseline (one client alone) and the load's samples."""

    clients: int
    processes: int
    threads_per_process: int
    seconds: float
    baseline: Samples
    load: Samples

    def summary(self) -> dict[str, dict[str, float]]:
        """Per operation: calls, p50/p95 in milliseconds, under load and alone."""
        rows = {}
        for operation in OPERATIONS:
            loaded, alone = self.load.seconds[operation], self.baseline.seconds[operation]
            rows[operation] = {
                "calls": len(loaded),
                "p50_ms": round(percentile(loaded, 50) * 1000, 1) if loaded else math.nan,
                "p95_ms": round(percentile(loaded, 95) * 1000, 1) if loaded else math.nan,
                "max_ms": round(max(loaded) * 1000, 1) if loaded else math.nan,
                "alone_p50_ms": round(percentile(alone, 50) * 1000, 1) if alone else math.nan,
            }
        return rows


def run_load(
    clients: int = 50, processes: int = 4, threads_per_process: int = 5, seconds: float = 60.0
) -> LoadResult:
    """``clients`` concurrent clients for ``seconds``: ``processes`` worker processes of
    ``threads_per_process`` threads, the rest threads of this process; all start together after
    every process has warmed up. Needs the SDK configured (``CARBON_*`` or a profile) for
    ``SERVICES`` and ``CARBON_LOAD_S3_PREFIX`` naming a non-empty prefix."""
    local = clients - processes * threads_per_process
    if local < 0:
        raise ValueError("more clients in processes than clients")
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "child", str(threads_per_process), str(seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        warm_up()
        for worker in workers:
            assert worker.stdout is not None
            if not any(line.strip() == "ready" for line in worker.stdout):
                raise RuntimeError(f"load worker {worker.pid} failed to start")
        baseline = run_clients(1, min(5.0, seconds))  # the workers wait, warm
        for index, worker in enumerate(workers):  # go: each starts at its own operation
            assert worker.stdin is not None
            worker.stdin.write(f"{local + index * threads_per_process}\n")
            worker.stdin.close()
        load = run_clients(local, seconds)
        for worker in workers:
            assert worker.stdout is not None
            out = worker.stdout.read()  # the child's samples, once it is done
            if worker.wait(timeout=60) != 0:
                raise RuntimeError(f"load worker {worker.pid} exited {worker.returncode}")
            load.merge(Samples.from_json(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:  # ours, by pid, only if still running after an error
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return LoadResult(clients, processes, threads_per_process, seconds, baseline, load)


def child(threads: int, seconds: float) -> None:
    """A worker process: warm up, say ``ready``, wait for the first operation index, run."""
    try:
        warm_up()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    print("ready", flush=True)
    first = int(sys.stdin.readline())
    print(run_clients(threads, seconds, first).to_json(), flush=True)


def save(result: LoadResult) -> Path:
    """``results/load.json`` and its SUMMARY row: all calls' p50 under load vs one client."""
    everything = [s for values in result.load.seconds.values() for s in values]
    alone = [s for values in result.baseline.seconds.values() for s in values]
    operations = result.summary()
    p95 = ", ".join(f"{o} {row['p95_ms']:g}" for o, row in operations.items())
    return record(
        "load",
        f"p50 of every call, {result.clients} clients",
        percentile(everything, 50),
        "p50 of the same calls, one client alone",
        percentile(alone, 50),
        len(everything),
        f"{result.clients} clients ({result.processes} processes x "
        f"{result.threads_per_process} threads, the rest threads) for {result.seconds:g} s on "
        f"2 cores, {len(result.load.errors)} errors; p95 ms: {p95}; informational",
        clients=result.clients,
        processes=result.processes,
        threads_per_process=result.threads_per_process,
        seconds=result.seconds,
        errors=len(result.load.errors),
        min_calls_per_client=min(result.load.per_client),
        operations=operations,
    )


def main() -> None:
    """Start postgres, s3 and trino on a stack of its own, run the load, record it."""
    if sys.argv[1:2] == ["child"]:
        child(int(sys.argv[2]), float(sys.argv[3]))
        return
    from carbon_sdk.dev.supervisor import Stack

    home = Path(tempfile.mkdtemp(prefix="bench-load-"))
    stack = Stack(home, profile=None)
    try:
        stack.up(list(SERVICES))
        for name in list(os.environ):
            if name.startswith(("CARBON_", "PG", "AWS_")):
                del os.environ[name]
        os.environ.update(stack.env())  # this process and the workers
        os.environ["CARBON_USER_CONFIG"] = str(home / "config.yaml")
        os.environ["CARBON_CONFIG"] = str(home / "system.yaml")
        os.environ["CARBON_SECRETS_DIR"] = str(home / "secrets")
        from carbon_sdk import s3

        prepare(s3.url("carbon-load") + "/")
        result = run_load()
        save(result)
    finally:
        stack.down(purge=True)
    if result.load.errors:
        sys.exit(f"{len(result.load.errors)} errors, first: {result.load.errors[0]}")


if __name__ == "__main__":
    main()
