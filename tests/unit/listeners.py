"""Deliberately broken TCP endpoints on 127.0.0.1 for the connectors' real client libraries:
one that refuses, one that accepts and never answers, one that answers garbage."""

from __future__ import annotations

import socket
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
    ``"hang"`` accepts and never answers, ``"garbage"`` answers bytes of no protocol."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.behaviour == "garbage":
                conn.sendall(b"\x00\xffNOT A PROTOCOL\r\n\r\n" * 4)
                conn.close()
            else:  # "hang": accept, keep the connection open, never answer
                self.held.append(conn)

    @property
    def accepted(self) -> int:
        """How many connections a hanging endpoint has accepted."""
        return len(self.held)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


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
