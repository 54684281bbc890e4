"""The documentation's generated and stored files are current: the CLI reference, the API pages,
and the example notebooks, which are stored without outputs (``make demo`` renders them)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

import carbon_sdk

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_cli_reference_is_current() -> None:
    # a subprocess: the generator mounts `carbon-sdk dev` on the app, as the console script does
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "docs" / "cli_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _nav_pages(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in _nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return []


def test_every_public_module_has_an_api_page() -> None:
    # yaml.Loader: mkdocs.yml has !!python/name tags (the mermaid fence's formatter)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.Loader)
    pages = _nav_pages(config["nav"])
    documented = {
        line.removeprefix("::: ").strip()
        for page in pages
        if page.startswith("api/")
        for line in (ROOT / "docs" / page).read_text().splitlines()
        if line.startswith("::: ")
    }
    public = {"carbon_sdk"} | {
        f"carbon_sdk.{module.name}"
        for module in pkgutil.iter_modules(carbon_sdk.__path__)
        if not module.name.startswith("_") and module.name not in {"cli", "dev"}
    }
    missing = public - documented
    assert not missing, f"add docs/api/<module>.md (`::: <module>`) and a nav entry for {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} carry outputs or execution counts; clear them "
        f"(`jupyter nbconvert --clear-output --inplace {path.relative_to(ROOT)}`)"
    )
    assert notebook.metadata.get("carbon", {}).get("services"), (
        f"{path.name}: declare the stack services it needs in its metadata "
        '{"carbon": {"services": [...]}}'
    )
