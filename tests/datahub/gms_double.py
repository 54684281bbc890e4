"""A contract test double of DataHub GMS: only the endpoints carbon-sdk's DataHub client calls.

No DataHub server can run on the test machines (GMS needs Java plus search and storage
services, shipped as container images), so the GMS path is tested against this double. It is
not a DataHub: it stores the aspects it is sent and returns them, and checks every request
against the shapes acryl-datahub 1.7 was recorded sending:

- every request: ``X-RestLi-Protocol-Version: 2.0.0``; every request but ``GET /config``:
  ``Authorization: Bearer <token>`` (else 401, as GMS with token auth answers);
- ``GET /config``: ``noCode`` and ``versions["acryldata/datahub"].version``;
- ``POST /aspects?action=ingestProposal``: ``{"proposal": {...}, "async": "false"}``;
- ``POST /aspects?action=ingestProposalBatch``: ``{"proposals": [...], "async": "false"}``;
- each proposal: ``entityType, entityUrn, changeType: UPSERT, aspectName,
  aspect: {value: <JSON text>, contentType: application/json}`` (+ ``systemMetadata``);
- ``GET /aspects/{urlencoded urn}?aspect=X&version=0``: the aspect, or 404;
- ``POST /api/graphql``: the two operations carbon-sdk sends (``carbonSearch``,
  ``carbonWhoAmI``).

Anything else is answered 404. A request of the wrong shape is answered 400 and recorded in
:attr:`GmsDouble.violations`, which the fixture asserts empty.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

VERSION = "v1.3.0-double"
PROPOSAL_KEYS = {"entityType", "entityUrn", "changeType", "aspectName", "aspect"}
# the aspect types GET /aspects is asked for, as acryl-datahub names them in replies
ASPECT_TYPES = {
    "upstreamLineage": "com.linkedin.dataset.UpstreamLineage",
    "schemaMetadata": "com.linkedin.schema.SchemaMetadata",
    "globalTags": "com.linkedin.common.GlobalTags",
    "editableDatasetProperties": "com.linkedin.dataset.EditableDatasetProperties",
    "datasetProperties": "com.linkedin.dataset.DatasetProperties",
}


class ContractViolation(Exception):
    """A request that does not have the recorded shape."""


class GmsDouble:
    """The double, serving on ``127.0.0.1`` on a free port (``url``) in a thread."""

    def __init__(self, token: str | None, user: str = "datahub") -> None:
        self.token = token
        self.user = user
        self.aspects: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path with query)
        self.violations: list[str] = []
        self.delay = 0.0  # seconds to stall every request (an overloaded GMS)
        self.unavailable = 0  # the next n requests are answered 503 (GMS restarting)
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                double._handle(self, "GET")

            def do_POST(self) -> None:
                double._handle(self, "POST")

            def do_PUT(self) -> None:
                double._handle(self, "PUT")

            def do_DELETE(self) -> None:
                double._handle(self, "DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: the port refuses connections from now on."""
        self._server.shutdown()
        self._server.server_close()

    # ---- what tests read ---------------------------------------------------------------

    def aspect(self, urn: str, name: str) -> dict[str, Any] | None:
        """The stored value of one aspect (as sent: JSON), or None."""
        with self._lock:
            return self.aspects.get((urn, name))

    def paths(self) -> list[str]:
        """Method and path of every request received, in order."""
        with self._lock:
            return [f"{method} {path}" for method, path in self.requests]

    # ---- serving -----------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self.requests.append((method, handler.path))
        if self.delay:
            time.sleep(self.delay)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if len(raw) < length:  # the connection was cut mid-body: nothing arrived, no answer
            return
        with self._lock:
            restarting, self.unavailable = self.unavailable > 0, max(0, self.unavailable - 1)
        try:
            if restarting:
                status, body = 503, {"message": "GMS is restarting", "status": 503}
            else:
                status, body = self._route(handler, method, raw)
        except ContractViolation as exc:
            with self._lock:
                self.violations.append(f"{method} {handler.path}: {exc}")
            status, body = 400, {"message": f"contract violation: {exc}", "status": 400}
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _route(
        self, handler: BaseHTTPRequestHandler, method: str, raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        url = urlsplit(handler.path)
        query = parse_qs(url.query)
        if handler.headers.get("X-RestLi-Protocol-Version") != "2.0.0":
            raise ContractViolation("no X-RestLi-Protocol-Version: 2.0.0 header")
        if method == "GET" and url.path == "/config":
            return 200, {
                "noCode": "true",
                "versions": {"acryldata/datahub": {"version": VERSION, "commit": "0" * 40}},
            }
        known = (
            (
                method == "POST"
                and url.path == "/aspects"
                and query.get("action")
                in (
                    ["ingestProposal"],
                    ["ingestProposalBatch"],
                )
            )
            or (method == "GET" and url.path.startswith("/aspects/"))
            or (method == "POST" and url.path == "/api/graphql")
        )
        if not known:
            return 404, {"message": f"no such endpoint: {method} {url.path}", "status": 404}
        if handler.headers.get("Authorization") != f"Bearer {self.token}" or not self.token:
            return 401, {"message": "Unauthorized to perform this action.", "status": 401}
        if method == "GET":
            return self._get_aspect(url.path, query)
        body = self._json(raw)
        if url.path == "/api/graphql":
            return self._graphql(body)
        if query["action"] == ["ingestProposal"]:
            if set(body) != {"proposal", "async"} or body["async"] != "false":
                raise ContractViolation(f"ingestProposal body keys {sorted(body)}")
            self._store(body["proposal"])
            return 200, {"value": body["proposal"]["entityUrn"]}
        if set(body) != {"proposals", "async"} or not isinstance(body["proposals"], list):
            raise ContractViolation(f"ingestProposalBatch body keys {sorted(body)}")
        if body["async"] != "false":
            raise ContractViolation(f"ingestProposalBatch async={body['async']}")
        for proposal in body["proposals"]:
            self._store(proposal)
        return 200, {"value": [p["entityUrn"] for p in body["proposals"]]}

    @staticmethod
    def _json(raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            raise ContractViolation("body is not JSON") from None
        if not isinstance(body, dict):
            raise ContractViolation("body is not a JSON object")
        return body

    def _store(self, proposal: dict[str, Any]) -> None:
        if not PROPOSAL_KEYS <= set(proposal) <= PROPOSAL_KEYS | {"systemMetadata"}:
            raise ContractViolation(f"proposal keys {sorted(proposal)}")
        if proposal["changeType"] != "UPSERT":
            raise ContractViolation(f"changeType {proposal['changeType']}")
        aspect = proposal["aspect"]
        if aspect.get("contentType") != "application/json" or "value" not in aspect:
            raise ContractViolation("aspect is not {value, contentType: application/json}")
        urn = proposal["entityUrn"]
        if not urn.startswith(f"urn:li:{proposal['entityType']}:"):
            raise ContractViolation(f"entityType {proposal['entityType']} for {urn}")
        with self._lock:
            self.aspects[(urn, proposal["aspectName"])] = json.loads(aspect["value"])

    def _get_aspect(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if query.get("version") != ["0"] or len(query.get("aspect", [])) != 1:
            raise ContractViolation(f"GET /aspects query {query}")
        encoded = path.removeprefix("/aspects/")
        if "(" in encoded or "," in encoded:
            raise ContractViolation("the URN in the path is not URL-encoded")
        urn, name = unquote(encoded), query["aspect"][0]
        if name not in ASPECT_TYPES:
            raise ContractViolation(f"aspect {name} is not one the client reads")
        value = self.aspect(urn, name)
        if value is None:
            return 404, {"message": f"{urn} has no {name}", "status": 404}
        return 200, {"aspect": {ASPECT_TYPES[name]: value}, "version": 0}

    def _graphql(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        operation = body.get("operationName")
        if operation == "carbonWhoAmI":
            if "me" not in body.get("query", ""):
                raise ContractViolation("carbonWhoAmI without `me`")
            user = {"urn": f"urn:li:corpuser:{self.user}", "username": self.user}
            return 200, {"data": {"me": {"corpUser": user}}}
        if operation == "carbonSearch":
            given = (body.get("variables") or {}).get("input") or {}
            if set(given) != {"types", "query", "start", "count"}:
                raise ContractViolation(f"search input keys {sorted(given)}")
            if "searchAcrossEntities" not in body.get("query", ""):
                raise ContractViolation("carbonSearch without searchAcrossEntities")
            return 200, {"data": {"searchAcrossEntities": self._search(given)}}
        return 404, {"message": f"no such operation {operation}", "status": 404}

    def _search(self, given: dict[str, Any]) -> dict[str, Any]:
        prefixes = {"DATASET": "urn:li:dataset:", "DATA_JOB": "urn:li:dataJob:"}
        wanted = tuple(prefixes[t] for t in given["types"] if t in prefixes)
        text = "" if given["query"] == "*" else given["query"].lower()
        with self._lock:
            urns = sorted({u for u, _ in self.aspects if u.startswith(wanted)})
            hits = []
            for urn in urns:
                props = self.aspects.get((urn, "datasetProperties")) or {}
                if text and text not in urn.lower() and text not in str(props.get("name", "")):
                    continue
                platform = urn.split("urn:li:dataPlatform:")[-1].split(",")[0]
                entity = {
                    "urn": urn,
                    "type": "DATASET",
                    "name": urn.split(",")[1] if "," in urn else urn,
                    "platform": {"name": platform},
                    "properties": {"name": props.get("name"), "description": None}
                    if props
                    else None,
                }
                hits.append({"entity": entity})
        page = hits[given["start"] : given["start"] + given["count"]]
        return {"total": len(hits), "searchResults": page}
