"""Trino's spooled protocol, read by the SDK: segments in, converted rows (e.g. Arrow) out.

The trino client's public segment API (``conn.cursor("segment")``) hands out the segments of a
result: inline ones carry their data, spooled ones a URI (plus ``headers`` to send with it, e.g.
the SSE-C key of an encrypted segment) and an acknowledgement URI. The client's own reader opens
a ``requests.Session`` per segment (no connection reuse, gzip asked for) and decodes with one
row mapper; this reader instead

* downloads and decompresses on a few threads, each with its own session (keep-alive,
  ``Accept-Encoding: identity``, the configured TLS verification, proxies and call bounds, no
  credentials) and its own zstd decompressor (one decompressor shared between threads corrupts
  data),
* decodes with msgspec (rows as tuples; straight to Python objects, where orjson first builds a
  document of about 8x the input's size: 125 MiB at peak for a 7.7 MB segment against 37 MiB),
  and runs the caller's ``convert`` (rows to Arrow) on the consuming thread,
  with Python's cyclic garbage collector paused meanwhile (see :data:`gc_paused`): decoding
  holds the GIL either way, and keeping every Arrow allocation on one thread lets the memory
  pool reuse what the previous segment freed (allocated on a worker and freed by the consumer,
  mimalloc kept about 28 MiB more of a streamed result),
* keeps at most ``workers + ahead`` segments fetched and not yet converted, in order, so memory
  stays bounded,
* acknowledges each spooled segment once converted, on a worker thread (unacknowledged ones stay
  in the storage until the server's TTL),
* and shuts its threads down however the consumer stops (error, ``break``, interrupt).

Imported only once the trino client (and so requests, zstandard, lz4, msgspec) is there.
"""

from __future__ import annotations

import gc
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any, TypeVar

import msgspec
import requests

T = TypeVar("T")
ENCODINGS = ("json+zstd", "json+lz4", "json")
# A segment is a JSON array of rows, each an array of the columns' JSON values.
_ROWS = msgspec.json.Decoder(list[tuple[Any, ...]])


class _GcPause:
    """Pause the cyclic garbage collector while any thread is inside.

    Decoding a segment allocates one tuple per row; every 700 new containers start a collection
    that walks the young rows, and the rows surviving into the older generations make full
    collections ever longer: measured on 100,000 ``tpch.orders`` rows, decoding plus Arrow
    conversion took 0.29 s with the collector paused against 1.24 s with it running. The rows
    hold no reference cycles (tuples, strings, numbers), so reference counting frees them all;
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
    """Reads the segments of one query: fetched on worker threads, decoded on the caller's.

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

    def fetch(self, index: int, decodable: Any) -> bytes:
        """The uncompressed JSON of one segment (a ``trino.client.DecodableSegment``):
        downloaded unless inline, then decompressed."""
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
        return self._decompress(decodable.encoding, data, segment)

    def read(
        self,
        segments: Iterable[Any],
        convert: Callable[[list[tuple[Any, ...]]], T],
        *,
        workers: int,
        ahead: int,
    ) -> Generator[T, None, None]:
        """``convert`` of each segment's rows, in order: segments fetched on ``workers``
        threads, at most ``workers + ahead`` of them fetched and not yet converted; decoded and
        converted on the calling thread (each as soon as it is fetched and the previous one
        yielded, also while the next segments are still being listed), then acknowledged on a
        worker thread. When the consumer stops early (``close()``, ``break``), pending fetches
        are cancelled and the acknowledgements of the segments it got still go out; after an
        error or an interrupt, acknowledgements not yet sent are dropped (those segments stay
        until the server's TTL). Either way the threads end before this returns."""
        pending: deque[tuple[Any, Future[bytes]]] = deque()
        pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="carbon-trino-segment")

        def converted(decodable: Any, fetched: Future[bytes]) -> T:
            data = fetched.result()
            with gc_paused:
                result = convert(_ROWS.decode(data))
            if getattr(decodable.segment, "uri", None) is not None:
                pool.submit(self._acknowledge, decodable.segment)
            return result

        abandoned = False
        try:
            for index, decodable in enumerate(segments):
                while pending and (pending[0][1].done() or len(pending) >= workers + ahead):
                    yield converted(*pending.popleft())
                pending.append((decodable, pool.submit(self.fetch, index, decodable)))
            while pending:
                yield converted(*pending.popleft())
        except GeneratorExit:
            raise
        except BaseException:
            abandoned = True
            raise
        finally:
            for _, future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=abandoned)

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
