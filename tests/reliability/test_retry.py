"""Retries against the real PostgreSQL: a connection the server refuses for a moment (too many
connections) is opened again after a backoff, for reads and writes alike since nothing was
sent; a statement that failed is never sent again."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from carbon_sdk import postgres
from carbon_sdk.dev.pytest_plugin import StackEnv
from carbon_sdk.errors import CarbonError, QueryError
from carbon_sdk.settings.carbon import configure

pytestmark = pytest.mark.stack


@pytest.fixture
def admin(stack_env: StackEnv, fresh_database: str) -> Iterator[psycopg.Connection[tuple[object]]]:
    stack_env("postgres")
    configure(postgres={"database": fresh_database})
    params = postgres.PostgresSettings.load().libpq_params()
    with psycopg.connect(**params, autocommit=True) as conn:
        yield conn


@pytest.fixture
def one_connection_role(admin: psycopg.Connection[tuple[object]]) -> Iterator[dict[str, str]]:
    """A role allowed one connection at a time; yields the settings to log in as it."""
    name, password = f"limited_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.execute(
        sql.SQL("create role {} login password {} connection limit 1").format(
            sql.Identifier(name), sql.Literal(password)
        )
    )
    admin.execute(sql.SQL("grant all on schema public to {}").format(sql.Identifier(name)))
    yield {"user": name, "password": password}
    admin.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
    admin.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def hold_for(role: dict[str, str], seconds: float) -> threading.Timer:
    """Take the role's one connection and give it back after ``seconds``."""
    held = postgres.connect(**role)
    timer = threading.Timer(seconds, held.close)
    timer.start()
    return timer


def test_a_refused_connection_is_retried_for_reads_and_writes(
    one_connection_role: dict[str, str],
) -> None:
    role = {**one_connection_role, "connect_timeout": 10.0, "max_attempts": 20}
    hold_for(role, 0.3)
    assert postgres.query("select 1 as one", **role)["one"].tolist() == [1]
    hold_for(role, 0.3)
    assert postgres.write(pd.DataFrame({"v": [1]}), "t", **role) == 1


def test_without_attempts_left_the_refusal_is_the_error(
    one_connection_role: dict[str, str],
) -> None:
    timer = hold_for(one_connection_role, 2.0)
    with pytest.raises(CarbonError, match="too many connections"):
        postgres.query("select 1", **one_connection_role, max_attempts=1)
    timer.join()


def test_a_failed_statement_is_not_sent_again(admin: psycopg.Connection[tuple[object]]) -> None:
    admin.execute("create sequence calls")
    with pytest.raises(QueryError, match="division by zero"):
        postgres.query("select nextval('calls') / 0 as boom", max_attempts=5)
    assert admin.execute("select last_value from calls").fetchone() == (1,)  # sent once
