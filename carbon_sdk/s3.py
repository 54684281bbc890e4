"""S3 (MinIO, SeaweedFS, AWS): settings, configured clients, file and Parquet helpers, doctor check.

Every client here comes from the same settings: endpoint, path-style addressing, region, keys,
CA bundle / verify, timeouts and retries::

    from carbon_sdk import s3

    s3.client()                 # boto3 client          s3.resource()   # boto3 resource
    s3.filesystem()             # s3fs (fsspec)         s3.arrow_filesystem()  # pyarrow.fs
    pandas.read_parquet("s3://bucket/x.parquet", storage_options=s3.storage_options())

    s3.upload("data/", "s3://bucket/prefix/")       s3.download("s3://bucket/prefix/", "data/")
    s3.ls("s3://bucket/prefix/")                    s3.objects("s3://bucket/prefix/")
    s3.write_parquet(df, "s3://bucket/x.parquet")   s3.read_parquet("s3://bucket/x.parquet")
    s3.presign("s3://bucket/x.parquet", expires=3600)

Errors are carbon-sdk errors naming what to fix: :class:`~carbon_sdk.AuthFailed` (with where
``s3.access_key_id``/``s3.secret_access_key`` came from), :class:`~carbon_sdk.Unreachable`,
:class:`~carbon_sdk.TLSError`, :class:`~carbon_sdk.NotFound` naming the bucket or the key.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from carbon_sdk._classify import ErrorTable, Rule, untrusted_certificate
from carbon_sdk._lazy import import_client
from carbon_sdk._log import client_created
from carbon_sdk._progress import Update, progress_bar
from carbon_sdk._redact import redact
from carbon_sdk._tables import TableFormat, check_format, convert, to_arrow
from carbon_sdk._timeouts import Deadline, Waited, budget, first_wait, mark, waited_on
from carbon_sdk.errors import (
    AuthFailed,
    ConfigurationError,
    NotFound,
    ServiceError,
    TLSError,
    Unreachable,
)
from carbon_sdk.settings import ServiceSettings
from carbon_sdk.settings.values import http_url

if TYPE_CHECKING:
    import pyarrow as pa

SERVICE = "s3"
SCHEME = "s3://"
MiB = 1024 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the SigV4 limit


class S3Settings(ServiceSettings):
    """The platform's S3-compatible object store (the AWS_* variables work)."""

    service: ClassVar[str] = SERVICE
    required: ClassVar[tuple[str, ...]] = ("endpoint_url", "access_key_id", "secret_access_key")
    endpoint_fields: ClassVar[tuple[str, ...]] = ("endpoint_url",)
    env_aliases: ClassVar[dict[str, tuple[str, ...]]] = {
        "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        "access_key_id": ("AWS_ACCESS_KEY_ID",),
        "secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
        "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
        "ca_bundle": ("AWS_CA_BUNDLE",),
    }

    endpoint_url: str | None = Field(None, description="S3 endpoint, e.g. https://minio:9000.")
    access_key_id: str | None = Field(None, description="Access key id.")
    secret_access_key: SecretStr | None = Field(None, description="Secret access key.")
    region: str = Field("us-east-1", description="Region name used for signing.")
    bucket: str | None = Field(None, description="Default bucket (checked by doctor).")
    addressing_style: Literal["path", "virtual", "auto"] = Field(
        "path", description="path-style for MinIO/SeaweedFS; virtual for AWS."
    )
    multipart_chunksize: int = Field(
        16 * MiB,
        ge=5 * MiB,
        description="Bytes per part of multipart uploads and ranged downloads (also the size "
        "above which a transfer is split).",
    )
    max_concurrency: int = Field(
        16, ge=1, le=256, description="Parallel requests of one transfer (parts or files)."
    )

    @field_validator("endpoint_url")
    @classmethod
    def _valid_endpoint(cls, url: str | None) -> str | None:
        return http_url(url, credentials=False) if url else url

    @property
    def endpoint(self) -> str:
        """The endpoint URL (never contains credentials)."""
        return self.endpoint_url or "default AWS endpoint"


Settings = S3Settings


def _settings(**overrides: Any) -> S3Settings:
    settings = S3Settings.load(**overrides)
    settings.require()
    return settings


