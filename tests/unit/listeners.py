"""Deliberately broken TCP endpoints on 127.0.0.1 for the connectors' real client libraries:
one that refuses, one that accepts and never answers, one that answers garbage."""

from __future__ import annotations

import socket
import threading
from contextlib import closing


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
