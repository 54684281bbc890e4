#!/usr/bin/env python3
"""Export image/requirements.txt from uv.lock: `carbon-sdk[all]` plus the `image` group.

    python image/export_requirements.py           # write image/requirements.txt
    python image/export_requirements.py --check   # exit 1 (with a diff) when it is stale

`make image-requirements` runs the first; the test suite runs the second. The file is never
edited by hand: after a merge that changes pyproject.toml or uv.lock, run the make target.
The export is universal (environment markers kept, every wheel's hash listed); pip picks the
lines whose markers match the image's Python (3.13, linux) at install time.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "image" / "requirements.txt"
EXPORT_ARGS = (
    "export",
    "--frozen",
    "--format",
    "requirements-txt",
    "--no-default-groups",
    "--extra",
    "all",
    "--group",
    "image",
    "--no-emit-project",
    "--no-header",
)
HEADER = """\
# GENERATED from uv.lock by `make image-requirements` (image/export_requirements.py): do not edit.
# carbon-sdk[all] and the `image` dependency group (jupyterhub 5.5.x), hash-pinned, for
# `pip install --require-hashes --only-binary :all: -r requirements.txt` in image/Dockerfile.
# uv {args}
"""


def uv() -> str:
    """$UV, else the uv the Makefile installs (.tools/bin/uv), else PATH's."""
    pinned = str(ROOT / ".tools" / "bin" / "uv")
    for candidate in (os.environ.get("UV"), pinned, shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    sys.exit("uv not found: run `make install` (it installs uv into .tools/)")


def export() -> str:
    """The requirements file's text, freshly exported from the lock."""
    result = subprocess.run(
        [uv(), *EXPORT_ARGS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"uv export failed:\n{result.stderr}")
    return HEADER.format(args=" ".join(EXPORT_ARGS)) + result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--output", type=Path, default=TARGET, help="the file to write or check")
    args = parser.parse_args(argv)
    fresh = export()
    current = args.output.read_text() if args.output.exists() else ""
    if args.check:
        if current == fresh:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            fresh.splitlines(keepends=True),
            str(args.output),
            "fresh export from uv.lock",
            n=1,
        )
        sys.stderr.writelines(list(diff)[:200])
        print(
            f"\n{args.output} is stale (or was edited by hand): run `make image-requirements`",
            file=sys.stderr,
        )
        return 1
    if current != fresh:
        args.output.write_text(fresh)
        print(f"wrote {args.output.relative_to(ROOT)}")
    else:
        print(f"{args.output.relative_to(ROOT)} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
