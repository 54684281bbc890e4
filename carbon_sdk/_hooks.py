"""Statement hooks: code that runs after a connector has finished a statement.

A connector that runs SQL calls :func:`after_statement` once a statement has completed
successfully; hooks see what ran (never credentials) and must return quickly: a hook that
needs I/O hands the statement to a thread of its own. A hook that raises is logged and
ignored, so no hook can fail or slow the user's statement.

Hooks are added with :func:`add_statement_hook`, or provided by the modules in
:data:`PROVIDERS`: each has a ``statement_hook(statement)`` that decides from its own settings
whether to act (e.g. ``datahub.record_lineage`` turned on by the platform), so a feature can be
switched on by configuration alone, without the user importing its module.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("carbon_sdk.hooks")

PROVIDERS: tuple[str, ...] = ("carbon_sdk.datahub",)
"""Modules with a ``statement_hook(statement)`` that is always called (no client import)."""


@dataclass(frozen=True)
class Statement:
    """A statement a connector ran successfully.

    Attributes:
        service: the connector, e.g. ``"trino"``.
        sql: the statement text as sent (parameters not bound in).
        catalog: the session's default catalog (or database), if any.
        schema: the session's default schema, if any.
        user: the identity it ran as, if known.
        query_id: the server's id of the query, if any.
    """

    service: str
    sql: str
    catalog: str | None = None
    schema: str | None = None
    user: str | None = None
    query_id: str | None = None


StatementHook = Callable[[Statement], None]
_hooks: list[StatementHook] = []


def add_statement_hook(hook: StatementHook) -> None:
    """Call ``hook`` after every statement a connector completes (once, however often added)."""
    if hook not in _hooks:
        _hooks.append(hook)


def remove_statement_hook(hook: StatementHook) -> None:
    """Stop calling ``hook`` (no error if it was not added)."""
    if hook in _hooks:
        _hooks.remove(hook)


def after_statement(statement: Statement) -> None:
    """Run every hook on ``statement``; exceptions are logged, never raised."""
    hooks: list[StatementHook] = []
    for name in PROVIDERS:
        try:
            hooks.append(importlib.import_module(name).statement_hook)
        except Exception as exc:  # a broken provider must not break the statement
            log.warning("statement hooks of %s unavailable: %s", name, type(exc).__name__)
    for hook in (*hooks, *_hooks):
        try:
            hook(statement)
        except Exception as exc:
            log.warning("a %s statement hook failed: %s", statement.service, type(exc).__name__)
