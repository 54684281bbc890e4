"""The real PostgreSQL and SeaweedFS servers, through the pytest plugin's session stack."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from proclib import listening, tree
from typer.testing import CliRunner

from carbon_sdk.dev import Stack, State
from carbon_sdk.dev.cli import app
from carbon_sdk.dev.postgres import DATABASES
from carbon_sdk.dev.pytest_plugin import StackEnv, StartServices
from carbon_sdk.dev.s3 import BUCKETS, admin_client

pytestmark = pytest.mark.stack


def _pg_connect(settings: dict[str, object], dbname: str, password: str | None = None) -> object:
    return psycopg.connect(
        host=str(settings["host"]),
        port=int(str(settings["port"])),
        user=str(settings["user"]),
        password=password or str(settings["password"]),
        dbname=dbname,
        connect_timeout=5,
    )


def test_postgres_has_the_platform_databases_and_needs_the_password(
    carbon_services: StartServices,
) -> None:
    pg = carbon_services("postgres").settings("postgres")
    assert pg["database"] == "analytics"
    with _pg_connect(pg, "postgres") as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert set(DATABASES) <= names
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _pg_connect(pg, "postgres", password="wrong")


def test_s3_has_the_platform_buckets_and_round_trips(carbon_services: StartServices) -> None:
    s3 = admin_client(carbon_services("s3").settings("s3"))
    assert set(BUCKETS) <= {b["Name"] for b in s3.list_buckets()["Buckets"]}
    s3.put_object(Bucket="warehouse", Key="t/hello.txt", Body=b"hello")
    assert s3.get_object(Bucket="warehouse", Key="t/hello.txt")["Body"].read() == b"hello"
    s3.delete_object(Bucket="warehouse", Key="t/hello.txt")


def test_servers_listen_on_loopback_only(carbon_services: StartServices) -> None:
    for record in carbon_services("postgres", "s3").stack.records():
        assert record.pid is not None
        sockets = listening(tree(record.pid))  # the server with its children
        assert sockets, record.name
        # a JVM (Trino, when an earlier test started it) reports IPv4-mapped loopback
        ips = {ip.removeprefix("::ffff:") for ip, _ in sockets}
        assert ips == {"127.0.0.1"}, (record.name, sockets)
        assert record.ports[str(record.main_port)] in {port for _, port in sockets}


def test_fresh_database_is_usable(carbon_services: StartServices, fresh_database: str) -> None:
    with _pg_connect(carbon_services("postgres").settings("postgres"), fresh_database) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
        assert conn.execute("SELECT sum(x) FROM t").fetchone() == (3,)


def test_fresh_bucket_prefix_is_empty_and_writable(
    carbon_services: StartServices, fresh_bucket_prefix: str
) -> None:
    assert fresh_bucket_prefix.startswith("s3://scratch/") and fresh_bucket_prefix.endswith("/")
    bucket, prefix = fresh_bucket_prefix.removeprefix("s3://").split("/", 1)
    s3 = admin_client(carbon_services("s3").settings("s3"))
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 0
    s3.put_object(Bucket=bucket, Key=f"{prefix}a.parquet", Body=b"x")


def test_stack_env_sets_the_variables_of_the_services_and_their_dependencies(
    stack_env: StackEnv,
) -> None:
    env = stack_env("postgres")
    assert os.environ["CARBON_POSTGRES__HOST"] == "127.0.0.1"
    assert env["CARBON_POSTGRES__DATABASE"] == "analytics"
    assert not any(key.startswith("CARBON_S3__") for key in env)  # s3 was not asked for
    assert "CARBON_S3__ENDPOINT_URL" not in os.environ

    env = stack_env("s3")
    assert os.environ["CARBON_S3__ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert env["CARBON_S3__BUCKET"] == "scratch"
    assert os.environ["CARBON_POSTGRES__HOST"] == "127.0.0.1"  # earlier calls add up


def test_cli_up_status_env_logs_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The acceptance round trip, on a second stack of its own."""
    home = tmp_path / "dev"
    monkeypatch.setenv("CARBON_DEV_HOME", str(home))
    runner = CliRunner()
    try:
        up = runner.invoke(app, ["up", "postgres", "s3"])  # a bare `up` adds Trino (a JVM)
        assert up.exit_code == 0, up.output
        assert "postgres: ready in" in up.output and "s3: ready in" in up.output

        again = runner.invoke(app, ["up", "postgres"])
        assert "postgres: already running" in again.output

        status = runner.invoke(app, ["status"])
        assert status.exit_code == 0, status.output
        rows = Stack(home).status()
        for row in rows:
            assert row.state is State.RUNNING
            assert str(row.pid) in status.output and str(row.port) in status.output
            assert row.name in status.output
        assert "running" in status.output and "logs/s3.log" in status.output

        env = runner.invoke(app, ["env"])
        assert "export CARBON_POSTGRES__PORT=" in env.output
        assert "export CARBON_S3__SECRET_ACCESS_KEY=" in env.output

        logs = runner.invoke(app, ["logs", "s3", "-n", "5"])
        assert logs.exit_code == 0 and logs.output.strip()
    finally:
        down = runner.invoke(app, ["down", "--purge"])
    assert down.exit_code == 0, down.output
    assert "2 service(s) stopped" in down.output
    assert runner.invoke(app, ["down"]).exit_code == 0
