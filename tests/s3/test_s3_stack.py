"""The S3 connector against the real SeaweedFS S3 server of the session's stack."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from reliability.report import FaultLog
from unit.listeners import Proxy

import carbon_sdk
from carbon_sdk import AuthFailed, NotFound, Unreachable, s3
from carbon_sdk.dev.pytest_plugin import StackEnv
from carbon_sdk.health import Status
from carbon_sdk.settings.carbon import configure

pytestmark = pytest.mark.stack

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pytest.importorskip("boto3")


def _key(url: str) -> tuple[str, str]:
    parsed = s3.S3Url.parse(url)
    return parsed.bucket, parsed.key


@pytest.fixture
def s3_env(stack_env: StackEnv) -> dict[str, str]:
    """The SDK pointed at the stack's S3 (``CARBON_S3__*``)."""
    return stack_env("s3")


@pytest.fixture
def prefix(s3_env: dict[str, str], fresh_bucket_prefix: str) -> str:
    """``s3://scratch/<unique>/`` with the SDK pointed at the stack."""
    return fresh_bucket_prefix


def test_every_client_factory_reaches_the_server(prefix: str) -> None:
    bucket, key = _key(prefix)
    s3.client().put_object(Bucket=bucket, Key=key + "a.txt", Body=b"hello")
    assert s3.resource().Object(bucket, key + "a.txt").get()["Body"].read() == b"hello"
    assert s3.filesystem().cat(f"{bucket}/{key}a.txt") == b"hello"
    with s3.arrow_filesystem().open_input_stream(f"{bucket}/{key}a.txt") as stream:
        assert stream.read() == b"hello"


def test_pandas_storage_options_and_arrow_dataset(prefix: str) -> None:
    df = pd.DataFrame({"n": [1, 2, 3], "s": ["a", "b", "c"]})
    df.to_parquet(prefix + "part-0.parquet", storage_options=s3.storage_options())
    s3.write_parquet(df, prefix + "part-1.parquet")
    back = pd.read_parquet(prefix + "part-0.parquet", storage_options=s3.storage_options())
    assert back["n"].tolist() == [1, 2, 3]
    import pyarrow.dataset as ds

    bucket, key = _key(prefix)
    dataset = ds.dataset(f"{bucket}/{key}", filesystem=s3.arrow_filesystem(), format="parquet")
    assert dataset.to_table().num_rows == 6
    assert s3.read_parquet(prefix, as_="arrow").num_rows == 6  # a prefix reads as a dataset


def test_parquet_round_trip_keeps_types(prefix: str) -> None:
    df = pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="Int64"),
            "ts": pd.to_datetime(
                ["2024-01-01T00:00:00Z", None, "2024-06-30T12:34:56.789Z"], format="ISO8601"
            ),
            "d": [Decimal("1.10"), None, Decimal("-3.25")],
            "s": ["a", None, "ü"],
        }
    )
    url = s3.write_parquet(df, prefix + "typed.parquet")
    table = s3.read_parquet(url, as_="arrow")
    assert table.schema.field("i").type == pa.int64()
    assert table.schema.field("ts").type.tz == "UTC"
    assert pa.types.is_decimal(table.schema.field("d").type)
    back = s3.read_parquet(url)
    assert str(back["i"].dtype) == "Int64"
    assert back["i"].isna().tolist() == [False, True, False]
    assert back["ts"].iloc[2] == pd.Timestamp("2024-06-30T12:34:56.789Z")
    assert back["d"].tolist()[::2] == [Decimal("1.10"), Decimal("-3.25")]
    assert back["s"].tolist()[::2] == ["a", "ü"]
    assert s3.read_parquet(url, columns=["s"], as_="arrow").column_names == ["s"]


