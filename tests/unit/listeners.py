"""Deliberately broken TCP endpoints on 127.0.0.1 for the connectors' real client libraries:
one that refuses, one that accepts and never answers, one that answers garbage, and a proxy to a
real server that cuts large transfers mid-stream."""

from __future__ import annotations

import socket
import struct
import threading
from contextlib import closing
from typing import Any


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Endpoint:
    """A listening socket on 127.0.0.1 that treats every connection with ``behaviour``:
    ``"hang"`` accepts and never answers, ``"garbage"`` answers bytes of no protocol,
    ``"unavailable"`` answers any HTTP request with ``503 Service Unavailable``."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.behaviour == "garbage":
                conn.sendall(b"\x00\xffNOT A PROTOCOL\r\n\r\n" * 4)
                conn.close()
            elif self.behaviour == "unavailable":
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                conn.close()
            else:  # "hang": accept, keep the connection open, never answer
                self.held.append(conn)

    @property
    def accepted(self) -> int:
        """How many connections the endpoint has accepted."""
        return self.connections

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class Proxy:
    """A TCP forwarder on 127.0.0.1 to a real server at ``127.0.0.1:upstream``.

    ``stop()`` takes it down (every connection reset), ``start()`` brings it back on the same
    port. With ``cut_after``, once that many bytes have gone upstream it resets every
    connection as soon as it carries more than ``small`` bytes more: large requests (an
    upload's parts, their retries too) die mid-body, small ones (an abort, a listing) still
    pass. ``heal()`` ends the cutting."""

    def __init__(self, upstream: int, cut_after: int | None = None, small: int = 64 * 1024) -> None:
        self.upstream = upstream
        self.cut_after = 2**62 if cut_after is None else cut_after
        self.small = small
        self.forwarded = 0
        self.cuts = 0
        self.port = 0
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.start()

    def start(self) -> None:
        """Listen (again) on ``port`` (a free one the first time)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.port = listener.getsockname()[1]
        with self.lock:
            self.open.add(listener)
        threading.Thread(target=self._serve, args=(listener,), daemon=True).start()

    @property
    def cutting(self) -> bool:
        return self.forwarded >= self.cut_after

    def heal(self) -> None:
        """Forward everything from now on."""
        with self.lock:
            self.cut_after = 2**62

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                return
            server.settimeout(None)
            with self.lock:
                self.open |= {client, server}
            threading.Thread(target=self._up, args=(client, server), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket) -> None:
        since_cut = 0
        try:
            while data := client.recv(65536):
                with self.lock:
                    if self.cutting:
                        since_cut += len(data)
                    else:
                        self.forwarded += len(data)
                    cut = since_cut > self.small
                    self.cuts += cut
                if cut:
                    break
                server.sendall(data)
        except OSError:
            pass
        self._drop(client, server)

    def _down(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while data := server.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        self._drop(client, server)

    def _drop(self, *socks: socket.socket) -> None:
        """Reset (RST, not a polite FIN: the peer learns mid-request) and close ``socks``."""
        for sock in socks:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)  # wakes a recv or accept blocked on it
            except OSError:
                pass
            sock.close()
            with self.lock:
                self.open.discard(sock)

    def stop(self) -> None:
        """Stop listening and reset every connection; ``start()`` brings the port back."""
        with self.lock:
            socks = list(self.open)
        self._drop(*socks)


def every_connector_at(port: int, password: str, **bounds: float) -> dict[str, dict[str, Any]]:
    """``configure()`` arguments pointing every connector at ``127.0.0.1:port`` (with
    ``password`` as each secret and ``bounds`` as each one's timeouts/attempts)."""
    url = f"http://127.0.0.1:{port}"
    sections: dict[str, dict[str, Any]] = {
        "postgres": {"host": "127.0.0.1", "port": port, "user": "u", "password": password},
        "s3": {"endpoint_url": url, "access_key_id": "AKIA", "secret_access_key": password},
        "trino": {"host": "127.0.0.1", "port": port, "user": "u"},
        "mlflow": {"tracking_uri": url, "password": password},
        "datahub": {"gms_url": url, "token": password},
        "kafka": {
            "bootstrap_servers": f"127.0.0.1:{port}",
            "security_protocol": "SASL_PLAINTEXT",
            "username": "u",
            "password": password,
        },
        "ray": {
            "host": "127.0.0.1",
            "client_port": port,
            "dashboard_port": port,
            "token": password,
        },
    }
    return {name: {**section, **bounds} for name, section in sections.items()}
