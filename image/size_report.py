#!/usr/bin/env python3
"""What the carbon layer adds: the installed size of every distribution in this environment.

    python image/size_report.py [--json] [--top N]

Run it with the interpreter of an environment holding exactly the image's set (the tests'
Python 3.13 venv, see tests/image/_venv.py): the total is then the size of the carbon layer
on top of an empty base. It is an upper bound for the image: packages the Docker Stacks base
already has at the same version are not written again by pip.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from pathlib import Path


def sizes() -> dict[str, int]:
    """Bytes on disk of each installed distribution's files (RECORD), by project name."""
    result: dict[str, int] = {}
    for dist in metadata.distributions():
        total = 0
        for file in dist.files or ():
            path = Path(str(dist.locate_file(file)))
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        name = dist.metadata["Name"]
        result[name] = result.get(name, 0) + total
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--top", type=int, default=10, help="how many of the largest to list")
    args = parser.parse_args(argv)
    found = sizes()
    ranked = sorted(found.items(), key=lambda item: -item[1])
    total = sum(found.values())
    if args.json:
        top = [{"name": n, "bytes": b} for n, b in ranked[: args.top]]
        print(json.dumps({"total_bytes": total, "count": len(found), "top": top}, indent=2))
        return 0
    print(f"{len(found)} distributions, {total / 1e6:,.0f} MB installed")
    for name, size in ranked[: args.top]:
        print(f"{size / 1e6:10,.1f} MB  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
