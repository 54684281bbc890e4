"""Trino's spooled protocol, read by the SDK: segments in, rows (the server's JSON values) out.

The trino client's public segment API (``conn.cursor("segment")``) hands out the segments of a
result: inline ones carry their data, spooled ones a URI (plus ``headers`` to send with it, e.g.
the SSE-C key of an encrypted segment) and an acknowledgement URI. The client's own reader opens
a ``requests.Session`` per segment (no connection reuse, gzip asked for) and decodes with one
row mapper; this reader instead

* downloads on a few threads, each with its own session (keep-alive, ``Accept-Encoding:
  identity``, the configured TLS verification, proxies and call bounds, no credentials) and its
  own zstd decompressor
  (one decompressor shared between threads corrupts data),
* decodes with orjson, and runs the caller's ``convert`` (rows to Arrow) on the same thread,
  with Python's cyclic garbage collector paused meanwhile (see :data:`gc_paused`),
* keeps at most ``workers + ahead`` segments in flight, in order, so memory stays bounded,
* acknowledges each spooled segment once decoded (unacknowledged ones stay in the storage
  until the server's TTL),
* and shuts its threads down however the consumer stops (error, ``break``, interrupt).

Imported only once the trino client (and so requests, zstandard, lz4, orjson) is there.
"""

from __future__ import annotations

import gc
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any, TypeVar

import orjson
import requests

T = TypeVar("T")
ENCODINGS = ("json+zstd", "json+lz4", "json")


class _GcPause:
    """Pause the cyclic garbage collector while any thread is inside.

    Decoding a segment allocates one list per row; every 700 new containers start a collection
    that walks the young rows, and the rows surviving into the older generations make full
    collections ever longer: measured on 100,000 ``tpch.orders`` rows, decoding plus Arrow
    conversion took 0.29 s with the collector paused against 1.24 s with it running. The rows
    hold no reference cycles (lists, strings, numbers), so reference counting frees them all;
    the collector's state is restored when the last thread leaves, unless someone else turned
    it off first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._holders += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0 and self._was_enabled:
                gc.enable()


gc_paused = _GcPause()


class SegmentUnavailable(Exception):
    """A spooled segment could not be downloaded (HTTP status, or no answer)."""

    def __init__(self, index: int, status: int | None, reason: str) -> None:
        super().__init__(f"segment {index}: {reason}")
        self.index = index
        self.status = status
        self.reason = reason


class SegmentReader:
    """Downloads and decodes segments; one per query, used from the worker threads.

    ``session_factory`` makes a configured ``requests.Session`` (one per thread). No request
    carries the user's credentials: like the client's own reader, segment and acknowledgement
    URIs carry their authorization themselves (pre-signed storage URLs, or coordinator URIs
    signed with the server's shared secret), plus the segment's ``headers``.
    """

    def __init__(self, session_factory: Callable[[], requests.Session]) -> None:
        self._session_factory = session_factory
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._session_factory()
            session.auth = None
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _get(self, uri: str, headers: dict[str, list[str]]) -> requests.Response:
        sent = {key: values[0] for key, values in headers.items() if values}
        return self._session().get(uri, headers=sent)

    def decode(self, index: int, decodable: Any, convert: Callable[[list[list[Any]]], T]) -> T:
        """``convert`` of the rows of one segment (a ``trino.client.DecodableSegment``); the
        segment is acknowledged once converted."""
        segment = decodable.segment
        uri = getattr(segment, "uri", None)
        if uri is None:  # inline: the data came with the response
            data = segment.data
        else:
            try:
                response = self._get(uri, segment.headers)
            except requests.RequestException as exc:
                raise SegmentUnavailable(index, None, str(exc)) from exc
            if response.status_code != 200:
                raise SegmentUnavailable(index, response.status_code, response.reason or "")
            data = response.content
        with gc_paused:
            converted = convert(orjson.loads(self._decompress(decodable.encoding, data, segment)))
        if uri is not None:
            self._acknowledge(segment)
        return converted

    def _decompress(self, encoding: str, data: bytes, segment: Any) -> bytes:
        size = (segment.metadata or {}).get("uncompressedSize")
        if size is None or encoding == "json":  # small segments are sent uncompressed
            return data
        if encoding == "json+zstd":
            decompressor = getattr(self._local, "zstd", None)
            if decompressor is None:
                import zstandard

                decompressor = self._local.zstd = zstandard.ZstdDecompressor()
            out: bytes = decompressor.decompress(data, max_output_size=int(size))
            return out
        if encoding == "json+lz4":
            import lz4.block

            block: bytes = lz4.block.decompress(data, uncompressed_size=int(size))
            return block
        raise ValueError(f"unsupported spooling encoding {encoding!r}")

    def _acknowledge(self, segment: Any) -> None:
        """Tell the server the segment may go; a failed acknowledgement only costs storage
        until the segment's TTL, so it is not an error."""
        with suppress(requests.RequestException):
            self._get(segment.ack_uri, segment.headers).close()

    def close(self) -> None:
        """Close every thread's session."""
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()


def ordered(
    work: Callable[[int, Any], T], items: Iterable[Any], workers: int, ahead: int
) -> Iterator[T]:
    """``work(index, item)`` for every item on ``workers`` threads, results in order, with at
    most ``workers + ahead`` items taken from ``items`` and not yet yielded. When the consumer
    stops or an item fails, pending work is cancelled and the threads end before this returns."""
    pending: deque[Future[T]] = deque()
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="carbon-trino-segment")
    try:
        for index, item in enumerate(items):
            pending.append(pool.submit(work, index, item))
            while len(pending) > workers + ahead - 1:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