# -- URLs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Url:
    """``s3://bucket/key`` split into its parts; ``key`` may be empty or end with ``/``."""

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Url:
        """Parse ``s3://bucket[/key]``; anything else is a ValueError saying what is expected."""
        if not isinstance(url, str) or not url.startswith(SCHEME):
            raise ValueError(f"expected an s3://bucket/key URL, got {url!r}")
        bucket, _, key = url[len(SCHEME) :].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {url!r}; expected s3://bucket/key")
        return cls(bucket, key)

    @property
    def is_prefix(self) -> bool:
        """Whether the URL names a "directory": the bucket root or a key ending with ``/``."""
        return not self.key or self.key.endswith("/")

    @property
    def prefix(self) -> str:
        """The key as a listing prefix: ``''`` or ending with ``/``."""
        return self.key if self.is_prefix else self.key + "/"

    def child(self, relative: str) -> S3Url:
        """The URL of ``relative`` (a POSIX path) under this prefix."""
        return S3Url(self.bucket, self.prefix + relative)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def url(*parts: str) -> str:
    """``s3://<default bucket>/<parts joined by />``: the default bucket is ``s3.bucket``.

    >>> s3.url("reports", "daily.parquet")   # doctest: +SKIP
    's3://scratch/reports/daily.parquet'
    """
    settings = S3Settings.load()
    settings.require("bucket")
    return str(S3Url(str(settings.bucket), "/".join(p.strip("/") for p in parts if p)))


# -- errors --------------------------------------------------------------------------------


def classify(
    exc: BaseException, settings: S3Settings, *, bucket: str | None = None, key: str | None = None
) -> ServiceError:
    """Turn a botocore or pyarrow error into the carbon-sdk error that says what to fix.

    ``bucket``/``key`` are what the failed call addressed; NotFound errors name them. Secret
    values never appear in the message.
    """
    kind, message = _classify(exc, settings, bucket, key)
    return kind(SERVICE, settings.endpoint, redact(message, settings.secret_values()))


Diagnosis = tuple[type[ServiceError], str]
MISSING_CODES = ("NoSuchBucket", "NoSuchKey", "404", "NotFound")

ERRORS = ErrorTable(
    Rule(TLSError, types=("botocore.exceptions.SSLError",), text=("ssl", "certificate")),
    Rule(
        Unreachable,
        types=(
            "botocore.exceptions.EndpointConnectionError",
            "botocore.exceptions.ConnectTimeoutError",
            "botocore.exceptions.ReadTimeoutError",
        ),
        # pyarrow's S3 errors carry the AWS SDK's error names in their text
        text=("network_connection", "curlcode", "could not connect", "timeout was reached"),
    ),
    Rule(
        AuthFailed,
        codes=("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"),
        text=("invalid_access_key_id", "signature_does_not_match"),
    ),
    Rule(AuthFailed, "denied", codes=("AccessDenied", "403", "Forbidden"), text=("access_denied",)),
    Rule(
        NotFound,
        types=("builtins.FileNotFoundError",),
        codes=MISSING_CODES,
        text=("no_such_bucket",),
    ),
)


