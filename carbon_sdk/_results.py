"""What a query reports besides its rows: the service, row count, elapsed time, query id, link.

``trino.query`` and ``postgres.query`` keep returning plain tables (a pandas DataFrame by
default: what users expect and what every library takes). The report rides along where pandas
keeps metadata, ``DataFrame.attrs["carbon"]`` (a JSON-ready dict, so ``to_parquet`` still
works); Arrow tables and polars DataFrames have no such slot. The ``%%trino``/``%%postgres``
magics read the report of any format through :func:`capture` and show it above the table.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from html import escape
from typing import Any, TypeVar

ATTRS_KEY = "carbon"
T = TypeVar("T")


@dataclass(frozen=True, repr=False)
class QueryInfo:
    """One query's report: shown as a header line in notebooks (``_repr_html_``)."""

    service: str
    rows: int
    elapsed_s: float
    query_id: str | None = None
    url: str | None = None
    protocol: str | None = None  # Trino: "spooled" or "direct"

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON values (what ``DataFrame.attrs["carbon"]`` holds)."""
        return asdict(self)

    def __str__(self) -> str:
        text = f"{self.service}: {self.rows:,} rows in {self.elapsed_s:.2f} s"
        if self.query_id:
            text += f", query {self.query_id}"
        if self.protocol:
            text += f", {self.protocol} protocol"
        return text + (f" ({self.url})" if self.url else "")

    __repr__ = __str__

    def _repr_html_(self) -> str:
        text = escape(f"{self.service}: {self.rows:,} rows in {self.elapsed_s:.2f} s")
        if self.query_id:
            query = escape(self.query_id)
            if self.url:
                query = f"<a href='{escape(self.url)}' target='_blank'>{query}</a>"
            text += f", query {query}"
        if self.protocol:
            text += f", {escape(self.protocol)} protocol"
        return f"<small style='color:gray'>{text}</small>"


_local = threading.local()


@contextmanager
def capture() -> Iterator[list[QueryInfo]]:
    """Collect the reports of the queries this thread completes inside the block."""
    stack: list[list[QueryInfo]] = _local.__dict__.setdefault("stack", [])
    reports: list[QueryInfo] = []
    stack.append(reports)
    try:
        yield reports
    finally:
        stack.remove(reports)


def report(
    result: T,
    service: str,
    started: float,
    query_id: str | None = None,
    url: str | None = None,
    *,
    protocol: str | None = None,
) -> T:
    """Record the report of a query that returned ``result`` (begun at ``perf_counter()``
    ``started``): in ``result.attrs`` for a pandas DataFrame, and for active :func:`capture`."""
    elapsed = time.perf_counter() - started
    info = QueryInfo(service, len(result), elapsed, query_id, url, protocol)  # type: ignore[arg-type]
    if type(result).__module__.startswith("pandas"):
        result.attrs[ATTRS_KEY] = info.to_dict()  # type: ignore[attr-defined]
    for reports in _local.__dict__.get("stack", ()):
        reports.append(info)
    return result
