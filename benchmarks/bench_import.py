"""Start-up cost: ``import carbon_sdk`` and ``carbon-sdk doctor`` against bare ``python -c pass``.

Doctor's checks point at a closed local port, so the run measures the SDK's own cost (imports,
settings, concurrent checks), not a network round trip.
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import closing

from harness import command_seconds, interleaved_medians, record

N = 15


def closed_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    python = sys.executable
    bare = [python, "-c", "pass"]
    subject, baseline = interleaved_medians(
        lambda: command_seconds([python, "-c", "import carbon_sdk"]),
        lambda: command_seconds(bare),
        N,
    )
    record(
        "import",
        "python -c 'import carbon_sdk'",
        subject,
        "python -c pass",
        baseline,
        N,
        f"import overhead {1000 * (subject - baseline):.1f} ms (target < 50 ms)",
        overhead_ms=round(1000 * (subject - baseline), 1),
    )
    port = str(closed_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "PG", "AWS_"))} | {
        "CARBON_CONFIG": "/nonexistent",
        "CARBON_USER_CONFIG": "/nonexistent",
        "CARBON_POSTGRES__HOST": "127.0.0.1",
        "CARBON_POSTGRES__PORT": port,
        "CARBON_POSTGRES__USER": "bench",
        "CARBON_S3__ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "CARBON_S3__ACCESS_KEY_ID": "bench",
        "CARBON_S3__SECRET_ACCESS_KEY": "bench",
    }
    subject, baseline = interleaved_medians(
        lambda: command_seconds([python, "-m", "carbon_sdk", "doctor", "--json"], env),
        lambda: command_seconds(bare),
        N,
    )
    record(
        "doctor",
        "carbon-sdk doctor (all checks, closed port)",
        subject,
        "python -c pass",
        baseline,
        N,
        f"doctor overhead {subject - baseline:.2f} s over interpreter start",
    )


if __name__ == "__main__":
    main()
