"""The example notebooks run end to end against the test stack, as `make demo` runs them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

from carbon_sdk.dev.pytest_plugin import StackEnv

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
spec = importlib.util.spec_from_file_location("notebook_runner", NOTEBOOKS / "run.py")
assert spec and spec.loader
runner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runner)

pytestmark = [pytest.mark.stack, pytest.mark.slow]


# The servers a notebook declares start inside the test (Trino, Kafka, MLflow and Ray together
# take minutes on a busy 2-core machine), then every cell runs, each within runner.CELL_TIMEOUT.
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_runs(path: Path, stack_env: StackEnv, tmp_path: Path) -> None:
    needed = runner.services(path)
    assert needed, f"{path.name}: declare the stack services it needs in its metadata"
    stack_env(*needed)
    runner.execute(path, out_dir=tmp_path, html_dir=tmp_path / "html")
    # what `make demo` leaves in build/notebooks: the page with the executed cells' outputs
    executed = nbformat.read(tmp_path / path.name, as_version=4)
    assert any(cell.get("outputs") for cell in executed.cells)
    assert (tmp_path / "html" / f"{path.stem}.html").stat().st_size > 0
