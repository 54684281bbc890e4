"""MLflow against the local stack's tracking server (PostgreSQL backend, artifacts on S3).

Two measurements:
- start-up: ``import mlflow`` + ``carbon_sdk.mlflow.setup(experiment)`` against ``import mlflow``
  alone (target: setup adds < 100 ms), and, for reference, the plain equivalent
  ``mlflow.set_tracking_uri(...)`` + ``mlflow.set_experiment(...)``; each in a fresh process,
  interleaved round-robin, timed inside the child (interpreter start excluded).
- logging 10,000 metrics to one run: ``carbon_sdk.mlflow.log_metrics(rows)`` against building
  ``Metric`` objects and calling ``MlflowClient.log_batch`` (target: >= 0.95x); same process,
  client made before timing, a new run per attempt, interleaved.

    python benchmarks/bench_mlflow.py
    BENCH_MLFLOW_ROUNDS=3 python benchmarks/bench_mlflow.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import interleaved_medians, record

ROUNDS = int(os.environ.get("BENCH_MLFLOW_ROUNDS", "7"))
METRICS = int(os.environ.get("BENCH_MLFLOW_METRICS", "10000"))
EXPERIMENT = "/bench/startup"


def child(approach: str) -> None:
    """One fresh-process start-up: prints {"import": s, "setup": s}."""
    started = time.perf_counter()
    import mlflow

    imported = time.perf_counter()
    if approach == "sdk":
        from carbon_sdk import mlflow as carbon_mlflow

        carbon_mlflow.setup(EXPERIMENT)
    elif approach == "plain":
        mlflow.set_tracking_uri(os.environ["CARBON_MLFLOW__TRACKING_URI"])
        mlflow.set_experiment(EXPERIMENT)
    done = time.perf_counter()
    print(json.dumps({"import": imported - started, "setup": done - imported}))


def run_child(approach: str, env: dict[str, str]) -> dict[str, float]:
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "child", approach],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def startup(env: dict[str, str]) -> None:
    runs: dict[str, list[dict[str, float]]] = {"import": [], "sdk": [], "plain": []}
    run_child("sdk", env)  # creates the experiment and warms the bytecode caches
    for i in range(ROUNDS):
        for approach in runs:
            runs[approach].append(run_child(approach, env))
            total = sum(runs[approach][-1].values())
            print(f"  round {i + 1} {approach}: {total:.3f} s", file=sys.stderr)
    total = {a: statistics.median(r["import"] + r["setup"] for r in rs) for a, rs in runs.items()}
    setup_only = {a: statistics.median(r["setup"] for r in rs) for a, rs in runs.items()}
    overhead = total["sdk"] - total["import"]
    record(
        "mlflow_setup",
        "import mlflow + carbon_sdk.mlflow.setup()",
        total["sdk"],
        "import mlflow",
        total["import"],
        ROUNDS,
        f"setup() adds {1000 * overhead:.0f} ms over importing mlflow (target < 100 ms); "
        f"plain set_tracking_uri + set_experiment: {1000 * setup_only['plain']:.0f} ms, "
        f"setup(): {1000 * setup_only['sdk']:.0f} ms",
        overhead_ms=round(1000 * overhead, 1),
        setup_ms=round(1000 * setup_only["sdk"], 1),
        plain_setup_ms=round(1000 * setup_only["plain"], 1),
    )


def log_metrics() -> None:
    import mlflow
    from mlflow.entities import Metric

    from carbon_sdk import mlflow as carbon_mlflow

    client = carbon_mlflow.setup("/bench/metrics")
    experiment_id = mlflow.get_experiment_by_name("/bench/metrics").experiment_id
    rows = [(f"m{i % 100}", float(i), i // 100) for i in range(METRICS)]

    def sdk() -> float:
        run_id = client.create_run(experiment_id).info.run_id
        started = time.perf_counter()
        carbon_mlflow.log_metrics(rows, run_id=run_id)
        return time.perf_counter() - started

    def plain() -> float:
        run_id = client.create_run(experiment_id).info.run_id
        started = time.perf_counter()
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, s) for k, v, s in rows])
        return time.perf_counter() - started

    sdk()  # warm-up
    subject, baseline = interleaved_medians(sdk, plain, ROUNDS)
    record(
        "mlflow_log_metrics",
        f"carbon_sdk.mlflow.log_metrics ({METRICS} metrics)",
        subject,
        "MlflowClient.log_batch",
        baseline,
        ROUNDS,
        f"{baseline / subject:.2f}x the plain path (target >= 0.95x)",
    )


def main() -> None:
    from carbon_sdk.dev.supervisor import Stack

    work = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
    stack = Stack(work / "dev-home", profile=None)
    try:
        stack.up(["mlflow"])
        for key, value in stack.env().items():
            os.environ[key] = value
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        startup(dict(os.environ))
        log_metrics()
    finally:
        stack.down(purge=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()
