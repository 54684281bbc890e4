"""The trino connector against the stack's real Trino servers (plain http, and https with auth)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pyarrow as pa
import pytest

from carbon_sdk import AuthFailed, ConfigurationError, QueryError, TLSError, Unreachable, trino
from carbon_sdk.dev.pytest_plugin import StackEnv, StartServices
from carbon_sdk.dev.trino import mint_jwt
from carbon_sdk.health import Status, run
from carbon_sdk.settings.carbon import configure

pytestmark = pytest.mark.stack

TYPES_SQL = """
select decimal '12.34'                                              as amount,
       cast('2026-01-02 03:04:05.123 +02:00' as timestamp(3) with time zone) as at,
       timestamp '2026-01-02 03:04:05.123456'                       as local_us,
       date '2026-11-26'                                            as day,
       X'00ff'                                                      as raw,
       array[1, null, 3]                                            as ints,
       map(array['a', 'b'], array[1.5e0, null])                     as m,
       cast(row(1, 'x') as row(a integer, b varchar))               as r,
       null                                                         as nothing,
       cast(null as bigint)                                         as no_int,
       bigint '42'                                                  as answer,
       'text'                                                       as label,
       true                                                         as flag,
       nan()                                                        as not_a_number,
       uuid '00000000-0000-0000-0000-00000000002a'                  as id
"""


# ---- plain server -----------------------------------------------------------------------------


@pytest.fixture
def trino_env(stack_env: StackEnv) -> dict[str, str]:
    """The SDK pointed at the stack's plain-HTTP Trino (``CARBON_TRINO__*``)."""
    return stack_env("trino")


def test_type_matrix_arrow(trino_env: object) -> None:
    table = trino.query(TYPES_SQL, as_="arrow")
    schema = {f.name: f.type for f in table.schema}
    assert schema["amount"] == pa.decimal128(4, 2)
    assert schema["at"] == pa.timestamp("ms", tz="+02:00")
    assert schema["local_us"] == pa.timestamp("us")
    assert schema["day"] == pa.date32()
    assert schema["raw"] == pa.binary()
    assert schema["ints"] == pa.list_(pa.int32())
    assert schema["m"] == pa.map_(pa.string(), pa.float64())
    assert schema["r"] == pa.struct([("a", pa.int32()), ("b", pa.string())])
    assert schema["nothing"] == pa.null()
    assert schema["no_int"] == pa.int64()
    row = table.to_pylist()[0]
    assert row["amount"] == decimal.Decimal("12.34")
    assert row["at"] == dt.datetime(2026, 1, 2, 1, 4, 5, 123000, tzinfo=dt.UTC)
    assert row["local_us"] == dt.datetime(2026, 1, 2, 3, 4, 5, 123456)
    assert row["day"] == dt.date(2026, 11, 26)
    assert row["raw"] == b"\x00\xff"
    assert row["ints"] == [1, None, 3]
    assert row["m"] == [("a", 1.5), ("b", None)]
    assert row["r"] == {"a": 1, "b": "x"}
    assert row["nothing"] is None and row["no_int"] is None
    assert row["not_a_number"] != row["not_a_number"]  # NaN
    assert row["id"] == uuid.UUID(int=42)


def test_type_matrix_pandas_and_mixed_zones(trino_env: object) -> None:
    df = trino.query(TYPES_SQL)
    assert isinstance(df, pd.DataFrame)
    assert str(df["answer"].dtype) == "Int64"
    assert str(df["no_int"].dtype) == "Int64" and df["no_int"].isna().all()
    assert df.loc[0, "amount"] == decimal.Decimal("12.34")
    zones = trino.query(
        "select * from (values timestamp '2026-01-01 12:00 UTC', "
        "timestamp '2026-01-01 12:00 Europe/Paris', null) t(at)",
        as_="arrow",
    )
    assert zones.schema.field("at").type == pa.timestamp("s", tz="UTC")
    assert zones.column("at").to_pylist() == [
        dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 1, 11, tzinfo=dt.UTC),
        None,
    ]


