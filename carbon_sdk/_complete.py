"""Tab completion of catalog, schema and table names inside ``%%trino`` cells.

``tpch.<TAB>`` lists the schemas of ``tpch``, ``tpch.tiny.<TAB>`` its tables, a bare word the
catalogs. Names are read from Trino (``show catalogs``, ``information_schema``) once per
catalog or schema and kept for the session; a lookup is bounded by short timeouts and one that
fails offers nothing, so completion never gets in the way.
"""

from __future__ import annotations

import functools
from typing import Any

BOUNDS: dict[str, Any] = {"connect_timeout": 2.0, "request_timeout": 5.0, "max_attempts": 1}


@functools.lru_cache(maxsize=256)
def children(qualifier: tuple[str, ...]) -> tuple[str, ...]:
    """The catalogs (no qualifier), the schemas of a catalog, or the tables of a schema."""
    from carbon_sdk import trino

    if not qualifier:
        frame = trino.query("show catalogs", progress=False, **BOUNDS)
    else:
        catalog = '"' + qualifier[0].replace('"', '""') + '"'
        if len(qualifier) == 1:
            sql = f"select schema_name from {catalog}.information_schema.schemata"
            frame = trino.query(sql, progress=False, **BOUNDS)
        else:
            sql = (
                f"select table_name from {catalog}.information_schema.tables where table_schema = ?"
            )
            frame = trino.query(sql, (qualifier[1],), progress=False, **BOUNDS)
    return tuple(sorted(str(name) for name in frame.iloc[:, 0]))


def names(token: str) -> list[str]:
    """Completions of ``token`` (``cat``, ``cat.sch`` or ``cat.sch.tab``, each part a prefix)."""
    *qualifier, stem = token.split(".")
    if len(qualifier) > 2:
        return []
    prefix = "".join(part + "." for part in qualifier)
    return [prefix + name for name in children(tuple(qualifier)) if name.startswith(stem)]


def trino_matcher(context: Any) -> dict[str, Any]:
    """An IPython completion matcher (API v2): names in the body of a ``%%trino`` cell."""
    from IPython.core.completer import SimpleCompletion

    in_cell = context.cursor_line > 0 and context.full_text.lstrip().startswith("%%trino")
    found: list[str] = []
    if in_cell:
        try:
            found = names(context.token)
        except Exception:  # unreachable, not configured...: no completions, no traceback
            found = []
    return {"completions": [SimpleCompletion(n, type="trino") for n in found], "suppress": False}


trino_matcher.matcher_api_version = 2  # type: ignore[attr-defined]
