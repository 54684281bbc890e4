"""The exceptions carbon-sdk raises.

Everything derives from :class:`CarbonError`, so ``except carbon_sdk.CarbonError`` catches all
of them. A :class:`ConfigurationError` says which setting to fix and how to set it; a
:class:`ServiceError` names the service, the endpoint (never with credentials) and the cause.
"""

from __future__ import annotations


class CarbonError(Exception):
    """Base class of every error raised by carbon-sdk."""


class ConfigurationError(CarbonError):
    """A setting is missing or invalid; the message names every way to set it."""


class MissingExtraError(CarbonError, ImportError):
    """A connector's client library is not installed; the message names the extra to install.

    Attributes:
        module: the module that could not be imported.
        extra: the extra that brings it (``pip install 'carbon-sdk[<extra>]'``).
    """

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(f"{module!r} is not installed; it comes with: {self.install_command}")

    @property
    def install_command(self) -> str:
        """The pip command that installs the missing library."""
        return f"pip install 'carbon-sdk[{self.extra}]'"


class ServiceError(CarbonError):
    """A service could not do what was asked.

    Attributes:
        service: the connector name, e.g. ``"postgres"``.
        endpoint: where it was reached, without credentials (``host:port`` or a URL).
    """

    def __init__(self, service: str, endpoint: str | None, message: str) -> None:
        self.service = service
        self.endpoint = endpoint
        where = f" at {endpoint}" if endpoint else ""
        super().__init__(f"{service}{where}: {message}")


class Unreachable(ServiceError):
    """The service's endpoint refused the connection, could not be resolved or timed out."""


class AuthFailed(ServiceError):
    """The service rejected the configured credentials."""


class TLSError(ServiceError):
    """The TLS handshake failed (untrusted certificate, wrong CA bundle, plain-text endpoint)."""


class NotFound(ServiceError):
    """The database, bucket, object or table asked for does not exist."""


class QueryError(ServiceError):
    """The service rejected a query (syntax error, missing table, type mismatch)."""