def test_parameters_are_bound_by_the_server(trino_env: object) -> None:
    hostile = "'; drop table memory.default.victims; --"
    params = (hostile, 41, decimal.Decimal("1.10"), dt.date(2026, 1, 2))
    df = trino.query("select ? as s, ? + 1 as n, ? as d, ? as day", params)
    assert df.loc[0, "s"] == hostile
    assert df.loc[0, "n"] == 42
    assert df.loc[0, "d"] == decimal.Decimal("1.10")
    assert df.loc[0, "day"] == dt.date(2026, 1, 2)
    with pytest.raises(TypeError, match="a sequence or a mapping, not str"):
        trino.query("select ?", "not-a-tuple")  # type: ignore[arg-type]


def test_memory_round_trip_and_helpers(trino_env: object) -> None:
    name = f"t_{uuid.uuid4().hex[:8]}"
    trino.query(f"create table memory.default.{name} as select * from tpch.tiny.nation")
    try:
        df = trino.query(f"select count(*) as n from memory.default.{name}", as_="polars")
        assert df.item() == 25
        listed = trino.tables("memory", "default")
        assert name in listed["table_name"].tolist()
        described = trino.describe(f"memory.default.{name}")
        assert described["Column"].tolist() == ["nationkey", "name", "regionkey", "comment"]
    finally:
        trino.query(f"drop table memory.default.{name}")
    with pytest.raises(ValueError, match="not a table name"):
        trino.describe("nation; drop table x")


def test_connect_carries_identity_source_and_tags(
    trino_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    marker = uuid.uuid4().hex
    configure(trino={"user": None})  # the stack sets one; without it the hub user is used
    with trino.connect(client_tags=["team-a"]) as conn:
        cur = conn.cursor()
        cur.execute(f"select current_user, '{marker}'")
        assert cur.fetchall()[0][0] == "alice"
        assert set(conn.client_tags) == {"team-a", "jupyterhub-user:alice"}
    rows = trino.query(
        'select source, "user" from system.runtime.queries '
        f"where query like '%{marker}%' and query not like '%system.runtime%'"
    )
    assert rows.loc[0, "source"].startswith("carbon-sdk/")
    assert rows.loc[0, "user"] == "alice"
    configure(trino={"user": "bob"})
    assert trino.query("select current_user as u").loc[0, "u"] == "bob"


def test_engine_works_with_pandas(trino_env: object) -> None:
    engine = trino.engine(catalog="tpch", schema="tiny")
    assert pd.read_sql("select count(*) as n from nation", engine).loc[0, "n"] == 25
    engine.dispose()


def test_syntax_error_names_error_query_and_link(trino_env: object) -> None:
    configure(trino={"ui_url": "https://trino.example.org"})
    with pytest.raises(QueryError) as info:
        trino.query("select 1 frm nowhere")
    message = str(info.value)
    assert "SYNTAX_ERROR" in message
    assert "line 1, column" in message
    assert "https://trino.example.org/ui/query.html?" in message


def test_missing_catalog_is_a_query_error(trino_env: object) -> None:
    with pytest.raises(QueryError, match="CATALOG_NOT_FOUND"):
        trino.query("select * from no_such_catalog.s.t")


def test_server_unreachable(trino_env: object) -> None:
    configure(trino={"port": 1})
    started = time.monotonic()
    with pytest.raises(Unreachable, match="refused"):
        trino.query("select 1")
    assert time.monotonic() - started < 10
    (result,) = run(["trino"]).results
    assert result.status is Status.UNREACHABLE


def test_still_starting_is_unreachable() -> None:
    from trino.exceptions import TrinoQueryError

    settings = trino.Settings(host="h")
    error = TrinoQueryError(
        {"errorName": "SERVER_STARTING_UP", "message": "Trino server is still initializing"}
    )
    classified = trino.classify(error, settings)
    assert isinstance(classified, Unreachable)
    assert "still starting" in str(classified)


def test_doctor_reports_version_and_user(trino_env: object) -> None:
    (result,) = run(["trino"]).results
    assert result.status is Status.OK, result
    assert result.detail.startswith("Trino ")


def test_interrupt_cancels_the_query_on_the_server(trino_env: object) -> None:
    marker = uuid.uuid4().hex
    sql = f"select count(*) from tpch.sf100.lineitem where comment <> '{marker}'"
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        trino.query(sql)
    timer.join()
    lookup = (
        "select state, error_code from system.runtime.queries "
        f"where query like '%{marker}%' and query not like '%system.runtime%'"
    )
    deadline = time.monotonic() + 20
    while True:
        found = trino.query(lookup)
        if len(found) and found.loc[0, "state"] in ("FAILED", "FINISHED"):
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.5)
    assert found.loc[0, "state"] == "FAILED"
    assert found.loc[0, "error_code"] == "USER_CANCELED"


