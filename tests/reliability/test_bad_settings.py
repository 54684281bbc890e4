"""Property-based tests (hypothesis) of every settings source with arbitrary input: environment
values, YAML config files (values and whole texts), secret files (BOM, whitespace, trailing
newlines, empty, not UTF-8, a directory instead of a file), malformed URLs and ports.

Whatever the input, loading settings either works or raises ConfigurationError naming the
field and where the value came from (a secret's value never in the message); any other
exception is a failure. Example counts are modest (the whole file runs in seconds) and are
reported in the terminal summary and in docs/reliability.md."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbon_sdk._registry import CONNECTORS
from carbon_sdk.errors import ConfigurationError
from carbon_sdk.settings import env_var, is_secret, secret_file_name
from carbon_sdk.settings.carbon import reload

from .report import Results, Tally

FIELDS = sorted(
    (service, name)
    for service, connector in CONNECTORS.items()
    for name in connector.settings_class().model_fields
)
SECRET = {
    (service, name)
    for service, connector in CONNECTORS.items()
    for name, info in connector.settings_class().model_fields.items()
    if is_secret(info)
}
FEW = settings(
    max_examples=120,
    deadline=None,  # a loaded 2-core machine; speed is not what is tested here
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples every run: reproducible counts, no flaky CI
)
# what os.environ and a config file can hold: no NUL, no lone surrogates
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), TEXT, st.just(""), st.just("  ")
)
YAML_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3)
)


def load(service: str) -> object:
    """Load one service's settings from scratch, as the first call of a notebook does."""
    return reload().service(service)


def expect_clean(service: str, name: str, source: str, secret: str | None = None) -> str:
    """Load ``service``; return "ok" or "error", failing unless an error is a
    ConfigurationError naming ``service.name`` (or the secret file) and ``source``."""
    try:
        load(service)
    except ConfigurationError as exc:
        message = str(exc)
        assert f"{service}.{name}" in message or secret_file_name(service, name) in message, message
        assert source in message, message
        if secret and len(secret.strip()) >= 4 and (service, name) in SECRET:
            assert secret not in message, message
        return "error"
    return "ok"


@contextmanager
def env(var: str, value: str) -> Iterator[None]:
    os.environ[var] = value
    try:
        yield
    finally:
        del os.environ[var]


@pytest.fixture
def tally(report: dict[str, str], pytestconfig: pytest.Config) -> Iterator[Tally]:
    counts = Results.of(pytestconfig).tally
    yield counts
    report["hypothesis"] = counts.summary()


@FEW
@given(field=st.sampled_from(FIELDS), value=TEXT)
def test_any_env_value(field: tuple[str, str], value: str, tally: Tally) -> None:
    service, name = field
    var = env_var(service, name)
    with env(var, value):
        tally.add("env values", expect_clean(service, name, var, value))


@FEW
@given(field=st.sampled_from(FIELDS), value=YAML_VALUES)
def test_any_config_file_value(
    field: tuple[str, str], value: Any, isolated_config: Path, tally: Tally
) -> None:
    service, name = field
    path = isolated_config / "user.yaml"
    path.write_text(yaml.safe_dump({service: {name: value}}), encoding="utf-8")
    try:
        outcome = expect_clean(service, name, f"{path}:{service}.{name}", str(value))
    finally:
        path.unlink()
    tally.add("config file values", outcome)


@FEW
@given(text=st.text(max_size=80) | st.binary(max_size=80))
def test_any_config_file_text(text: str | bytes, isolated_config: Path, tally: Tally) -> None:
    path = isolated_config / "system.yaml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(text)
    try:
        reload().service("postgres")
    except ConfigurationError as exc:
        assert str(path) in str(exc), str(exc)  # the file is named (no field to name here)
        tally.add("config file texts", "error")
    else:
        tally.add("config file texts", "ok")
    finally:
        path.unlink()


