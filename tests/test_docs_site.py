"""The documentation site builds with ``mkdocs build --strict`` (broken links, pages missing from
the nav, docstrings mkdocstrings cannot render all fail it), as ``make docs`` builds it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    for page in ("index.html", "quickstart/index.html", "api/trino/index.html"):
        assert (site / page).is_file(), page
    assert "mermaid" in (site / "architecture" / "index.html").read_text()
