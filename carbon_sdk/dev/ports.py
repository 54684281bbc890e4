"""Free TCP ports on 127.0.0.1, chosen by the kernel, never a fixed well-known one."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

HOST = "127.0.0.1"
_MAX_PORT = 65535
_ATTEMPTS = 200


def is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port`` right now.

    Like the servers themselves, this uses SO_REUSEADDR, so connections of a stopped server
    lingering in TIME_WAIT do not make its port look taken.
    """
    if not 0 < port <= _MAX_PORT:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def allocate(
    names: Sequence[str],
    *,
    offset: int | None = None,
    preferred: Mapping[str, int] | None = None,
    exclude: set[int] | None = None,
) -> dict[str, int]:
    """Pick one free, distinct port per name.

    ``preferred`` ports (e.g. the ones a previous run used) are kept when still free, so a
    restarted stack keeps its addresses. With ``offset``, ``port + offset`` must be free too
    (SeaweedFS derives its gRPC ports that way). ``exclude`` holds ports already promised to
    other services; the chosen ones are added to it.
    """
    taken = exclude if exclude is not None else set()
    chosen: dict[str, int] = {}
    held: list[socket.socket] = []
    try:
        for name in names:
            want = (preferred or {}).get(name)
            port = want if want and _usable(want, offset, taken) else _pick(offset, taken, held)
            chosen[name] = port
            taken.add(port)
            if offset:
                taken.add(port + offset)
    finally:
        for sock in held:
            sock.close()
    return chosen


def _usable(port: int, offset: int | None, taken: set[int]) -> bool:
    pair = [port, port + offset] if offset else [port]
    return all(p not in taken and is_free(p) for p in pair)


def _pick(offset: int | None, taken: set[int], held: list[socket.socket]) -> int:
    for _ in range(_ATTEMPTS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((HOST, 0))
        held.append(sock)  # keep it bound so the kernel does not hand it out twice
        port: int = sock.getsockname()[1]
        if port not in taken and (not offset or _usable(port + offset, None, taken)):
            return port
    raise OSError("could not find a free port on 127.0.0.1")
