"""The real Trino server of the local stack (``trino`` and ``trino_secure``), plus the download
cache logic against a stand-in ``mvn``."""

from __future__ import annotations

import io
import json
import os
import ssl
import tarfile
import urllib.request
import uuid
import zipfile
from pathlib import Path

import psutil
import psycopg
import pytest
import requests
import trino

from carbon_sdk.dev import DevStackError, ServiceContext
from carbon_sdk.dev import trino as trino_service
from carbon_sdk.dev.java import JAVA_HOME_ENV, find_java_home
from carbon_sdk.dev.progress import Progress
from carbon_sdk.dev.pytest_plugin import StackEnv, StackSession, StartServices
from carbon_sdk.dev.registry import SERVICES
from carbon_sdk.dev.s3 import admin_client
from carbon_sdk.dev.state import ServiceRecord


def _info(url: str, context: ssl.SSLContext | None = None) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        info: dict[str, object] = json.load(response)
    return info


def _listening(pid: int) -> set[tuple[str, int]]:
    return {
        (c.laddr.ip.removeprefix("::ffff:"), c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }


def _record(stack: StackSession, name: str) -> ServiceRecord:
    return next(r for r in stack.stack.records() if r.name == name)


# -- the running server ------------------------------------------------------------------------


@pytest.mark.stack
@pytest.mark.slow
def test_trino_is_up_and_reports_its_version(carbon_services: StartServices) -> None:
    trino_stack = carbon_services("trino")
    settings = trino_stack.settings("trino")
    assert settings["http_scheme"] == "http" and settings["catalog"] == "iceberg"
    info = _info(f"http://{settings['host']}:{settings['port']}/v1/info")
    assert info["starting"] is False
    assert info["nodeVersion"] == {"version": trino_service.TRINO_VERSION}


@pytest.mark.stack
@pytest.mark.slow
def test_trino_listens_on_loopback_only(carbon_services: StartServices) -> None:
    trino_stack = carbon_services("trino")
    record = _record(trino_stack, "trino")
    assert record.pid is not None
    listening = _listening(record.pid)
    assert {ip for ip, _ in listening} == {"127.0.0.1"}, listening
    assert {port for _, port in listening} == {record.ports["http"]}


@pytest.mark.stack
@pytest.mark.slow
def test_iceberg_round_trip_lands_in_s3_and_the_postgres_catalog(
    carbon_services: StartServices,
) -> None:
    trino_stack = carbon_services("trino")
    settings = trino_stack.settings("trino")
    schema = f"rt_{uuid.uuid4().hex[:12]}"
    cursor = trino.dbapi.connect(
        host=str(settings["host"]),
        port=int(str(settings["port"])),
        user=str(settings["user"]),
        http_scheme="http",
    ).cursor()

    def run(sql: str) -> list[list[object]]:
        cursor.execute(sql)
        rows: list[list[object]] = cursor.fetchall()
        return rows

    s3 = trino_stack.settings("s3")
    client = admin_client(s3)
    assert run("SHOW CATALOGS") == [["iceberg"], ["memory"], ["system"], ["tpch"]]
    run(f"CREATE SCHEMA iceberg.{schema} WITH (location = 's3://warehouse/{schema}')")
    try:
        assert run(f"CREATE TABLE iceberg.{schema}.nation AS SELECT * FROM tpch.tiny.nation") == [
            [25]
        ]
        assert run(f"SELECT count(*), min(name), max(name) FROM iceberg.{schema}.nation") == [
            [25, "ALGERIA", "VIETNAM"]
        ]
        keys = client.list_objects_v2(Bucket="warehouse", Prefix=f"{schema}/")["KeyCount"]
        assert keys > 0  # data and metadata files are on the stack's SeaweedFS
        pg = trino_stack.settings("postgres")
        with psycopg.connect(
            host=str(pg["host"]),
            port=int(str(pg["port"])),
            user=str(pg["user"]),
            password=str(pg["password"]),
            dbname=trino_service.CATALOG_DATABASE,
        ) as conn:
            tables = conn.execute(
                "SELECT table_name FROM iceberg_tables WHERE table_namespace = %s", (schema,)
            ).fetchall()
        assert tables == [("nation",)]
    finally:
        run(f"DROP TABLE IF EXISTS iceberg.{schema}.nation")
        run(f"DROP SCHEMA IF EXISTS iceberg.{schema}")
    assert run(f"SHOW SCHEMAS FROM iceberg LIKE '{schema}'") == []


@pytest.mark.stack
@pytest.mark.slow
def test_up_again_leaves_trino_running(carbon_services: StartServices) -> None:
    trino_stack = carbon_services("trino")
    pid = _record(trino_stack, "trino").pid
    started = {s.name: s for s in trino_stack.stack.up(["trino"])}
    assert started["trino"].already_running and started["postgres"].already_running
    assert _record(trino_stack, "trino").pid == pid


@pytest.mark.stack
@pytest.mark.slow
def test_stack_env_exports_the_trino_settings(stack_env: StackEnv) -> None:
    trino_env = stack_env("trino")
    assert os.environ["CARBON_TRINO__HOST"] == "127.0.0.1"
    assert os.environ["CARBON_TRINO__HTTP_SCHEME"] == "http"
    assert trino_env["CARBON_TRINO__CATALOG"] == "iceberg"
    assert "CARBON_TRINO__SCHEMA" not in trino_env
    assert trino_env["CARBON_POSTGRES__HOST"] == "127.0.0.1"  # and its dependencies
    assert "CARBON_TRINO_SECURE__HOST" not in trino_env


@pytest.mark.stack
@pytest.mark.slow
def test_cached_server_is_reused_without_maven(
    carbon_services: StartServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    carbon_services("trino")
    assert trino_service.is_cached()
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn: a download attempt would fail
    recorder = _Recorder()
    server = trino_service.ensure_server(_context(tmp_path, recorder))
    assert server == trino_service.server_dir()
    assert recorder.events == []


@pytest.mark.stack
@pytest.mark.slow
def test_secure_trino_needs_credentials_over_https(carbon_services: StartServices) -> None:
    trino_secure_stack = carbon_services("trino_secure")
    from trino.auth import BasicAuthentication, JWTAuthentication

    settings = trino_secure_stack.settings("trino_secure")
    ca = str(settings["ca_bundle"])
    record = _record(trino_secure_stack, "trino_secure")
    assert record.pid is not None
    assert {ip for ip, _ in _listening(record.pid)} == {"127.0.0.1"}
    url = f"https://{settings['host']}:{settings['port']}/v1/info"
    assert _info(url, ssl.create_default_context(cafile=ca))["starting"] is False

    def current_user(auth: object) -> object:
        session = requests.Session()
        session.verify, session.trust_env = ca, False  # REQUESTS_CA_BUNDLE would win otherwise
        cursor = trino.dbapi.connect(
            host=str(settings["host"]),
            port=int(str(settings["port"])),
            user=str(settings["user"]),
            http_scheme="https",
            auth=auth,
            http_session=session,
        ).cursor()
        cursor.execute("SELECT current_user")
        return cursor.fetchall()

    user, key = str(settings["user"]), str(settings["jwt_key"])
    assert current_user(BasicAuthentication(user, str(settings["password"]))) == [[user]]
    assert current_user(JWTAuthentication(trino_service.mint_jwt(key))) == [[user]]
    with pytest.raises(trino.exceptions.HttpError, match="401"):
        current_user(BasicAuthentication(user, "wrong"))
    with pytest.raises(trino.exceptions.HttpError, match="expired"):
        current_user(JWTAuthentication(trino_service.mint_jwt(key, ttl=-60)))


# -- without a server ------------------------------------------------------------------------


def test_bare_up_starts_trino_but_not_the_secure_one() -> None:
    defaults = [name for name, s in SERVICES.items() if s.default]
    assert defaults == ["postgres", "s3", "trino", "mlflow", "kafka"]
    assert SERVICES["trino_secure"].depends_on == ("postgres", "s3")


def test_explicit_java_home_must_be_new_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "java").touch()
    (tmp_path / "release").write_text('JAVA_VERSION="17.0.15"\n')
    monkeypatch.setenv(JAVA_HOME_ENV, str(tmp_path))
    with pytest.raises(DevStackError, match=r"not a JDK 24 or newer .*which Trino 476 needs"):
        trino_service.java_home()
    assert find_java_home(17, purpose="Kafka 4.4") == tmp_path
    (tmp_path / "release").write_text('JAVA_VERSION="25.0.3"\n')
    assert trino_service.java_home() == tmp_path


def test_password_hash_has_trinos_pbkdf2_format() -> None:
    iterations, salt, digest = trino_service.pbkdf2_hash("secret").split(":")
    assert int(iterations) >= 1000 and len(bytes.fromhex(salt)) == 16
    assert len(bytes.fromhex(digest)) == 64


class _Recorder(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[int, int | None]] = []

    def downloading(self, name: str, done: int, total: int | None) -> None:
        self.events.append((done, total))


def _context(home: Path, progress: Progress) -> ServiceContext:
    home.mkdir(parents=True, exist_ok=True)
    return ServiceContext(
        name="trino",
        home=home,
        log_path=home / "trino.log",
        ports={},
        secrets={},
        shared_dir=home / "shared",
        progress=progress,
    )


def _fake_archives(root: Path) -> Path:
    """A stand-in Maven repository: small archives shaped like the real ones."""
    repo = root / "repo"
    repo.mkdir()
    version = trino_service.TRINO_VERSION
    core = f"trino-server-core-{version}"
    with tarfile.open(repo / f"{core}.tar.gz", "w:gz") as tar:
        for name, body in (("bin/launcher", b"#!/bin/sh\n"), ("lib/main.jar", b"jar")):
            info = tarfile.TarInfo(f"{core}/{name}")
            info.size, info.mode = len(body), 0o755
            tar.addfile(info, io.BytesIO(body))
    for plugin in trino_service.PLUGINS:
        with zipfile.ZipFile(repo / f"trino-{plugin}-{version}.zip", "w") as zipped:
            zipped.writestr(f"trino-{plugin}-{version}/{plugin}.jar", b"jar")
    return repo


def _fake_mvn(bin_dir: Path, repo: Path, fail_on: str | None = None) -> None:
    """An ``mvn`` that copies ``-Dartifact`` from ``repo`` like dependency:copy does."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "mvn"
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in\n'
        "  -Dartifact=*) art=${a#-Dartifact=};;\n"
        "  -DoutputDirectory=*) out=${a#-DoutputDirectory=};;\n"
        "esac; done\n"
        "IFS=: read -r group id version ext <<EOF\n$art\nEOF\n"
        f'[ "$id" = "{fail_on}" ] && {{ echo "Could not find artifact $art"; exit 1; }}\n'
        f'cp "{repo}/$id-$version.$ext" "$out/"\n'
    )
    script.chmod(0o755)


def test_download_is_atomic_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, bin_dir, cache = _fake_archives(tmp_path), tmp_path / "bin", tmp_path / "cache"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    _fake_mvn(bin_dir, repo, fail_on="trino-memory")  # interrupted halfway
    with pytest.raises(DevStackError, match="Could not find artifact"):
        trino_service.ensure_server(_context(tmp_path / "a", Progress()), cache)
    assert not trino_service.is_cached(cache)
    assert sorted(p.name for p in cache.iterdir()) == [".lock"]  # no half-made server

    _fake_mvn(bin_dir, repo)
    recorder = _Recorder()
    server = trino_service.ensure_server(_context(tmp_path / "b", recorder), cache)
    assert server == trino_service.server_dir(cache) and trino_service.is_cached(cache)
    assert os.access(server / "bin" / "launcher", os.X_OK)
    assert sorted(p.name for p in (server / "plugin").iterdir()) == sorted(trino_service.PLUGINS)
    assert recorder.events and recorder.events[-1][0] == sum(
        p.stat().st_size for p in repo.iterdir()
    )

    _fake_mvn(bin_dir, repo, fail_on="trino-server-core")  # would fail if it were called
    again = _Recorder()
    assert trino_service.ensure_server(_context(tmp_path / "c", again), cache) == server
    assert again.events == []