def _classify(
    exc: BaseException, settings: S3Settings, bucket: str | None, key: str | None
) -> Diagnosis:
    exceptions = import_client("botocore.exceptions", "s3")
    code, message = "", f"{type(exc).__name__}: {exc}"
    if isinstance(exc, exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = f"{code}: {error.get('Message') or exc}"
    rule = ERRORS.match(exc, code)
    if rule is None:
        return ServiceError, message
    if rule.error is TLSError:
        fix = untrusted_certificate(settings, str(exc)) or _fix(settings, "ca_bundle", "verify")
        return TLSError, f"{exc}; {fix}"
    if rule.error is Unreachable:
        return Unreachable, _unreachable(exc, settings)
    if rule.error is AuthFailed:
        return _denied(message, settings, bucket, key, wrong_key=rule.fix != "denied")
    if code == "NoSuchBucket" or "NO_SUCH_BUCKET" in str(exc) or key is None:
        return _missing(settings, bucket, None, code or "not found")
    return _missing(settings, bucket, key, code or "not found")


def _unreachable(exc: BaseException, settings: S3Settings) -> str:
    """What timed out or failed, with the time really waited when the client recorded it."""
    exceptions = import_client("botocore.exceptions", "s3")
    waited = waited_on(exc)
    if isinstance(exc, exceptions.ReadTimeoutError):
        said = str(waited) if waited else f"no answer within {settings.request_timeout:g} s"
        return f"{said}; {_fix(settings, 'endpoint_url', 'connect_timeout', 'request_timeout')}"
    said = f"{exc} (waited {waited.elapsed:.1f} s)" if waited else str(exc)
    return f"{said}; {_fix(settings, 'endpoint_url')}"


def _denied(
    message: str, settings: S3Settings, bucket: str | None, key: str | None, *, wrong_key: bool
) -> Diagnosis:
    credentials = _fix(settings, "access_key_id", "secret_access_key")
    if wrong_key:
        return AuthFailed, f"{message}; {credentials}"
    target = f" to {_display(bucket, key)}" if bucket else ""
    return AuthFailed, (
        f"access denied{target} ({message}): the key pair is wrong or lacks permission; "
        f"{credentials}"
    )


def _missing(settings: S3Settings, bucket: str | None, key: str | None, cause: str) -> Diagnosis:
    if bucket and key is not None:
        return NotFound, f"no object {_display(bucket, key)} ({cause})"
    hint = ""
    if bucket and bucket == settings.bucket:
        hint = f"; it is the default bucket: {_fix(settings, 'bucket')}"
    return NotFound, f"bucket {bucket!r} does not exist ({cause}){hint}"


def _display(bucket: str | None, key: str | None) -> str:
    return f"{SCHEME}{bucket}/{key or ''}"


def _fix(settings: S3Settings, *names: str) -> str:
    """``check s3.x=value (env CARBON_S3__X)``: the settings to fix and where they came from."""
    return f"check {settings.describe(*names)}; `carbon-sdk config show s3` lists every source"


def _which_missing(client: Any, settings: S3Settings, target: S3Url, cause: str) -> ServiceError:
    """The NotFound for a missing object or prefix: is it the bucket, or the key?"""
    try:
        client.head_bucket(Bucket=target.bucket)
    except _boto_errors() as exc:
        return classify(exc, settings, bucket=target.bucket)
    kind, message = _missing(settings, target.bucket, target.key, cause)
    return kind(SERVICE, settings.endpoint, message)


def _boto_errors() -> tuple[type[BaseException], ...]:
    exceptions = import_client("botocore.exceptions", "s3")
    return (exceptions.BotoCoreError, exceptions.ClientError)


# -- client factories ----------------------------------------------------------------------


def _boto_kwargs(settings: S3Settings) -> dict[str, Any]:
    """Keyword arguments of ``Session.client/resource("s3", ...)`` (secret unwrapped here)."""
    config = import_client("botocore.config", "s3").Config(
        region_name=settings.region,
        signature_version="s3v4",
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.request_timeout,
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        s3={"addressing_style": settings.addressing_style},
        max_pool_connections=max(10, settings.max_concurrency),
    )
    client_created(settings, "boto3 S3 client")
    return {
        "endpoint_url": settings.endpoint_url,
        "aws_access_key_id": settings.access_key_id,
        "aws_secret_access_key": settings.secret("secret_access_key"),
        "verify": settings.tls_verify(),
        "config": config,
    }


_DEADLINE = "carbon_sdk.deadline"


class _Bounds:
    """The call bounds (docs/configuration.md, "What bounds a call") of one botocore client,
    applied through its events.

    botocore fixes a client's read timeout (``request_timeout``) for every request, so before
    the client's first request :meth:`first_byte` sends an unsigned ``HEAD /`` to the endpoint
    on a connection of its own, through botocore's HTTP session with the client's TLS and proxy
    settings and ``connect_timeout`` for both the connection and the first byte; any HTTP answer
    counts. A request's attempts share one :class:`~carbon_sdk._timeouts.Deadline`:
    :meth:`retry` vetoes botocore's retries once it has passed (an attempt already running is
    not cut short) and records the time waited on the error.
    """

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.answered = False

    def register(self, events: Any) -> None:
        """Hook into a client's event system (``client.meta.events``)."""
        events.register(f"before-call.{SERVICE}", self.start)
        events.register(f"before-send.{SERVICE}", self.first_byte)
        events.register_first(f"needs-retry.{SERVICE}", self.retry)

    def start(self, context: dict[str, Any], **kwargs: Any) -> None:
        """Start the deadline of a request (before its first attempt)."""
        context[_DEADLINE] = Deadline(budget(self.settings, answered=self.answered))

    def first_byte(self, request: Any, **kwargs: Any) -> None:
        """Until the endpoint has answered once: check it answers within ``connect_timeout``."""
        if self.answered:
            return
        httpsession = import_client("botocore.httpsession", "s3")
        awsrequest = import_client("botocore.awsrequest", "s3")
        utils = import_client("botocore.utils", "s3")
        scheme, netloc, *_ = urlsplit(request.url)
        base = f"{scheme}://{netloc}/"
        timeout = self.settings.connect_timeout
        session = httpsession.URLLib3Session(
            verify=self.settings.tls_verify(),
            proxies=utils.get_environ_proxies(base),
            timeout=(timeout, timeout),
        )
        try:
            session.send(awsrequest.AWSRequest(method="HEAD", url=base).prepare())
        finally:
            session.close()
        self.answered = True

    def retry(
        self, request_dict: dict[str, Any], caught_exception: BaseException | None, **kwargs: Any
    ) -> bool | None:
        """``False`` (no retry) once the request's deadline has passed, else None (botocore's
        retry policy decides); records the time waited on a failed attempt's exception."""
        deadline = request_dict.get("context", {}).get(_DEADLINE)
        if not isinstance(deadline, Deadline):
            return None
        if caught_exception is not None:
            wait = first_wait(self.settings, answered=self.answered)
            mark(caught_exception, Waited(wait, deadline.elapsed()))
        return False if deadline.expired else None


def _bounded(boto_client: Any, settings: S3Settings) -> Any:
    """``boto_client`` with :class:`_Bounds` applied."""
    _Bounds(settings).register(boto_client.meta.events)
    return boto_client


def client(**overrides: Any) -> Any:
    """A new boto3 S3 client configured for the platform's object store.

    Path-style addressing, standard retry mode, connect/read timeouts, the CA bundle and a
    connection pool as large as ``max_concurrency`` come from the settings; ``overrides`` are
    settings on top of the configured ones, e.g. ``client(bucket="warehouse")``.
    """
    return _client(_settings(**overrides))


def _client(settings: S3Settings) -> Any:
    settings.require()
    boto3 = import_client("boto3", "s3")
    return _bounded(boto3.session.Session().client("s3", **_boto_kwargs(settings)), settings)


@functools.lru_cache(maxsize=8)
def _shared_client(settings: S3Settings) -> Any:
    """One client per settings object for the helpers (creating one costs ~0.25 s);
    :func:`carbon_sdk.reload` and :func:`carbon_sdk.configure` make new settings objects."""
    return _client(settings)


def resource(**overrides: Any) -> Any:
    """A boto3 S3 service resource (``resource().Bucket("x").objects.all()``), same settings."""
    settings = _settings(**overrides)
    boto3 = import_client("boto3", "s3")
    created = boto3.session.Session().resource("s3", **_boto_kwargs(settings))
    _bounded(created.meta.client, settings)
    return created


def storage_options(**overrides: Any) -> dict[str, Any]:
    """fsspec/s3fs options, for ``storage_options=`` of pandas, polars, dask, xarray...

    ``pandas.read_parquet("s3://bucket/x.parquet", storage_options=s3.storage_options())``.
    The dict holds the secret key in plain text (s3fs needs it): pass it on, do not print it.
    """
    settings = _settings(**overrides)
    client_created(settings, "s3fs storage options")
    options: dict[str, Any] = {
        "key": settings.access_key_id,
        "secret": settings.secret("secret_access_key"),
        "client_kwargs": {"region_name": settings.region, "verify": settings.tls_verify()},
        "config_kwargs": {
            "connect_timeout": settings.connect_timeout,
            "read_timeout": settings.request_timeout,
            "retries": {"mode": "standard", "max_attempts": settings.max_attempts},
            "s3": {"addressing_style": settings.addressing_style},
            "max_pool_connections": max(10, settings.max_concurrency),
        },
        "max_concurrency": settings.max_concurrency,
    }
    if settings.endpoint_url:
        options["endpoint_url"] = settings.endpoint_url
    return options


def filesystem(**overrides: Any) -> Any:
    """An ``s3fs.S3FileSystem`` (fsspec) with the settings of :func:`storage_options`."""
    s3fs = import_client("s3fs", "s3")
    return s3fs.S3FileSystem(**storage_options(**overrides))


def arrow_filesystem(**overrides: Any) -> Any:
    """A ``pyarrow.fs.S3FileSystem`` with the same settings; paths are ``bucket/key``.

    ``pyarrow.dataset.dataset("bucket/prefix/", filesystem=s3.arrow_filesystem())``.
    pyarrow cannot skip certificate verification: with ``s3.verify=false`` use ``s3.ca_bundle``.
    """
    return _arrow_filesystem(_settings(**overrides))


def _arrow_filesystem(settings: S3Settings) -> Any:
    fs = import_client("pyarrow.fs", "tables")
    client_created(settings, "pyarrow.fs.S3FileSystem")
    if not settings.verify:
        raise ConfigurationError(
            "pyarrow's S3 filesystem always verifies TLS certificates, and s3.verify is false "
            f"({settings.origin('verify')}): set s3.ca_bundle to the CA's PEM file instead "
            "(env CARBON_S3__CA_BUNDLE), or use s3.filesystem() (s3fs)"
        )
    kwargs: dict[str, Any] = {
        "access_key": settings.access_key_id,
        "secret_key": settings.secret("secret_access_key"),
        "region": settings.region,
        "connect_timeout": settings.connect_timeout,
        "request_timeout": settings.request_timeout,
        "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=settings.max_attempts),
        "force_virtual_addressing": settings.addressing_style == "virtual",
    }
    if settings.endpoint_url:
        scheme, _, rest = settings.endpoint_url.partition("://")
        kwargs["scheme"] = scheme if rest else "https"
        kwargs["endpoint_override"] = (rest or scheme).rstrip("/")
    if settings.ca_bundle:
        kwargs["tls_ca_file_path"] = str(settings.ca_bundle)
    return fs.S3FileSystem(**kwargs)


def transfer_config(**overrides: Any) -> Any:
    """The ``boto3.s3.transfer.TransferConfig`` the helpers use (multipart size, concurrency)."""
    return _transfer_config(_settings(**overrides))


def _transfer_config(settings: S3Settings) -> Any:
    transfer = import_client("boto3.s3.transfer", "s3")
    return transfer.TransferConfig(
        multipart_threshold=settings.multipart_chunksize,
        multipart_chunksize=settings.multipart_chunksize,
        max_concurrency=settings.max_concurrency,
        io_chunksize=MiB,
        max_io_queue=1000,
        use_threads=True,
        preferred_transfer_client="classic",
    )


# -- helpers -------------------------------------------------------------------------------


class _Subscriber:
    """s3transfer callbacks: report bytes to a progress bar; tell downloads their size (so the
    manager skips its own HeadObject per file)."""

    def __init__(self, update: Update, size: int | None = None) -> None:
        self.update = update
        self.size = size

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        if self.size is not None:
            future.meta.provide_transfer_size(self.size)

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self.update(bytes_transferred)


def _transfer(
    settings: S3Settings,
    jobs: Sequence[tuple[str, Path, int]],
    bucket: str,
    *,
    download: bool,
    description: str,
    progress: bool | None,
) -> None:
    """Upload or download ``(key, local path, size)`` jobs, ``max_concurrency`` at a time.

    Objects below ``multipart_chunksize`` take one request each from a thread pool (the
    TransferManager's per-file bookkeeping costs more than the request on small files); larger
    ones go through boto3's TransferManager in parallel parts.
    """
    client = _shared_client(settings)
    threshold = settings.multipart_chunksize
    small = [job for job in jobs if job[2] < threshold]
    large = [job for job in jobs if job[2] >= threshold]
    total = sum(size for _, _, size in jobs)
    with progress_bar(total, description, extra=SERVICE, enabled=progress) as update:
        failure = _small_transfers(
            client, settings, small, bucket, download=download, update=update
        )
        if failure is None and large:
            failure = _managed_transfers(
                client, settings, large, bucket, download=download, update=update
            )
    if failure is not None:
        raise classify(failure[0], settings, bucket=bucket, key=failure[1]) from None


Failure = tuple[BaseException, str] | None


def _small_transfers(
    client: Any,
    settings: S3Settings,
    jobs: Sequence[tuple[str, Path, int]],
    bucket: str,
    *,
    download: bool,
    update: Update,
) -> Failure:
    def one(key: str, path: Path, size: int) -> None:
        if download:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.carbon-partial")
            partial.write_bytes(body)
            partial.replace(path)
        else:
            with path.open("rb") as data:
                client.put_object(Bucket=bucket, Key=key, Body=data)
        update(size)

    if not jobs:
        return None
    with ThreadPoolExecutor(min(settings.max_concurrency, len(jobs))) as pool:
        futures = {pool.submit(one, *job): job[0] for job in jobs}
        for future in as_completed(futures):
            error = future.exception()
            if error is None:
                continue
            pool.shutdown(wait=True, cancel_futures=True)
            if isinstance(error, _boto_errors()):
                return error, futures[future]
            raise error
    return None


def _managed_transfers(
    client: Any,
    settings: S3Settings,
    jobs: Sequence[tuple[str, Path, int]],
    bucket: str,
    *,
    download: bool,
    update: Update,
) -> Failure:
    transfer = import_client("boto3.s3.transfer", "s3")
    manager = transfer.create_transfer_manager(client, _transfer_config(settings))
    failure: Failure = None
    try:
        futures = []
        for key, path, size in jobs:
            if download:
                path.parent.mkdir(parents=True, exist_ok=True)
                subscribers = [_Subscriber(update, size)]
                future = manager.download(bucket, key, str(path), None, subscribers)
            else:
                future = manager.upload(str(path), bucket, key, None, [_Subscriber(update)])
            futures.append((key, future))
        for key, future in futures:
            try:
                future.result()
            except _boto_errors() as exc:
                failure = failure or (exc, key)
    except BaseException:
        manager.shutdown(cancel=True)
        raise
    manager.shutdown(cancel=failure is not None)
    return failure


def _require_bucket(client: Any, settings: S3Settings, bucket: str) -> None:
    """NotFound naming ``bucket`` unless it exists (some servers create buckets on write)."""
    try:
        client.head_bucket(Bucket=bucket)
    except _boto_errors() as exc:
        raise classify(exc, settings, bucket=bucket) from None


def upload(source: str | os.PathLike[str], url: str, *, progress: bool | None = None) -> list[str]:
    """Upload a file or a directory tree; returns the ``s3://`` URLs written.

    - a file to ``s3://bucket/key`` writes that key; to ``s3://bucket/prefix/`` (trailing
      slash) writes ``prefix/<file name>``;
    - a directory to ``s3://bucket/prefix`` writes every file below it as
      ``prefix/<relative path>``.

    Large files go up in parallel multipart parts (``s3.multipart_chunksize``,
    ``s3.max_concurrency``), many files in parallel. ``progress`` shows a bar (default: only in
    notebooks and terminals). The bucket must exist (NotFound naming it otherwise).
    """
    settings = _settings()
    target = S3Url.parse(url)
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        jobs = [(target.child(p.relative_to(path).as_posix()).key, p) for p in files]
    elif path.is_file():
        key = target.prefix + path.name if target.is_prefix else target.key
        jobs = [(key, path)]
    else:
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    _require_bucket(_shared_client(settings), settings, target.bucket)
    sized = [(key, p, p.stat().st_size) for key, p in jobs]
    _transfer(
        settings,
        sized,
        target.bucket,
        download=False,
        description=f"upload {target}",
        progress=progress,
    )
    return [str(S3Url(target.bucket, key)) for key, _ in jobs]


def download(
    url: str, destination: str | os.PathLike[str] = ".", *, progress: bool | None = None
) -> list[Path]:
    """Download an object or every object under a prefix; returns the local paths written.

    - ``s3://bucket/key`` (an object) goes to ``destination`` if that is a file path, or into
      it (``destination/<last part of key>``) if it is an existing directory;
    - ``s3://bucket/prefix/`` (or a key that is not an object but has objects below it) goes to
      ``destination/<path relative to the prefix>``, creating directories.

    A missing bucket or object raises NotFound naming it.
    """
    settings = _settings()
    source = S3Url.parse(url)
    client = _shared_client(settings)
    dest = Path(destination)
    exceptions = import_client("botocore.exceptions", "s3")
    if not source.is_prefix:
        try:
            head = client.head_object(Bucket=source.bucket, Key=source.key)
        except exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in MISSING_CODES:
                raise classify(exc, settings, bucket=source.bucket, key=source.key) from None
        except exceptions.BotoCoreError as exc:
            raise classify(exc, settings, bucket=source.bucket, key=source.key) from None
        else:
            name = PurePosixPath(source.key).name
            path = dest / name if dest.is_dir() else dest
            jobs = [(source.key, path, int(head["ContentLength"]))]
            _transfer(
                settings,
                jobs,
                source.bucket,
                download=True,
                description=f"download {source}",
                progress=progress,
            )
            return [path]
    listed = list(_list(client, settings, source.bucket, source.prefix, recursive=True))
    objects = [o for o in listed if not o["Key"].endswith("/")]  # skip "directory" markers
    if not objects:  # nothing to download is an error (a typo), unlike an empty `ls`
        raise _which_missing(client, settings, source, "no objects under it")
    root = dest.resolve()
    jobs = []
    for obj in objects:
        path = (root / obj["Key"][len(source.prefix) :]).resolve()
        if not path.is_relative_to(root):
            raise ValueError(f"refusing to write {obj['Key']!r} outside {str(root)!r}")
        jobs.append((obj["Key"], path, int(obj["Size"])))
    _transfer(
        settings,
        jobs,
        source.bucket,
        download=True,
        description=f"download {source}",
        progress=progress,
    )
    return [path for _, path, _ in jobs]


def _list(
    client: Any,
    settings: S3Settings,
    bucket: str,
    prefix: str,
    *,
    recursive: bool,
    page_size: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Every object (and, unless ``recursive``, every common prefix as ``{"Prefix": ...}``)
    under ``prefix``, one ListObjectsV2 page of ``page_size`` at a time."""
    if not 1 <= page_size <= 1000:
        raise ValueError(f"page_size must be between 1 and 1000, got {page_size}")
    paginator = client.get_paginator("list_objects_v2")
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if not recursive:
        kwargs["Delimiter"] = "/"
    try:
        for page in paginator.paginate(**kwargs, PaginationConfig={"PageSize": page_size}):
            yield from page.get("CommonPrefixes", [])
            yield from page.get("Contents", [])
    except _boto_errors() as exc:
        raise classify(exc, settings, bucket=bucket) from None


def ls(url: str, *, recursive: bool = False, page_size: int = 1000) -> list[str]:
    """The ``s3://`` URLs under ``url``, sorted, every page of the listing.

    Like ``aws s3 ls``: ``url`` is a prefix ("directory"; ``s3://b/data`` means
    ``s3://b/data/``). Without ``recursive`` the sub-prefixes are listed once, ending with
    ``/``; with it, every object below. An object URL lists just itself; an empty prefix is
    ``[]``; a missing bucket raises NotFound naming it. Use :func:`objects` for sizes and dates.
    """
    settings = _settings()
    source = S3Url.parse(url)
    client = _shared_client(settings)
    entries = _list(
        client, settings, source.bucket, source.prefix, recursive=recursive, page_size=page_size
    )
    names = (e.get("Key") or e["Prefix"] for e in entries)
    urls = [str(S3Url(source.bucket, n)) for n in names if n != source.prefix]  # not the marker
    if not urls and not source.is_prefix and _exists(client, settings, source):
        return [str(source)]
    return sorted(urls)


def _exists(client: Any, settings: S3Settings, target: S3Url) -> bool:
    exceptions = import_client("botocore.exceptions", "s3")
    try:
        client.head_object(Bucket=target.bucket, Key=target.key)
    except exceptions.ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in MISSING_CODES:
            return False
        raise classify(exc, settings, bucket=target.bucket, key=target.key) from None
    except exceptions.BotoCoreError as exc:
        raise classify(exc, settings, bucket=target.bucket, key=target.key) from None
    return True


def objects(url: str, *, as_: TableFormat = "pandas", page_size: int = 1000) -> Any:
    """Every object below the prefix ``url`` as a table: ``url``, ``key``, ``size`` (bytes),
    ``last_modified`` (UTC), ``etag``; sorted by key. ``as_``: pandas, arrow or polars."""
    check_format(as_)
    pa = import_client("pyarrow", "tables")
    settings = _settings()
    source = S3Url.parse(url)
    client = _shared_client(settings)
    listed = _list(
        client, settings, source.bucket, source.prefix, recursive=True, page_size=page_size
    )
    rows = sorted((o for o in listed if o["Key"] != source.prefix), key=lambda o: str(o["Key"]))
    table = pa.table(
        {
            "url": pa.array([str(S3Url(source.bucket, o["Key"])) for o in rows], pa.string()),
            "key": pa.array([o["Key"] for o in rows], pa.string()),
            "size": pa.array([o.get("Size") for o in rows], pa.int64()),
            "last_modified": pa.array(
                [o.get("LastModified") for o in rows], pa.timestamp("us", tz="UTC")
            ),
            "etag": pa.array([str(o.get("ETag", "")).strip('"') for o in rows], pa.string()),
        }
    )
    return convert(table, as_)


def presign(
    url: str, *, expires: int | float | timedelta = 3600, method: Literal["GET", "PUT"] = "GET"
) -> str:
    """A time-limited HTTPS/HTTP URL to ``GET`` (download) or ``PUT`` (upload) one object,
    usable without credentials (``curl``, a browser, another service).

    ``expires`` is seconds or a timedelta, at most 7 days. Signing is local: no request is made,
    so the object is not checked (a GET of a missing key answers 404 when used).
    """
    seconds = expires.total_seconds() if isinstance(expires, timedelta) else float(expires)
    if not 1 <= seconds <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"expires must be 1 s to 7 days, got {seconds:g} s")
    target = S3Url.parse(url)
    if target.is_prefix:
        raise ValueError(f"presign needs an object URL, got the prefix {url!r}")
    settings = _settings()
    operation = "get_object" if method == "GET" else "put_object"
    signed: str = _shared_client(settings).generate_presigned_url(
        operation,
        Params={"Bucket": target.bucket, "Key": target.key},
        ExpiresIn=int(seconds),
        HttpMethod=method,
    )
    return signed


def read_parquet(
    url: str,
    *,
    as_: TableFormat = "pandas",
    columns: Sequence[str] | None = None,
    filters: Any = None,
) -> Any:
    """Read one Parquet object, or every Parquet file under a prefix (a dataset), through
    pyarrow's native S3 filesystem. ``columns`` and ``filters`` (pyarrow/DNF filters) are pushed
    down. ``as_``: pandas (nullable ints), arrow or polars."""
    check_format(as_)
    pq = import_client("pyarrow.parquet", "tables")
    settings = _settings()
    source = S3Url.parse(url)
    fs = _arrow_filesystem(settings)
    path = f"{source.bucket}/{source.key}".rstrip("/")
    try:
        table = pq.read_table(
            path,
            filesystem=fs,
            columns=list(columns) if columns is not None else None,
            filters=filters,
        )
    except FileNotFoundError:
        raise _which_missing(_shared_client(settings), settings, source, "404") from None
    except OSError as exc:
        raise classify(exc, settings, bucket=source.bucket, key=source.key) from None
    return convert(table, as_)


def write_parquet(data: Any, url: str, *, compression: str = "zstd", **options: Any) -> str:
    """Write a pandas/polars DataFrame or Arrow table as one Parquet object; returns ``url``.

    The data is converted to Arrow first, so an unsupported column fails (TypeError naming it)
    before anything is written. The bucket must exist. ``options`` go to
    ``pyarrow.parquet.write_table`` (e.g. ``row_group_size``).
    """
    table: pa.Table = to_arrow(data)
    pq = import_client("pyarrow.parquet", "tables")
    settings = _settings()
    target = S3Url.parse(url)
    if target.is_prefix:
        raise ValueError(f"write_parquet needs an object URL, got the prefix {url!r}")
    _require_bucket(_shared_client(settings), settings, target.bucket)
    try:
        pq.write_table(
            table,
            f"{target.bucket}/{target.key}",
            filesystem=_arrow_filesystem(settings),
            compression=compression,
            **options,
        )
    except OSError as exc:
        raise classify(exc, settings, bucket=target.bucket, key=target.key) from None
    return str(target)


# -- doctor --------------------------------------------------------------------------------


def check(settings: S3Settings) -> str:
    """Doctor: list buckets, or head the default bucket where listing is forbidden."""
    s3 = _client(settings)
    exceptions = import_client("botocore.exceptions", "s3")
    try:
        try:
            names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
        except exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "AccessDenied" or not settings.bucket:
                raise
            s3.head_bucket(Bucket=settings.bucket)
            return f"bucket {settings.bucket} reachable (listing not allowed)"
        if settings.bucket:
            s3.head_bucket(Bucket=settings.bucket)
    except (exceptions.BotoCoreError, exceptions.ClientError) as exc:
        raise classify(exc, settings, bucket=settings.bucket) from None
    return f"{len(names)} buckets" + (f", default {settings.bucket} ok" if settings.bucket else "")
