"""Execute example notebooks end to end with nbclient, in the environment's ``python3`` kernel.

Usage: ``python notebooks/run.py [--html DIR] [NOTEBOOK...]`` (default: every notebook here).
The kernel inherits this process's environment, so ``CARBON_PROFILE=dev`` (``make demo``) or the
test stack's ``CARBON_*`` variables decide which services the notebooks talk to. Executed copies
go to ``notebooks/executed/`` (not committed); with ``--html DIR`` (``make demo``: build/notebooks)
each is also written as ``DIR/<name>.html``, outputs included, failed ones too. Exit code 1 if
any notebook fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).parent
OUT = HERE / "executed"
CELL_TIMEOUT = 300


def services(path: Path) -> list[str]:
    """The stack services a notebook needs: its metadata ``{"carbon": {"services": [...]}}``."""
    notebook = nbformat.read(path, as_version=4)
    return list(notebook.metadata.get("carbon", {}).get("services", []))


def execute(path: Path, out_dir: Path = OUT, html_dir: Path | None = None) -> float:
    """Run every cell of ``path``; returns seconds taken, raises on the first failing cell.

    The executed notebook is written to ``out_dir`` (and as HTML to ``html_dir``) either way.
    """
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(HERE)}},
    )
    try:
        client.execute()
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, out_dir / path.name)
        if html_dir is not None:
            write_html(notebook, html_dir / f"{path.stem}.html")
    return time.perf_counter() - started


def write_html(notebook: nbformat.NotebookNode, target: Path) -> None:
    """``notebook`` with its outputs as a standalone HTML page (nbconvert's lab template)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")


def main(argv: list[str]) -> int:
    """Execute the notebooks named in ``argv`` (default: all here) and print one line each."""
    parser = argparse.ArgumentParser(description="Execute the example notebooks.")
    parser.add_argument("--html", type=Path, help="also write <DIR>/<name>.html with outputs")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(HERE.glob("*.ipynb"))
    failed = 0
    for path in notebooks:
        try:
            seconds = execute(path, html_dir=args.html)
        except nbclient.exceptions.CellExecutionError as exc:
            failed += 1
            print(f"FAILED {path.name}: {str(exc).strip().splitlines()[-1]}")
        else:
            print(f"ok     {path.name} ({seconds:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
