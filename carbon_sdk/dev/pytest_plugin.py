"""pytest plugin: the local platform stack for a test run, started by the same supervisor as
``carbon-sdk dev up``.

Fixtures:
    carbon_services  (session) ``carbon_services("trino")`` starts services (plus dependencies)
                     on the session's stack on first request and returns :class:`StackSession`.
    carbon_stack     (session) the stack with PostgreSQL and S3 up.
    carbon_env       (function) the stack's ``CARBON_*`` variables set for one test.
    fresh_database   (function) a new, uniquely named PostgreSQL database, dropped afterwards.
    fresh_bucket_prefix (function) ``s3://scratch/<unique>/``, emptied afterwards.
    trino_stack      (session) the stack with PostgreSQL, S3 and Trino (plain HTTP) up.
    trino_secure_stack (session) the stack with ``trino_secure`` (HTTPS, PASSWORD/JWT) up too.
    trino_env        (function) like ``carbon_env``, with the ``CARBON_TRINO__*`` variables.

The stack lives in a temporary ``CARBON_DEV_HOME``, writes no config profile, and is stopped and
purged at the end of the session; teardown fails if any process it started is still alive.
A service adds its own session fixture (see ``trino_stack`` below)::

    @pytest.fixture(scope="session")
    def trino_stack(carbon_services):
        return carbon_services("postgres", "s3", "trino")
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from . import process
from .s3 import admin_client
from .supervisor import Stack

BASE_SERVICES = ("postgres", "s3")


class StackSession:
    """The test session's stack; services are started on demand and stay up for the session."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.started: list[process.ProcessHandle] = []

    def require(self, *names: str) -> StackSession:
        """Start ``names`` (and their dependencies) unless they already run."""
        try:
            self.stack.up(names)
        finally:  # track what did start even if another service failed
            for record in self.stack.records():
                if record.handle and record.handle not in self.started:
                    self.started.append(record.handle)
        return self

    def settings(self, service: str) -> dict[str, object]:
        """The SDK settings of one running service."""
        return self.stack.settings()[service]

    def env(self) -> dict[str, str]:
        """The ``CARBON_*`` variables of every running service."""
        return self.stack.env()

    def leftovers(self) -> list[int]:
        """Pids of processes this session started that are still alive."""
        return [pid for handle in self.started for pid in process.group_members(handle)]


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def carbon_services(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., StackSession]]:
    """A function that starts services on the session's stack and returns :class:`StackSession`."""
    session = StackSession(Stack(tmp_path_factory.mktemp("carbon-dev"), profile=None))
    yield session.require
    session.stack.down(purge=True)
    left = session.leftovers()
    assert not left, f"carbon-sdk dev stack left processes behind: {left}"


@pytest.fixture(scope="session")
def carbon_stack(carbon_services: Callable[..., StackSession]) -> StackSession:
    """The session's stack with PostgreSQL and S3 running."""
    return carbon_services(*BASE_SERVICES)


def _point_sdk_at(session: StackSession, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Set the stack's ``CARBON_*`` variables for one test, reload the SDK settings."""
    from carbon_sdk.settings.carbon import reload

    env = session.env()
    monkeypatch.delenv("CARBON_PROFILE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reload()
    return env


@pytest.fixture
def carbon_env(carbon_stack: StackSession, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the SDK at the stack for one test via ``CARBON_*`` variables; returns them."""
    return _point_sdk_at(carbon_stack, monkeypatch)


@pytest.fixture
def fresh_database(carbon_stack: StackSession) -> Iterator[str]:
    """Create a uniquely named database, yield its name, drop it afterwards."""
    import psycopg  # an ImportError fails the test: a missing extra is not a reason to skip

    pg = carbon_stack.settings("postgres")
    name = _unique("test")
    conninfo = psycopg.conninfo.make_conninfo(
        host=str(pg["host"]),
        port=str(pg["port"]),
        user=str(pg["user"]),
        password=str(pg["password"]),
        dbname="postgres",
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_bucket_prefix(carbon_stack: StackSession) -> Iterator[str]:
    """Yield ``s3://<default bucket>/<unique>/`` and delete every object under it afterwards."""
    s3 = carbon_stack.settings("s3")
    bucket, prefix = str(s3["bucket"]), _unique("test")
    yield f"s3://{bucket}/{prefix}/"
    client = admin_client(s3)
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/"
    ):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})


@pytest.fixture(scope="session")
def trino_stack(carbon_services: Callable[..., StackSession]) -> StackSession:
    """The session's stack with PostgreSQL, S3 and Trino (HTTP, no auth) running.

    Trino's JVM takes tens of seconds to start, so it starts once per session, on first use.
    """
    return carbon_services(*BASE_SERVICES, "trino")


@pytest.fixture(scope="session")
def trino_secure_stack(carbon_services: Callable[..., StackSession]) -> StackSession:
    """The session's stack with ``trino_secure`` running: HTTPS with the stack's own CA and
    PASSWORD/JWT auth. ``.settings("trino_secure")`` has ``host``, ``port``, ``ca_bundle``,
    ``user``, ``password`` and ``jwt_key`` (see :func:`carbon_sdk.dev.trino.mint_jwt`)."""
    return carbon_services(*BASE_SERVICES, "trino_secure")


@pytest.fixture
def trino_env(trino_stack: StackSession, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Like ``carbon_env``, with Trino running too (``CARBON_TRINO__*`` included)."""
    return _point_sdk_at(trino_stack, monkeypatch)
