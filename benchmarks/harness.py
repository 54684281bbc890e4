"""Shared benchmark mechanics: timing, fresh-process runs, the results JSON, and the summary table.

Every benchmark measures the SDK (``subject``) and the plain tool a user would otherwise call
(``baseline``) in the same run and records medians; ``speedup = baseline / subject``, so a value
above 1 means the SDK is faster.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
FIELDS = ("name", "subject", "subject_seconds", "baseline", "baseline_seconds", "speedup", "n")


def seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call of ``fn``."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def command_seconds(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one run of ``argv`` (output discarded; failure raises)."""
    return seconds(lambda: subprocess.run(argv, check=False, capture_output=True, env=env))


def interleaved_medians(
    subject: Callable[[], float], baseline: Callable[[], float], n: int
) -> tuple[float, float]:
    """Medians of ``n`` alternating runs of two timed callables (drift hits both alike)."""
    subject_times, baseline_times = [], []
    for _ in range(n):
        subject_times.append(subject())
        baseline_times.append(baseline())
    return statistics.median(subject_times), statistics.median(baseline_times)


# ---- one approach per fresh process ------------------------------------------------------------
#
# A benchmark script that measures approaches in isolation runs itself as
# ``python <script> child <approach>``: the child imports what the approach needs, times one run
# with ``child_main`` and prints one JSON line; the parent collects those lines with ``run_child``
# / ``round_robin``. Imports and peak RSS so belong to that approach alone.


def maxrss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mib(field: str) -> float | None:
    """A ``/proc/self/status`` size field (``VmRSS``, ``VmHWM``) in MiB; None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> float:
    """Start a new peak-RSS window and return the RSS now, in MiB.

    On Linux, writing ``5`` to ``/proc/self/clear_refs`` resets the high-water mark (``VmHWM``)
    to the current RSS, so :func:`peak_rss_mib` then reports the peak of what ran since, not of
    the imports before it. Elsewhere the window is the whole process (``ru_maxrss``).
    """
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return maxrss_mib()
    return _status_mib("VmRSS") or maxrss_mib()


def peak_rss_mib() -> float:
    """Peak RSS since the last :func:`reset_peak_rss` (Linux) or of the process, in MiB."""
    return _status_mib("VmHWM") or maxrss_mib()


def child_main(run: Callable[[], int], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Child side: time one call of ``run`` and print its measurements as one JSON line.

    ``run`` returns the number of rows it handled; only the call itself is timed (do imports and
    setup before). The line holds ``seconds``, ``rows``, ``peak_rss_mib`` (the peak during the
    call) and ``rss_before_mib`` (RSS just before it), then the items of ``extra``, read *after*
    the call, so ``run`` may fill a dict passed here (e.g. ``batch_mib``). Returns the printed
    dict.
    """
    rss_before = reset_peak_rss()
    started = time.perf_counter()
    rows = run()
    took = time.perf_counter() - started
    result = {"seconds": took, "rows": rows, "peak_rss_mib": peak_rss_mib()}
    result = result | {"rss_before_mib": rss_before} | dict(extra or {})
    print(json.dumps(result))
    return result


def run_child(script: str | Path, approach: str, env: dict[str, str]) -> dict[str, Any]:
    """Run ``python <script> child <approach>`` in a fresh process; return its last JSON line.

    A non-zero exit raises ``RuntimeError`` with the tail of the child's stderr.
    """
    done = subprocess.run(
        [sys.executable, str(script), "child", approach],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{approach} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_of(digits: int) -> Callable[[list[Any]], float]:
    """A ``round_robin`` ``keep`` aggregator: the median of the rounds, rounded to ``digits``."""
    return lambda values: round(statistics.median(values), digits)


def first_of(digits: int) -> Callable[[list[Any]], float]:
    """A ``round_robin`` ``keep`` aggregator: the first round's value, rounded to ``digits``."""
    return lambda values: round(values[0], digits)


def round_robin(
    script: str | Path,
    approaches: Sequence[str],
    env: dict[str, str],
    rounds: int,
    *,
    digits: int = 4,
    keep: Mapping[str, Callable[[list[Any]], Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every approach once per round, interleaved (drift hits all alike); summarise each.

    Each run is ``run_child(script, approach, env)``; a progress line per run goes to stderr.
    Per approach the summary holds ``seconds`` (median, rounded to ``digits``), ``peak_rss_mib``
    and ``rss_growth_mib`` (medians of peak RSS and of peak minus ``rss_before_mib``, 0.1 MiB),
    ``rows`` (of the first round) and ``all_seconds`` (every round, rounded to ``digits``).
    ``keep`` maps further child fields to an aggregator of their per-round values (see
    ``median_of`` / ``first_of``); a field is kept only for approaches whose first run has it.
    """
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in approaches}
    for i in range(rounds):
        for approach in approaches:
            result = run_child(script, approach, env)
            runs[approach].append(result)
            print(
                f"  round {i + 1} {approach}: {result['seconds']:.{digits - 1}f} s, "
                f"peak RSS {result['peak_rss_mib']:.0f} MiB",
                file=sys.stderr,
            )
    summaries: dict[str, dict[str, Any]] = {}
    for approach, rs in runs.items():
        summary: dict[str, Any] = {
            "seconds": round(statistics.median(r["seconds"] for r in rs), digits),
            "peak_rss_mib": round(statistics.median(r["peak_rss_mib"] for r in rs), 1),
            "rss_growth_mib": round(
                statistics.median(r["peak_rss_mib"] - r["rss_before_mib"] for r in rs), 1
            ),
            "rows": rs[0]["rows"],
            "all_seconds": [round(r["seconds"], digits) for r in rs],
        }
        for field, aggregate in (keep or {}).items():
            if field in rs[0]:
                summary[field] = aggregate([r[field] for r in rs])
        summaries[approach] = summary
    return summaries


def record(
    name: str,
    subject: str,
    subject_seconds: float,
    baseline: str,
    baseline_seconds: float,
    n: int,
    notes: str = "",
    **extra: Any,
) -> Path:
    """Write ``results/<name>.json`` and refresh ``results/SUMMARY.md``; returns the JSON path."""
    RESULTS.mkdir(exist_ok=True)
    document = {
        "name": name,
        "subject": subject,
        "subject_seconds": round(subject_seconds, 6),
        "baseline": baseline,
        "baseline_seconds": round(baseline_seconds, 6),
        "speedup": round(baseline_seconds / subject_seconds, 3),
        "n": n,
        "notes": notes,
        **extra,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    write_summary()
    print(f"{name}: {subject} {subject_seconds:.4f} s vs {baseline} {baseline_seconds:.4f} s")
    return path


def write_summary() -> Path:
    """Regenerate the markdown table of every result file."""
    lines = [
        "# Benchmark results",
        "",
        "| name | subject | s | baseline | s | speedup | n | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        lines.append(
            f"| {r['name']} | {r['subject']} | {r['subject_seconds']:.4f} | {r['baseline']} | "
            f"{r['baseline_seconds']:.4f} | {r['speedup']:.2f} | {r['n']} | {r['notes']} |"
        )
    summary = RESULTS / "SUMMARY.md"
    summary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return summary
