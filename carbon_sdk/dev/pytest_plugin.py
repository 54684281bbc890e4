"""pytest plugin: the local platform stack for a test run, started by the same supervisor as
``carbon-sdk dev up``.

Fixtures:
    carbon_services  (session) ``carbon_services("trino_secure")`` starts services (plus their
                     dependencies) on the session's stack on first request and returns the
                     :class:`StackSession` (``.settings(name)``, ``.env()``, ``.stack``).
    stack_env        (function) ``stack_env("trino")`` does the same, then sets the
                     ``CARBON_*`` variables of those services and their dependencies for the
                     test, reloads the SDK settings and returns the variables.
    fresh_database   (function) a new, uniquely named PostgreSQL database, dropped afterwards.
    fresh_bucket_prefix (function) ``s3://scratch/<unique>/``, emptied afterwards.

The stack lives in a temporary ``CARBON_DEV_HOME``, writes no config profile, and is stopped and
purged at the end of the session; teardown fails if any process it started is still alive.
``CARBON_TEST_STACK_HOME=<dir>`` makes the session use that stack and leave it running.
A new service needs no fixture of its own::

    def test_produce(stack_env):
        stack_env("kafka")  # started once per session, on first use
        ...
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import process
from .s3 import admin_client
from .supervisor import Stack, dependency_levels

REUSE_ENV = "CARBON_TEST_STACK_HOME"


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

    def env(self, *names: str) -> dict[str, str]:
        """The ``CARBON_*`` variables of ``names`` and their dependencies (default: of every
        running service)."""
        from carbon_sdk.settings import env_var

        wanted = self._with_dependencies(names) if names else None
        return {
            env_var(service, key): str(value)
            for service, values in self.stack.settings().items()
            if wanted is None or service in wanted
            for key, value in values.items()
        }

    def _with_dependencies(self, names: tuple[str, ...]) -> set[str]:
        """``names`` plus everything they depend on."""
        deps = {name: service.depends_on for name, service in self.stack.services.items()}
        return {name for level in dependency_levels(deps, names) for name in level}

    def leftovers(self) -> list[int]:
        """Pids of processes this session started that are still alive."""
        return [pid for handle in self.started for pid in process.group_members(handle)]


StartServices = Callable[..., StackSession]
"""The type of ``carbon_services``: ``carbon_services("trino") -> StackSession``."""

StackEnv = Callable[..., dict[str, str]]
"""The type of ``stack_env``: ``stack_env("trino") -> {"CARBON_TRINO__HOST": ...}``."""


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def carbon_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServices]:
    """A function that starts services on the session's stack and returns :class:`StackSession`.

    With ``CARBON_TEST_STACK_HOME`` set, the session uses (and leaves running) the stack of that
    ``CARBON_DEV_HOME`` instead: a developer re-running a slow tier keeps its servers up.
    """
    if reused := os.environ.get(REUSE_ENV):
        yield StackSession(Stack(Path(reused), profile=None)).require
        return
    session = StackSession(Stack(tmp_path_factory.mktemp("carbon-dev"), profile=None))
    yield session.require
    session.stack.down(purge=True)
    left = session.leftovers()
    assert not left, f"carbon-sdk dev stack left processes behind: {left}"


@pytest.fixture
def stack_env(carbon_services: StartServices, monkeypatch: pytest.MonkeyPatch) -> StackEnv:
    """A function that starts services on the session's stack (plus their dependencies), sets
    their ``CARBON_*`` variables for this test, reloads the SDK settings and returns them."""
    from carbon_sdk.settings.carbon import reload

    def start(*names: str) -> dict[str, str]:
        if not names:
            raise TypeError("stack_env() needs the services to start, e.g. stack_env('trino')")
        env = carbon_services(*names).env(*names)
        monkeypatch.delenv("CARBON_PROFILE", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reload()
        return env

    return start


@pytest.fixture
def fresh_database(carbon_services: StartServices) -> Iterator[str]:
    """Create a uniquely named database, yield its name, drop it afterwards."""
    import psycopg  # an ImportError fails the test: a missing extra is not a reason to skip

    pg = carbon_services("postgres").settings("postgres")
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
def fresh_bucket_prefix(carbon_services: StartServices) -> Iterator[str]:
    """Yield ``s3://<default bucket>/<unique>/`` and delete every object under it afterwards."""
    s3 = carbon_services("s3").settings("s3")
    bucket, prefix = str(s3["bucket"]), _unique("test")
    yield f"s3://{bucket}/{prefix}/"
    client = admin_client(s3)
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/"
    ):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
