"""`carbon-sdk doctor` against the local stack with every service up: wall time vs its slowest
single check, checks in processes (the CLI's default) vs in threads (the notebook fallback).

Each run is a fresh ``python -m carbon_sdk doctor --json`` (so client imports are cold, as for a
user); the document's ``latency_ms`` per check says where the time goes. Target: wall <= 1.2x
the slowest single check, and <= 2 s in total.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import record

ROUNDS = 7
THREADS = (
    "import sys; from carbon_sdk.health import run; "
    "report = run(timeout=30, isolation='thread'); print(report.to_json()); "
    "sys.exit(report.exit_code)"
)


def doctor_run(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Wall seconds of one doctor process and each check's reported latency (seconds)."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    document = json.loads(done.stdout)
    if not document["ok"]:
        raise RuntimeError(f"doctor failed: {done.stdout}")
    checked = [r for r in document["results"] if r["status"] != "not configured"]
    return wall, {r["service"]: r["latency_ms"] / 1000 for r in checked}


def main() -> None:
    from carbon_sdk._registry import CONNECTORS
    from carbon_sdk.dev.registry import SERVICES
    from carbon_sdk.dev.supervisor import Stack

    home = Path(tempfile.mkdtemp(prefix="bench-doctor-"))
    stack = Stack(home, profile=None)
    try:
        stack.up([name for name in CONNECTORS if name in SERVICES])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "PG", "AWS_"))}
        env |= stack.env() | {
            "CARBON_USER_CONFIG": str(home / "config.yaml"),
            "CARBON_CONFIG": str(home / "system.yaml"),
            "CARBON_SECRETS_DIR": str(home / "secrets"),
        }
        python = sys.executable
        approaches = {
            "process": [python, "-m", "carbon_sdk", "doctor", "--json", "--timeout", "30"],
            "thread": [python, "-c", THREADS],
        }
        walls: dict[str, list[float]] = {a: [] for a in approaches}
        checks: dict[str, list[dict[str, float]]] = {a: [] for a in approaches}
        for argv in approaches.values():  # warm-up, not counted: the servers' first queries
            doctor_run(argv, env)
        for _ in range(ROUNDS):
            for approach, argv in approaches.items():
                wall, latencies = doctor_run(argv, env)
                walls[approach].append(wall)
                checks[approach].append(latencies)
        summary = {}
        for approach in approaches:
            per_check = {
                name: round(statistics.median(run[name] for run in checks[approach]), 3)
                for name in checks[approach][0]
            }
            summary[approach] = {
                "wall_s": round(statistics.median(walls[approach]), 3),
                "slowest_check_s": max(per_check.values()),
                "checks_s": per_check,
            }
        process, thread = summary["process"], summary["thread"]
        ratio = process["wall_s"] / process["slowest_check_s"]
        met = ratio <= 1.2 and process["wall_s"] <= 2.0
        record(
            "doctor_stack",
            "carbon-sdk doctor --json (checks in processes), every stack service up",
            process["wall_s"],
            "the same checks in threads",
            thread["wall_s"],
            ROUNDS,
            f"{len(process['checks_s'])} services; wall {ratio:.2f}x the slowest check "
            f"({process['slowest_check_s']:.2f} s); target <= 1.2x and <= 2 s: "
            f"{'met' if met else 'MISSED'}; threads: wall "
            f"{thread['wall_s'] / thread['slowest_check_s']:.2f}x their slowest check",
            **summary,
        )
    finally:
        stack.down(purge=True)


if __name__ == "__main__":
    main()
