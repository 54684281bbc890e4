"""docs/reliability.md holds a complete, current run: every connector in the fault table, the
hypothesis totals and the canary sweep with no leak (regenerate with `make reliability`)."""

from __future__ import annotations

import re
from pathlib import Path

from carbon_sdk._registry import CONNECTORS

from .report import DOC_END, DOC_START, Fault, Results
from .test_faults import CALLS, KNOWN_GAPS

DOC = Path(__file__).parents[2] / "docs" / "reliability.md"


def generated() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split(DOC_START, 1)[1].split(DOC_END, 1)[0]


def test_every_connector_has_a_row_with_three_faults() -> None:
    assert set(CALLS) == set(CONNECTORS)
    rows = {line.split("|")[1].strip(): line for line in generated().splitlines() if "`" in line}
    assert set(rows) >= set(CONNECTORS), "run `make reliability`"
    for service, line in rows.items():
        assert line.count("`") == 6, f"{service}: a fault missing, run `make reliability`"


def test_known_gaps_are_the_cells_over_their_bound() -> None:
    over = set()
    for line in generated().splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 4 and "`" in line:
            over |= {
                (cells[0], f)
                for f, c in zip(("garbage", "hang", "stopped"), cells[1:], strict=True)
                if "over" in c
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