@pytest.mark.slow
def test_iter_batches_streams_orders_with_bounded_memory(trino_env: object) -> None:
    batch_rows = 100_000
    list(trino.iter_batches("select 1"))  # load the client before measuring
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak, total, sizes = baseline, 0, []
    for batch in trino.iter_batches("select * from tpch.sf1.orders", batch_rows=batch_rows):
        sizes.append(batch.num_rows)
        total += batch.num_rows
        peak = max(peak, process.memory_info().rss)
    assert total == 1_500_000
    assert set(sizes[:-1]) == {batch_rows}
    # 1.5 M rows are ~1.5 GB as Python rows, ~200 MB as Arrow; one batch is a fifteenth of it
    assert peak - baseline < 400e6, f"grew {(peak - baseline) / 1e6:.0f} MB"


# ---- Iceberg ------------------------------------------------------------------------------------


def test_iceberg_round_trip(trino_env: object) -> None:
    schema = f"s_{uuid.uuid4().hex[:8]}"
    trino.query(f"create schema iceberg.{schema}")
    try:
        created = trino.query(
            f"create table iceberg.{schema}.nation as select * from tpch.tiny.nation", as_="arrow"
        )
        assert created.column(0).to_pylist() == [25]
        trino.query(
            f"insert into iceberg.{schema}.nation values (?, ?, ?, ?)", (99, "ATLANTIS", 0, "x")
        )
        back = trino.query(
            f"select nationkey, name from iceberg.{schema}.nation order by nationkey desc limit 2",
            as_="arrow",
        )
        assert back.to_pylist()[0] == {"nationkey": 99, "name": "ATLANTIS"}
        assert "nation" in trino.tables("iceberg", schema)["table_name"].tolist()
        trino.query(f"drop table iceberg.{schema}.nation")
    finally:
        trino.query(f"drop schema if exists iceberg.{schema} cascade")


# ---- authentication (https server) ------------------------------------------------------------


@pytest.fixture
def secure(carbon_services: StartServices) -> dict[str, Any]:
    """The https server's settings: host, port, ca_bundle, user, password, jwt_key."""
    values = dict(carbon_services("trino_secure").settings("trino_secure"))
    configure(
        trino={
            "host": values["host"],
            "port": values["port"],
            "http_scheme": "https",
            "ca_bundle": values["ca_bundle"],
        }
    )
    return values


def test_basic_auth(secure: dict[str, Any]) -> None:
    configure(trino={"auth": "basic", "user": secure["user"], "password": secure["password"]})
    assert trino.query("select current_user as u").loc[0, "u"] == secure["user"]
    (result,) = run(["trino"]).results
    assert result.status is Status.OK, result


def test_wrong_password_is_auth_failed_without_the_password(secure: dict[str, Any]) -> None:
    configure(trino={"auth": "basic", "user": secure["user"], "password": "canary-wrong-pw"})
    with pytest.raises(AuthFailed) as info:
        trino.query("select 1")
    assert "trino.password" in str(info.value)
    assert "canary-wrong-pw" not in str(info.value)
    (result,) = run(["trino"]).results
    assert result.status is Status.AUTH_FAILED
    assert "canary-wrong-pw" not in result.detail + (result.hint or "")


def test_jwt_secret_and_file(secure: dict[str, Any], tmp_path: Path) -> None:
    token = mint_jwt(secure["jwt_key"], secure["user"])
    configure(trino={"auth": "jwt", "jwt": token})
    assert trino.query("select current_user as u").loc[0, "u"] == secure["user"]
    token_file = tmp_path / "token"
    token_file.write_text(mint_jwt(secure["jwt_key"], "someone-else"))
    configure(trino={"jwt": None, "jwt_file": str(token_file), "user": "someone-else"})
    assert trino.query("select current_user as u").loc[0, "u"] == "someone-else"


