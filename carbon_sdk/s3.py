"""S3 (MinIO, SeaweedFS): settings, a configured boto3 client, and the doctor check."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from carbon_sdk._lazy import import_client
from carbon_sdk.errors import AuthFailed, NotFound, ServiceError, TLSError, Unreachable
from carbon_sdk.settings import ServiceSettings
from carbon_sdk.settings.carbon import service_settings

SERVICE = "s3"
AUTH_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"})
MISSING_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "404", "NotFound"})


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

    @property
    def endpoint(self) -> str:
        """The endpoint URL (never contains credentials)."""
        return self.endpoint_url or "default AWS endpoint"


Settings = S3Settings


def classify(exc: Exception, settings: S3Settings) -> ServiceError:
    """Turn a botocore error into the carbon-sdk error that says what went wrong."""
    exceptions = import_client("botocore.exceptions", "s3")
    endpoint = settings.endpoint
    if isinstance(exc, exceptions.SSLError):
        return TLSError(SERVICE, endpoint, f"{exc} (check s3.ca_bundle)")
    if isinstance(exc, exceptions.EndpointConnectionError | exceptions.ConnectTimeoutError):
        return Unreachable(SERVICE, endpoint, str(exc))
    if isinstance(exc, exceptions.ReadTimeoutError):
        return Unreachable(SERVICE, endpoint, f"no answer within {settings.request_timeout:g} s")
    if isinstance(exc, exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = f"{code}: {error.get('Message') or exc}"
        if code in AUTH_CODES:
            return AuthFailed(
                SERVICE, endpoint, f"{message} (check s3.access_key_id/secret_access_key)"
            )
        if code in MISSING_CODES:
            return NotFound(SERVICE, endpoint, message)
        return ServiceError(SERVICE, endpoint, message)
    return ServiceError(SERVICE, endpoint, f"{type(exc).__name__}: {exc}")


def client(**overrides: Any) -> Any:
    """A boto3 S3 client configured for the platform's object store.

    Path-style addressing, standard retry mode, connect/read timeouts and the CA bundle come
    from the settings; ``overrides`` are settings on top of the configured ones.
    """
    settings: S3Settings = service_settings(SERVICE, **overrides)
    return _client(settings)


def _client(settings: S3Settings) -> Any:
    settings.require()
    boto3 = import_client("boto3", "s3")
    config = import_client("botocore.config", "s3").Config(
        region_name=settings.region,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.request_timeout,
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        s3={"addressing_style": settings.addressing_style},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret("secret_access_key"),
        verify=settings.tls_verify(),
        config=config,
    )


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
        raise classify(exc, settings) from None
    return f"{len(names)} buckets" + (f", default {settings.bucket} ok" if settings.bucket else "")
