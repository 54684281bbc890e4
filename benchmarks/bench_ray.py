"""Ray through the SDK vs plain Ray Client, against the local stack's head.

A round trip of 1,000 trivial tasks (``ray.get([f.remote(i) for i in range(1000)])``) after

- ``carbon_sdk.ray.init()`` (the subject: version guard over the dashboard, a TCP pre-check of
  the client port, a ``runtime_env`` carrying the carbon settings, then Ray Client), and
- plain ``ray.init("ray://host:port")`` (the baseline),

each in a fresh subprocess; the clock covers the 1,000 tasks only, the connect time is recorded
alongside. One unrecorded warm-up run of each comes first (the head's first client session pays
for imports). Target (issue): the SDK's round trip <= 1.05x plain. The head's start-up time and
memory (PSS and RSS summed over its process group) are recorded too. The stack runs in a
temporary ``CARBON_DEV_HOME`` and is purged at the end.

    python benchmarks/bench_ray.py                  # 3 rounds
    BENCH_RAY_ROUNDS=1 python benchmarks/bench_ray.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import child_main, median_of, record, round_robin, run_child

ROUNDS = int(os.environ.get("BENCH_RAY_ROUNDS", "3"))
TASKS = 1000
APPROACHES = ("sdk_init", "plain_init")
KEEP = {"connect_seconds": median_of(3)}


def child(approach: str) -> None:
    """Connect as ``approach`` says (timed apart), then time the 1,000-task round trip."""
    import ray as ray_lib

    from carbon_sdk import ray

    extra: dict[str, Any] = {}
    started = time.perf_counter()
    if approach == "sdk_init":
        ray.init()
    elif approach == "plain_init":
        host, port = os.environ["CARBON_RAY__HOST"], os.environ["CARBON_RAY__CLIENT_PORT"]
        ray_lib.init(f"ray://{host}:{port}")
    else:
        raise SystemExit(f"unknown approach {approach}")
    extra["connect_seconds"] = time.perf_counter() - started

    @ray_lib.remote
    def trivial(i: int) -> int:
        return i

    ray_lib.get(trivial.remote(0))  # the function is exported once, before the clock

    def run() -> int:
        return len(ray_lib.get([trivial.remote(i) for i in range(TASKS)]))

    child_main(run, extra)


def head_memory_mib(pgid: int) -> tuple[float, float]:
    """(PSS, RSS) summed over the head's process group, in MiB."""
    pss = rss = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) != pgid:
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return pss / 1024, rss / 1024


def main() -> None:
    from carbon_sdk.dev.supervisor import Stack

    home = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    stack = Stack(home, profile=None)
    try:
        started = time.perf_counter()
        stack.up(["ray"])
        startup = time.perf_counter() - started
        (record_,) = [r for r in stack.records() if r.name == "ray"]
        pss, rss = head_memory_mib(int(record_.pgid or 0))
        print(f"ray head up in {startup:.1f} s, PSS {pss:.0f} MiB", file=sys.stderr)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "RAY_"))}
        env |= stack.env() | {
            "CARBON_USER_CONFIG": str(home / "config.yaml"),
            "CARBON_CONFIG": str(home / "system.yaml"),
            "CARBON_SECRETS_DIR": str(home / "secrets"),
        }
        for approach in APPROACHES:  # warm-up, not recorded
            run_child(__file__, approach, env)
        results = round_robin(__file__, APPROACHES, env, ROUNDS, digits=4, keep=KEEP)
        sdk, plain = results["sdk_init"], results["plain_init"]
        ratio = sdk["seconds"] / plain["seconds"]
        loaded_pss, loaded_rss = head_memory_mib(int(record_.pgid or 0))
        record(
            "ray_tasks",
            f"carbon_sdk.ray.init() + {TASKS} tasks",
            sdk["seconds"],
            f'ray.init("ray://...") + {TASKS} tasks',
            plain["seconds"],
            ROUNDS,
            f"target <= 1.05x plain: {'met' if ratio <= 1.05 else 'MISSED'} ({ratio:.3f}x); "
            f"connect {sdk['connect_seconds']:.2f} s vs {plain['connect_seconds']:.2f} s; "
            f"head up in {startup:.1f} s, PSS {pss:.0f} MiB",
            tasks=TASKS,
            ratio=round(ratio, 3),
            connect_seconds={"sdk_init": sdk["connect_seconds"], "plain": plain["connect_seconds"]},
            all_seconds={a: r["all_seconds"] for a, r in results.items()},
            head_startup_seconds=round(startup, 1),
            head_memory_mib={
                "idle_pss": round(pss),
                "idle_rss_sum": round(rss),
                "after_runs_pss": round(loaded_pss),
                "after_runs_rss_sum": round(loaded_rss),
            },
            load_average=os.getloadavg()[0],
        )
    finally:
        stack.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()