def test_upload_and_download_a_file(prefix: str, tmp_path: Path) -> None:
    source = tmp_path / "blob.bin"
    source.write_bytes(os.urandom(6 * 2**20))  # above the 5 MiB part size set below: multipart
    configure(s3={"multipart_chunksize": 5 * 2**20})
    assert s3.upload(source, prefix) == [prefix + "blob.bin"]
    assert s3.upload(source, prefix + "renamed.bin") == [prefix + "renamed.bin"]
    out = tmp_path / "out"
    out.mkdir()
    assert s3.download(prefix + "blob.bin", out) == [out / "blob.bin"]
    assert (out / "blob.bin").read_bytes() == source.read_bytes()
    assert s3.download(prefix + "renamed.bin", out / "copy.bin") == [out / "copy.bin"]
    assert (out / "copy.bin").read_bytes() == source.read_bytes()


def test_upload_and_download_a_directory(prefix: str, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    files = {"a.txt": b"a", "sub/b.txt": b"bb", "sub/deeper/c.txt": b"ccc"}
    for name, data in files.items():
        (tree / name).write_bytes(data)
    urls = s3.upload(tree, prefix + "tree")
    assert sorted(urls) == sorted(f"{prefix}tree/{name}" for name in files)
    out = tmp_path / "copy"
    written = s3.download(prefix + "tree/", out)
    assert len(written) == 3
    for name, data in files.items():
        assert (out / name).read_bytes() == data


def test_ls_paginates_and_lists_like_a_directory(prefix: str) -> None:
    bucket, key = _key(prefix)
    client = s3.client()
    for i in range(7):
        client.put_object(Bucket=bucket, Key=f"{key}flat/{i}.txt", Body=b"x")
    client.put_object(Bucket=bucket, Key=f"{key}nested/x/y.txt", Body=b"x")
    shared = s3._shared_client(carbon_sdk.get_settings().s3)
    calls: list[str] = []
    shared.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: calls.append("x"))
    try:
        urls = s3.ls(prefix + "flat", page_size=2)
    finally:
        shared.meta.events.unregister("before-call.s3.ListObjectsV2")
    assert urls == [f"{prefix}flat/{i}.txt" for i in range(7)]
    assert len(calls) == 4  # 2 + 2 + 2 + 1
    assert s3.ls(prefix) == [prefix + "flat/", prefix + "nested/"]
    assert s3.ls(prefix + "nested", recursive=True) == [prefix + "nested/x/y.txt"]
    assert s3.ls(prefix + "flat/0.txt") == [prefix + "flat/0.txt"]
    assert s3.ls(prefix + "empty/") == []
    table = s3.objects(prefix + "flat/", page_size=3)
    assert table["size"].tolist() == [1] * 7
    assert table["last_modified"].dt.tz is not None
    client.delete_object(Bucket=bucket, Key=f"{key}nested/x/y.txt")
    assert s3.ls(prefix + "nested/x/") == []  # no leftover "directory" entry
    assert s3.objects(prefix + "nested/x/").empty


def test_presigned_url_downloads_without_credentials(prefix: str) -> None:
    bucket, key = _key(prefix)
    s3.client().put_object(Bucket=bucket, Key=key + "shared.txt", Body=b"presigned")
    signed = s3.presign(prefix + "shared.txt", expires=60)
    assert "X-Amz-Signature" in signed
    with urllib.request.urlopen(signed, timeout=10) as response:
        assert response.read() == b"presigned"
    put = s3.presign(prefix + "put.txt", method="PUT")
    request = urllib.request.Request(put, data=b"uploaded", method="PUT")
    with urllib.request.urlopen(request, timeout=10):
        pass
    assert s3.client().get_object(Bucket=bucket, Key=key + "put.txt")["Body"].read() == b"uploaded"


# -- bad input and faults ---------------------------------------------------------------


