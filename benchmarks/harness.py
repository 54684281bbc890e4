"""Shared benchmark mechanics: timing, the results JSON, and the summary table.

Every benchmark measures the SDK (``subject``) and the plain tool a user would otherwise call
(``baseline``) in the same run and records medians; ``speedup = baseline / subject``, so a value
above 1 means the SDK is faster.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
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
