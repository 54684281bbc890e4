"""S3 connector without a server: URLs, option shapes, argument checks, lazy imports, progress."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import timedelta

import pytest

from carbon_sdk import ConfigurationError, s3
from carbon_sdk._progress import interactive, progress_bar
from carbon_sdk.settings.carbon import configure

SECRET = "s3cr3t-value-never-shown"


@pytest.fixture
def configured() -> None:
    configure(
        s3={
            "endpoint_url": "https://minio.example:9000",
            "access_key_id": "AKID",
            "secret_access_key": SECRET,
            "bucket": "scratch",
        }
    )


@pytest.mark.parametrize(
    ("url", "bucket", "key", "is_prefix"),
    [
        ("s3://b", "b", "", True),
        ("s3://b/", "b", "", True),
        ("s3://b/k.parquet", "b", "k.parquet", False),
        ("s3://b/dir/", "b", "dir/", True),
        ("s3://b/a/b/c", "b", "a/b/c", False),
    ],
)
def test_url_parsing(url: str, bucket: str, key: str, is_prefix: bool) -> None:
    parsed = s3.S3Url.parse(url)
    assert (parsed.bucket, parsed.key, parsed.is_prefix) == (bucket, key, is_prefix)
    assert parsed.prefix in ("", key if is_prefix else key + "/")


@pytest.mark.parametrize("url", ["bucket/key", "s3://", "s3:///key", "https://b/k", ""])
def test_bad_urls_say_what_is_expected(url: str) -> None:
    with pytest.raises(ValueError, match=r"s3://bucket/key"):
        s3.S3Url.parse(url)


def test_url_uses_the_default_bucket(configured: None) -> None:
    assert s3.url("reports", "/daily.parquet") == "s3://scratch/reports/daily.parquet"


def test_url_without_default_bucket_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match=r"CARBON_S3__BUCKET"):
        s3.url("x")


def test_storage_options_shape(configured: None) -> None:
    options = s3.storage_options()
    assert options["endpoint_url"] == "https://minio.example:9000"
    assert options["key"] == "AKID"
    assert options["secret"] == SECRET
    assert options["config_kwargs"]["s3"] == {"addressing_style": "path"}
    assert options["config_kwargs"]["retries"] == {"mode": "standard", "max_attempts": 3}
    assert options["client_kwargs"] == {"region_name": "us-east-1", "verify": True}


def test_arrow_filesystem_splits_the_endpoint(configured: None) -> None:
    fs = s3.arrow_filesystem()
    assert fs.region == "us-east-1"
    # pyarrow exposes its options through pickling: scheme and host are separate
    state = repr(fs.__reduce__())
    assert "minio.example:9000" in state
    assert "https://minio.example" not in state


def test_arrow_filesystem_refuses_verify_false(configured: None) -> None:
    configure(s3={"verify": False})
    with pytest.raises(ConfigurationError, match=r"s3\.ca_bundle"):
        s3.arrow_filesystem()


def test_client_is_configured_for_path_style(configured: None) -> None:
    client = s3.client()
    assert client.meta.endpoint_url == "https://minio.example:9000"
    assert client.meta.config.s3 == {"addressing_style": "path"}
    assert client.meta.config.retries["mode"] == "standard"
    assert SECRET not in repr(client.meta.config)


@pytest.mark.parametrize("expires", [0, 8 * 24 * 3600, timedelta(days=8)])
def test_presign_rejects_out_of_range_expiry(configured: None, expires: object) -> None:
    with pytest.raises(ValueError, match="7 days"):
        s3.presign("s3://b/k", expires=expires)  # type: ignore[arg-type]


def test_presign_needs_an_object(configured: None) -> None:
    with pytest.raises(ValueError, match="prefix"):
        s3.presign("s3://b/dir/")


def test_transfer_config_uses_the_settings(configured: None) -> None:
    configure(s3={"multipart_chunksize": 8 * 2**20, "max_concurrency": 4})
    config = s3.transfer_config()
    assert (config.multipart_chunksize, config.max_concurrency) == (8 * 2**20, 4)


def test_chunk_size_below_the_s3_minimum_is_a_configuration_error() -> None:
    configure(s3={"multipart_chunksize": 1024})
    with pytest.raises(ConfigurationError, match=r"s3\.multipart_chunksize"):
        s3.transfer_config()


def test_importing_s3_does_not_import_boto3() -> None:
    code = (
        "import sys\nfrom carbon_sdk import s3\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'boto3', 'botocore', 's3fs', 'pyarrow', 'pandas', 'tqdm'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_progress_is_off_when_not_interactive() -> None:
    assert not interactive()  # pytest captures stderr: not a terminal, not a kernel
    with progress_bar(10, "x", extra="s3") as update:
        update(5)


def test_progress_bar_when_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    with progress_bar(2048, "upload s3://b/k", extra="s3", enabled=True) as update:
        update(1024)
        update(1024)
    assert "upload s3://b/k" in stream.getvalue()
    assert "100%" in stream.getvalue()