def test_missing_bucket_is_not_found_naming_the_bucket(s3_env: dict[str, str]) -> None:
    missing = "no-such-bucket-carbon"
    for call in (
        lambda: s3.ls(f"s3://{missing}/"),
        lambda: s3.read_parquet(f"s3://{missing}/x.parquet"),
        lambda: s3.download(f"s3://{missing}/x.bin", "."),
        lambda: s3.write_parquet(pd.DataFrame({"a": [1]}), f"s3://{missing}/x.parquet"),
        lambda: s3.upload(__file__, f"s3://{missing}/x.py"),
    ):
        with pytest.raises(NotFound, match=f"bucket '{missing}' does not exist"):
            call()
    assert missing not in {b["Name"] for b in s3.client().list_buckets()["Buckets"]}


def test_missing_object_is_not_found_naming_the_key(prefix: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for call in (
        lambda: s3.read_parquet(prefix + "absent.parquet"),
        lambda: s3.download(prefix + "absent.parquet", out),
        lambda: s3.download(prefix + "absent/", out),
    ):
        with pytest.raises(NotFound, match=f"no object {prefix}absent"):
            call()
    assert not list(out.iterdir())


def test_unsupported_dtype_writes_nothing(prefix: str) -> None:
    df = pd.DataFrame({"mixed": [1, "two", object()]})
    with pytest.raises(TypeError, match="mixed"):
        s3.write_parquet(df, prefix + "bad.parquet")
    assert s3.ls(prefix) == []


def test_wrong_secret_is_auth_failed_naming_the_setting_not_the_secret(
    prefix: str, tmp_path: Path
) -> None:
    wrong = "wrong-secret-" + "x" * 20
    configure(s3={"secret_access_key": wrong})
    for call in (
        lambda: s3.ls(prefix),
        lambda: s3.read_parquet(prefix + "x.parquet"),
        lambda: s3.upload(__file__, prefix),
        lambda: s3.download(prefix + "x.parquet", tmp_path),
    ):
        with pytest.raises(AuthFailed) as info:
            call()
        message = str(info.value)
        assert "s3.secret_access_key" in message
        assert wrong not in message
        assert os.environ["CARBON_S3__SECRET_ACCESS_KEY"] not in message


def _closed_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_wrong_port_is_unreachable_within_the_timeout(
    s3_env: dict[str, str], fault_log: FaultLog
) -> None:
    configure(
        s3={
            "endpoint_url": f"http://127.0.0.1:{_closed_port()}",
            "connect_timeout": 1,
            "max_attempts": 2,
        }
    )
    for call in (lambda: s3.ls("s3://scratch/"), lambda: s3.read_parquet("s3://scratch/x")):
        started = time.monotonic()
        with pytest.raises(Unreachable, match=r"s3\.endpoint_url=http://127\.0\.0\.1"):
            call()
        fault_log("s3", "stopped", Unreachable, time.monotonic() - started, 5)
        assert time.monotonic() - started < 5  # refused, retried once after a backoff


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_silent_server_is_unreachable_after_connect_timeout(
    s3_env: dict[str, str], silent_server: int
) -> None:
    """The first byte of an answer must come within connect_timeout (docs/configuration.md,
    "What bounds a call"), whatever request_timeout and max_attempts say."""
    configure(
        s3={
            "endpoint_url": f"http://127.0.0.1:{silent_server}",
            "connect_timeout": 1,
            "request_timeout": 300,
            "max_attempts": 3,
        }
    )
    started = time.monotonic()
    with pytest.raises(Unreachable, match="no answer within 1 s"):
        s3.ls("s3://scratch/")
    assert time.monotonic() - started < 5


def test_doctor_ok_then_auth_failed(s3_env: dict[str, str]) -> None:
    result = carbon_sdk.doctor("s3").results[0]
    assert result.status is Status.OK, result.detail
    assert "default scratch ok" in result.detail
    configure(s3={"secret_access_key": "wrong"})
    result = carbon_sdk.doctor("s3").results[0]
    assert result.status is Status.AUTH_FAILED
    assert "s3.secret_access_key" in result.detail
    assert s3_env["CARBON_S3__SECRET_ACCESS_KEY"] not in result.detail


def test_doctor_names_a_missing_default_bucket(s3_env: dict[str, str]) -> None:
    configure(s3={"bucket": "no-such-default-bucket"})
    result = carbon_sdk.doctor("s3").results[0]
    assert result.status is Status.MISCONFIGURED
    assert "no-such-default-bucket" in result.detail
    assert "s3.bucket" in result.detail


def test_read_parquet_returns_utc_timestamps(prefix: str) -> None:
    when = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    url = s3.write_parquet(
        pa.table({"t": pa.array([when], pa.timestamp("us", tz="UTC"))}), prefix + "t.parquet"
    )
    assert s3.read_parquet(url, as_="arrow")["t"][0].as_py() == when


def test_an_interrupted_upload_leaves_no_multipart_upload(prefix: str, tmp_path: Path) -> None:
    import signal
    import threading

    source = tmp_path / "big.bin"
    size = 1024 * 2**20  # sparse; large enough that the interrupt lands mid-upload
    with source.open("wb") as out:
        out.truncate(size)
    configure(s3={"multipart_chunksize": 5 * 2**20, "max_concurrency": 1})
    bucket, key = _key(prefix)
    client = s3.client()
    main = threading.main_thread().ident
    sent = threading.Event()

    def interrupt_once_started() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads"):
                time.sleep(0.05)  # a part or so in
                signal.pthread_kill(main, signal.SIGINT)  # what a notebook interrupt does
                sent.set()
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=interrupt_once_started, daemon=True)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        s3.upload(source, prefix + "big.bin", progress=False)
    watcher.join()
    assert sent.is_set()
    assert client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", []) == []
    # Nothing half-written: no object, or (the interrupt came after the upload was completed)
    # the whole one.
    left = client.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
    assert [o["Size"] for o in left] in ([], [size])


