"""docs/reliability.md holds a complete, current run: every connector in the fault table, the
hypothesis totals and the canary sweep with no leak (regenerate with `make reliability`)."""

from __future__ import annotations

import re
from pathlib import Path

from bench_load import OPERATIONS

from carbon_sdk._registry import CONNECTORS

from .report import DOC_END, DOC_START, Fault, Results
from .test_faults import CALLS, KNOWN_GAPS

DOC = Path(__file__).parents[2] / "docs" / "reliability.md"


def generated() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split(DOC_START, 1)[1].split(DOC_END, 1)[0]


# Killed (or stopped) in the middle of an operation, tested where each server is started:
# tests/postgres (the writer's backend terminated mid-COPY), tests/s3 (the connection cut
# mid-upload), tests/trino (the server killed mid-query), tests/kafka (the broker stopped
# mid-publish), tests/mlflow (the server gone mid-run), tests/datahub (a batch emit cut
# mid-body), tests/ray (the head killed during a ray.get).
MID_OPERATION = {"postgres", "s3", "trino", "kafka", "mlflow", "datahub", "ray"}


def fault_table() -> dict[str, dict[str, str]]:
    """The generated fault table: service -> fault -> cell."""
    section = generated().split("### Faults", 1)[1].split("###", 1)[0]
    lines = [line for line in section.splitlines() if "|" in line]
    header = [c.strip() for c in lines[0].split("|")[2:-1]]
    return {
        cells[0]: dict(zip(header, cells[1:], strict=True))
        for line in lines[2:]
        for cells in [[c.strip() for c in line.split("|")[1:-1]]]
    }


def test_every_connector_has_a_row_with_three_faults() -> None:
    assert set(CALLS) == set(CONNECTORS)
    table = fault_table()
    assert set(table) >= set(CONNECTORS), "run `make reliability`"
    for service, cells in table.items():
        for fault in ("garbage", "hang", "stopped"):
            assert "`" in cells[fault], f"{service} {fault} missing, run `make reliability`"


def test_faults_mid_operation_are_reported() -> None:
    table = fault_table()
    for service in MID_OPERATION:
        assert "`" in table[service]["killed mid-operation"], f"{service}: run `make reliability`"


def test_known_gaps_are_the_cells_over_their_bound() -> None:
    over = {
        (service, fault)
        for service, cells in fault_table().items()
        for fault, cell in cells.items()
        if "over" in cell
    }
    assert over == set(KNOWN_GAPS), "run `make reliability`"


def test_tls_matrix_is_reported() -> None:
    from .test_tls import MATRIX

    tls = generated().split("### TLS", 1)[1].split("###", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in tls.splitlines() if "| connects |" in line}
    assert set(rows) == set(MATRIX), "run `make reliability`"
    for section, line in rows.items():
        assert f"TLSError, names {section}.ca_bundle" in line, line


def test_canary_sweep_and_hypothesis_are_reported() -> None:
    text = generated()
    assert re.search(r"canary sweep: \d+ checks over \d+ outputs, 0 leaks", text), text
    match = re.search(r"\*\*total\*\* \| \*\*(\d+)\*\*", text)
    assert match and int(match.group(1)) > 1000, text


def test_render_rounds_up_and_marks_cells_over_their_bound() -> None:
    results = Results()
    results.faults[("s3", "hang")] = Fault("Unreachable", 1.01, 3.0)
    results.faults[("s3", "stopped")] = Fault("Unreachable", 4.0, 1.0)
    text = results.render(None)
    assert "| s3 | `Unreachable` 1.1 s (< 3) | `Unreachable` **4.0 s, over 1** |" in text


def test_load_figures_are_reported() -> None:
    text = generated().split("### Load", 1)[1]
    assert re.search(r"50 clients .* 0 errors", text), text
    for operation in OPERATIONS:
        assert f"| {operation} |" in text, f"{operation}: run `make reliability`"