def test_expired_jwt_is_auth_failed(secure: dict[str, Any]) -> None:
    token = mint_jwt(secure["jwt_key"], secure["user"], ttl=-120)
    configure(trino={"auth": "jwt", "jwt": token})
    with pytest.raises(AuthFailed, match=r"trino\.jwt") as info:
        trino.query("select 1")
    assert token not in str(info.value)


def test_configured_ca_wins_over_requests_ca_bundle(
    secure: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQUESTS_CA_BUNDLE (set on many machines) must not replace trino.ca_bundle."""
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    configure(trino={"auth": "basic", "user": secure["user"], "password": secure["password"]})
    assert trino.query("select 1 as one").loc[0, "one"] == 1
    configure(trino={"ca_bundle": certifi.where()})
    with pytest.raises(TLSError):
        trino.query("select 1")


def test_credentials_over_http_are_refused(trino_env: object) -> None:
    configure(trino={"auth": "basic", "user": "u", "password": "canary-http-pw"})
    with pytest.raises(ConfigurationError, match="http_scheme=https") as info:
        trino.query("select 1")
    assert "canary-http-pw" not in str(info.value)


class _Hub(BaseHTTPRequestHandler):
    """A stand-in for JupyterHub's REST API, only for what a real hub cannot be made to do on
    cue: hand out an expired token, then a fresh one. Like the real hub (see
    tests/dev/test_jupyterhub.py), ``/user`` has no auth_state; ``/users/{name}`` has it."""

    api_token = "hub-api-token"
    tokens: list[str] = []
    calls = 0

    def do_GET(self) -> None:
        if self.path not in (
            "/hub/api/user",
            "/hub/api/users/carbon",
        ) or self.headers["Authorization"] != (f"token {self.api_token}"):
            self.send_response(403)
            self.end_headers()
            return
        auth_state = None
        if self.path == "/hub/api/users/carbon":
            type(self).calls += 1
            token = self.tokens.pop(0) if len(self.tokens) > 1 else self.tokens[0]
            auth_state = {"access_token": token}
        body = json.dumps({"name": "carbon", "auth_state": auth_state}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Hub]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("JUPYTERHUB_API_URL", f"http://127.0.0.1:{server.server_port}/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", _Hub.api_token)
    monkeypatch.setenv("JUPYTERHUB_USER", "carbon")
    _Hub.calls = 0
    yield _Hub
    server.shutdown()
    server.server_close()


def test_jupyterhub_token_is_reread_on_401(secure: dict[str, Any], hub: type[_Hub]) -> None:
    key = secure["jwt_key"]
    hub.tokens = [mint_jwt(key, "carbon", ttl=-120), mint_jwt(key, "carbon")]
    configure(trino={"auth": "jupyterhub"})
    assert trino.query("select current_user as u").loc[0, "u"] == "carbon"
    assert hub.calls == 2  # the expired token was refused, a fresh one read and used


def test_jupyterhub_token_is_reread_before_it_expires(
    secure: dict[str, Any], hub: type[_Hub]
) -> None:
    key = secure["jwt_key"]
    hub.tokens = [mint_jwt(key, "carbon", ttl=30), mint_jwt(key, "carbon")]  # 30 s < 60 s margin
    configure(trino={"auth": "jupyterhub"})
    conn = trino.connect()
    cur = conn.cursor()
    cur.execute("select 1")
    cur.fetchall()
    cur.execute("select 2")  # the token is near expiry: read again before sending, no 401
    cur.fetchall()
    assert hub.calls == 2


def test_jupyterhub_without_a_valid_token_is_auth_failed(
    secure: dict[str, Any], hub: type[_Hub]
) -> None:
    hub.tokens = [mint_jwt(secure["jwt_key"], "carbon", ttl=-120)]
    configure(trino={"auth": "jupyterhub"})
    with pytest.raises(AuthFailed) as info:
        trino.query("select 1")
    assert hub.tokens[0] not in str(info.value)


def test_basic_auth_over_http_names_our_setting_not_the_clients(trino_env: object) -> None:
    configure(trino={"auth": "basic", "password": "pw"})
    with pytest.raises(ConfigurationError) as info:
        trino.query("select 1")
    assert "trino.http_scheme=https" in str(info.value)
    assert "allow_insecure_auth" not in str(info.value)