def test_an_upload_cut_mid_way_fails_within_the_timeout_and_leaves_no_parts(
    s3_env: dict[str, str], prefix: str, tmp_path: Path, fault_log: FaultLog
) -> None:
    """The connection cut mid-upload (every part's request, retries included, reset by a
    fault-injection proxy in front of the real server): an error within the configured
    deadline, the multipart upload aborted with no parts left, nothing written; once the
    network is back the same client uploads the file."""
    source = tmp_path / "cut.bin"
    size = 24 * 2**20
    source.write_bytes(os.urandom(size))
    port = int(s3_env["CARBON_S3__ENDPOINT_URL"].rsplit(":", 1)[1].strip("/"))
    proxy = Proxy(port, cut_after=8 * 2**20)  # a part or so in
    bounds = {"connect_timeout": 2.0, "request_timeout": 10.0}
    configure(
        s3={
            "endpoint_url": f"http://127.0.0.1:{proxy.port}",
            "multipart_chunksize": 5 * 2**20,
            "max_concurrency": 2,
            **bounds,
        }
    )
    bucket, key = _key(prefix)
    direct = s3.client(endpoint_url=s3_env["CARBON_S3__ENDPOINT_URL"])
    try:
        started = time.monotonic()
        with pytest.raises(carbon_sdk.ServiceError) as info:
            s3.upload(source, prefix + "cut.bin", progress=False)
        elapsed = time.monotonic() - started
        bound = bounds["connect_timeout"] + bounds["request_timeout"]  # the shared deadline
        fault_log("s3", "killed mid-operation", info.value, elapsed, bound)
        assert proxy.cuts > 0
        assert str(info.value).startswith("s3 at "), str(info.value)
        assert elapsed < bound, f"{elapsed:.1f} s: {info.value}"
        assert direct.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", []) == []
        assert direct.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", []) == []
        proxy.heal()
        assert s3.upload(source, prefix + "cut.bin", progress=False) == [prefix + "cut.bin"]
        head = direct.head_object(Bucket=bucket, Key=key + "cut.bin")
        assert head["ContentLength"] == size
    finally:
        proxy.stop()
