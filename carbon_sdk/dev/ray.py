"""Ray for the local stack: one head node, ``ray start --head --block``, from the ``ray`` package
installed next to this Python (extra ``ray``).

Everything listens on 127.0.0.1: ``--node-ip-address`` (otherwise Ray swaps in the machine's
interface address and binds 0.0.0.0), ``--dashboard-host``, and every port Ray would otherwise
pick itself or take from a fixed default is allocated by the stack (GCS, Ray Client server,
dashboard, dashboard agent, runtime-env agent, metrics, node and object manager) -- the GCS
port is never Ray's 6379. Workers get an explicit ``--worker-port-list`` of allocated ports
instead of Ray's default range 10002-19999, so they never collide with another server.

The head keeps its session files (logs, sockets, the ``ray_current_cluster`` address file) in a
short temporary directory of its own rather than ``/tmp/ray``: Unix socket paths must stay under
108 bytes, and a plain ``ray.init()`` elsewhere on the machine must not find this cluster.

``--block`` keeps ``ray start`` in the foreground, under a small launcher (:func:`launch`, the
supervisor's recorded process) that retries a start-up Ray timed out; GCS, raylet, dashboard
and workers are its descendants in the same process group, so ``dev down`` stops exactly them
by process group. Never run ``ray stop``: it kills every Ray process on the
machine by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from .ports import HOST
from .service import DevStackError, Service, ServiceContext

if TYPE_CHECKING:
    from . import process

NUM_CPUS = 2
OBJECT_STORE_BYTES = 200 * 1024 * 1024
WORKER_PORTS = 24  # workers, drivers (one per Ray Client session or job) and job supervisors
_FIXED = (
    "gcs",
    "dashboard_metrics",
    "autoscaler_metrics",
    "client",
    "dashboard",
    "dashboard_agent_listen",
    "dashboard_agent_grpc",
    "runtime_env_agent",
    "metrics_export",
    "node_manager",
    "object_manager",
)
AGENT_TIMEOUT_MS = 120_000
ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Ray 2.60 turns token auth on by itself when ~/.ray/auth_token exists (any earlier
    # `ray.init` or `ray get-auth-token --generate` of this user writes it): the dev head must
    # not depend on that file. It listens on 127.0.0.1 only.
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    # On SIGTERM `ray start --block` first asks the GCS to drain the node, for up to 30 s; the
    # GCS gets the same SIGTERM from the process group, so that would only ever time out.
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    # No idle workers started with the raylet: they would compete with its agents for the CPU
    # inside Ray's fixed 30 s start-up window; workers start on the first task instead.
    "RAY_enable_worker_prestart": "0",
    # A worker may take long to start on a loaded machine; Ray's default kills it after 60 s.
    "RAY_worker_register_timeout_seconds": "300",
    # Each Ray Client session gets its own server process on the head; the proxy gives it 30 s
    # to accept connections, then answers "Initialization failure from server". Starting that
    # process (a Python importing Ray, then a driver) takes longer on a loaded machine.
    "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "180",
    # `ray start` gives the dashboard 60 s to publish its address, else it fails the start; the
    # dashboard starts nine Python subprocesses that each import Ray, over 60 s under a load
    # average of 15 on 2 cores ("Failed to start the dashboard", three attempts in a row).
    "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "240",
}


def find_ray() -> Path:
    """The ``ray`` command installed next to this Python (the head then runs this Python and
    this ``carbon_sdk``), else on PATH."""
    beside_python = Path(sys.executable).parent / "ray"
    if beside_python.is_file():
        return beside_python
    if on_path := shutil.which("ray"):
        return Path(on_path)
    raise DevStackError("the `ray` command was not found: pip install 'carbon-sdk[ray]'")


def worker_port_names() -> tuple[str, ...]:
    """The names under which the worker ports are allocated: ``worker0``, ``worker1``..."""
    return tuple(f"worker{i}" for i in range(WORKER_PORTS))


class RayService(Service):
    """A single-node Ray cluster: Ray Client server, dashboard (Jobs API) and 2 CPUs."""

    name = "ray"
    ports = (*_FIXED, *worker_port_names())
    main_port = "client"
    default = False  # about 700 MB of memory: started when named (dev up ray) or by a test
    ready_timeout = 300.0  # seconds when idle; minutes under a load average of 15 on 2 cores

    def prepare(self, ctx: ServiceContext) -> None:
        """Choose the session directory (short, outside ``/tmp/ray``) and create it."""
        temp_dir = Path(ctx.paths.get("temp_dir") or _temp_dir(ctx.home))
        temp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        ctx.paths["temp_dir"] = str(temp_dir)

    def command(self, ctx: ServiceContext) -> list[str]:
        """``ray start --head --block`` with every address and port explicit, under
        :func:`launch` (which retries a start-up that timed out)."""
        p = ctx.ports
        workers = ",".join(str(p[name]) for name in worker_port_names())
        return [
            sys.executable,
            "-m",
            "carbon_sdk.dev.ray",
            str(find_ray()),
            "start",
            "--head",
            "--block",
            f"--node-ip-address={HOST}",
            f"--port={p['gcs']}",
            f"--ray-client-server-port={p['client']}",
            "--include-dashboard=true",
            f"--dashboard-host={HOST}",
            f"--dashboard-port={p['dashboard']}",
            f"--dashboard-agent-listen-port={p['dashboard_agent_listen']}",
            f"--dashboard-agent-grpc-port={p['dashboard_agent_grpc']}",
            f"--runtime-env-agent-port={p['runtime_env_agent']}",
            f"--metrics-export-port={p['metrics_export']}",
            f"--node-manager-port={p['node_manager']}",
            f"--object-manager-port={p['object_manager']}",
            f"--worker-port-list={workers}",
            f"--num-cpus={NUM_CPUS}",
            "--num-gpus=0",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--temp-dir={ctx.paths['temp_dir']}",
            "--disable-usage-stats",
            "--log-style=record",
            "--log-color=false",
        ]

    def env(self, ctx: ServiceContext) -> dict[str, str]:
        """Usage stats off, this Python's directory first on ``PATH`` (job entrypoints run
        ``python``), the two metrics ports Ray only takes from the environment, and patience for
        the agents on a busy machine (the raylet aborts after 15 s otherwise)."""
        python_bin = str(Path(sys.executable).parent)  # `python` in a job entrypoint is ours
        return {
            **ENV,
            "PATH": os.pathsep.join([python_bin, os.environ.get("PATH", os.defpath)]),
            "DASHBOARD_METRIC_PORT": str(ctx.ports["dashboard_metrics"]),
            "AUTOSCALER_METRIC_PORT": str(ctx.ports["autoscaler_metrics"]),
            "RAY_agent_register_timeout_ms": str(AGENT_TIMEOUT_MS),
        }

    def probe(self, ctx: ServiceContext) -> bool:
        """The Ray Client port accepts connections and the dashboard lists the head node as
        alive (the raylet registers last, after its agents)."""
        return _accepts(HOST, ctx.ports["client"]) and _node_alive(_dashboard(ctx))

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """``host``, ``client_port`` and ``dashboard_url`` of the head."""
        return {
            "host": HOST,
            "client_port": ctx.ports["client"],
            "dashboard_url": _dashboard(ctx),
        }


def _temp_dir(home: Path) -> str:
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:10]
    return str(Path(tempfile.gettempdir()) / f"carbon-ray-{digest}")


def _dashboard(ctx: ServiceContext) -> str:
    return f"http://{HOST}:{ctx.ports['dashboard']}"


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return True
    except OSError:
        return False


def _node_alive(dashboard: str) -> bool:
    """Whether the state API lists an alive node (``GET /api/v0/nodes``)."""
    try:
        with urllib.request.urlopen(f"{dashboard}/api/v0/nodes", timeout=10.0) as response:  # noqa: S310
            body = json.load(response)
    except (OSError, ValueError):
        return False
    nodes = (((body or {}).get("data") or {}).get("result") or {}).get("result") or []
    return any(node.get("state") == "ALIVE" for node in nodes)


# -- the launcher ------------------------------------------------------------------------------

ATTEMPTS = 3
RETRY_WINDOW = 150.0  # seconds: a `ray start` failing later than this is not retried


def launch(argv: list[str], attempts: int = ATTEMPTS) -> int:
    """Run ``ray start ... --block`` (``argv``) in this process group; if it fails during
    start-up, stop what it left in the group and run it again, up to ``attempts`` times.

    ``ray start`` gives the raylet a fixed 30 s to register, and the raylet first waits for its
    agents (Python processes): on a machine under heavy load (a load average of 10 on 2 cores)
    that is sometimes not enough, and Ray offers no setting to extend it. Returns the exit code.
    """
    from . import process

    me = process.ProcessHandle(os.getpid(), os.getpgid(0), process.start_ticks(os.getpid()))
    code = 1
    for attempt in range(1, attempts + 1):
        began = time.monotonic()
        code = subprocess.call(argv)
        _stop_others(me)
        if code == 0 or attempt == attempts or time.monotonic() - began > RETRY_WINDOW:
            return code
        print(
            f"carbon-sdk: `ray start` exited with {code} during start-up "
            f"(attempt {attempt} of {attempts}); starting it again",
            flush=True,
        )
    return code


def _stop_others(me: process.ProcessHandle) -> None:
    """SIGKILL every other process of this group (what a failed start left) and wait for them."""
    from . import process

    deadline = time.monotonic() + 10.0
    while others := [pid for pid in process.group_members(me) if pid != me.pid]:
        for pid in others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            return
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
