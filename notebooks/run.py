"""Execute example notebooks end to end with nbclient, in the environment's ``python3`` kernel.

Usage: ``python notebooks/run.py [NOTEBOOK...]`` (default: every notebook here). The kernel
inherits this process's environment, so ``CARBON_PROFILE=dev`` (``make demo``) or the test
stack's ``CARBON_*`` variables decide which services the notebooks talk to. Executed copies go
to ``notebooks/executed/`` (not committed); exit code 1 if any notebook fails.
"""

from __future__ import annotations

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


def execute(path: Path, out_dir: Path = OUT) -> float:
    """Run every cell of ``path``; returns seconds taken, raises on the first failing cell."""
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
        out_dir.mkdir(exist_ok=True)
        nbformat.write(notebook, out_dir / path.name)
    return time.perf_counter() - started


def main(paths: list[str]) -> int:
    """Execute ``paths`` (default: all notebooks here) and print one line each."""
    notebooks = [Path(p) for p in paths] or sorted(HERE.glob("*.ipynb"))
    failed = 0
    for path in notebooks:
        try:
            seconds = execute(path)
        except nbclient.exceptions.CellExecutionError as exc:
            failed += 1
            print(f"FAILED {path.name}: {str(exc).strip().splitlines()[-1]}")
        else:
            print(f"ok     {path.name} ({seconds:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
