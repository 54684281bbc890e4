"""checkov on every rendering of the chart: no failed check without a written reason.

checkov runs from its own environment (``make chart-tools``: .tools/checkov), since its pins
would downgrade the project's locked packages. A check is skipped only in the manifest itself
(``checkov.io/skip<n>: CKV_...=<reason>`` annotation), so the reason is reviewed with the chart.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from chartlib import EXAMPLES, REPO, load_values, render_files

CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"


def _checkov() -> str:
    found = str(CHECKOV) if CHECKOV.is_file() else shutil.which("checkov")
    if not found:
        pytest.fail("checkov is not installed: run `make chart-tools`")
    return found


@pytest.mark.slow
def test_checkov_passes_on_rendered_manifests(tmp_path: Path) -> None:
    for values_file in [None, *EXAMPLES]:
        name = "default" if values_file is None else values_file.stem
        files = render_files(load_values(values_file))
        (tmp_path / f"{name}.yaml").write_text(
            "".join(f"---\n{body.strip()}\n" for _, body in sorted(files.items()) if body.strip())
        )
    proc = subprocess.run(
        [_checkov(), "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r["results"].get("failed_checks", [])
    ]
    skipped = [
        c
        for r in reports
        for c in r["results"].get("skipped_checks", [])
        if not c.get("suppress_comment")
    ]
    summary = [r["summary"] for r in reports]
    print("checkov:", summary)
    assert not failed, failed
    assert not skipped, f"skipped without a reason: {skipped}"
    assert sum(s["resource_count"] for s in summary) > 0