@FEW
@given(
    field=st.sampled_from(FIELDS),
    value=TEXT,
    bom=st.booleans(),
    ending=st.sampled_from(["", "\n", "\r\n", "\n\n", " ", "\t\n"]),
)
def test_any_secret_file(
    field: tuple[str, str],
    value: str,
    bom: bool,
    ending: str,
    isolated_config: Path,
    tally: Tally,
) -> None:
    """BOM and exactly one trailing newline go, anything else stays part of the value."""
    service, name = field
    directory = isolated_config / "secrets"
    directory.mkdir(exist_ok=True)
    path = directory / secret_file_name(service, name)
    path.write_bytes(("\ufeff" if bom else "").encode() + (value + ending).encode())
    try:
        outcome = expect_clean(service, name, str(path), value)
        expected = value + ending
        for newline in ("\r\n", "\n"):
            if expected.endswith(newline):
                expected = expected[: -len(newline)]
                break
        if outcome == "ok" and (service, name) in SECRET and expected:
            assert reload().service(service).secret(name) == expected
    finally:
        path.unlink()
    tally.add("secret files", outcome)


@settings(FEW, max_examples=40)
@given(field=st.sampled_from(FIELDS), junk=st.binary(min_size=1, max_size=8))
def test_secret_file_that_is_not_utf8_or_a_directory(
    field: tuple[str, str], junk: bytes, isolated_config: Path, tally: Tally
) -> None:
    service, name = field
    path = isolated_config / "secrets" / secret_file_name(service, name)
    path.mkdir(parents=True)
    try:
        with pytest.raises(ConfigurationError, match="is a directory") as info:
            load(service)
        assert f"{service}.{name}" in str(info.value) and str(path) in str(info.value)
    finally:
        path.rmdir()
    path.write_bytes(b"\xff\xfe" + junk)  # never valid UTF-8 at the start
    try:
        with pytest.raises(ConfigurationError, match="not UTF-8") as info:
            load(service)
        assert f"{service}.{name}" in str(info.value) and str(path) in str(info.value)
    finally:
        path.unlink()
    tally.add("secret files not text", "error")


URL_FIELDS = [
    ("s3", "endpoint_url"),
    ("datahub", "gms_url"),
    ("ray", "dashboard_url"),
    ("mlflow", "tracking_uri"),
]
PORT_FIELDS = [("postgres", "port"), ("trino", "port"), ("ray", "client_port")]
HOSTS = st.sampled_from(["h", "minio.svc", "127.0.0.1", "[::1]", "[::1", "", "a b", "u:p@h"])
PORTS = st.one_of(
    st.integers(-1, 70000).map(str), st.sampled_from(["", "abc", "0x50", "1e3", " 80", "٣"])
)
URLS = st.builds(
    lambda scheme, host, port, path: (
        f"{scheme}{host}{':' if port is not None else ''}{port or ''}{path}"
    ),
    st.sampled_from(["http://", "https://", "ftp://", "", "http:/", "s3://", "HTTP://"]),
    HOSTS,
    st.none() | PORTS,
    st.sampled_from(["", "/", "/api/gms", "?x=1", "#f", "/a b"]),
)


@FEW
@given(field=st.sampled_from(URL_FIELDS), url=URLS | TEXT)
def test_malformed_urls(field: tuple[str, str], url: str, tally: Tally) -> None:
    service, name = field
    var = env_var(service, name)
    with env(var, url):
        outcome = expect_clean(service, name, var)
        value = getattr(reload().service(service), name) if outcome == "ok" else None
        if value is not None and service != "mlflow":  # mlflow checks its URI when used
            parts = urlsplit(value)
            assert parts.scheme in ("http", "https") and parts.hostname, value
            assert parts.port is None or 0 < parts.port < 65536, value
    tally.add("URLs and ports", outcome)


@FEW
@given(field=st.sampled_from(PORT_FIELDS), port=PORTS)
def test_malformed_ports(field: tuple[str, str], port: str, tally: Tally) -> None:
    service, name = field
    var = env_var(service, name)
    with env(var, port):
        outcome = expect_clean(service, name, var)
        if outcome == "ok":
            assert 0 < int(str(getattr(reload().service(service), name))) < 65536
    tally.add("URLs and ports", outcome)


@FEW
@given(servers=st.lists(st.builds("{}:{}".format, HOSTS, PORTS) | TEXT, min_size=1, max_size=3))
def test_malformed_kafka_bootstrap_servers(servers: list[str], tally: Tally) -> None:
    var = env_var("kafka", "bootstrap_servers")
    with env(var, ",".join(servers)):
        outcome = expect_clean("kafka", "bootstrap_servers", var)
        if outcome == "ok" and reload().kafka.bootstrap_servers is not None:
            for entry in str(reload().kafka.bootstrap_servers).split(","):
                host, _, port = entry.rpartition(":")
                assert host and 0 < int(port) < 65536, entry
    tally.add("URLs and ports", outcome)
