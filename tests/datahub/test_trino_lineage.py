"""Lineage recorded as a side effect of statements run through carbon_sdk.trino, against the
stack's real Trino (Iceberg catalog): on DataHub Lite, and with the GMS double down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from gms_double import GmsDouble

from carbon_sdk import datahub, trino
from carbon_sdk.dev.pytest_plugin import StackEnv

pytestmark = [pytest.mark.stack, pytest.mark.filterwarnings("ignore::DeprecationWarning:datahub")]


@pytest.fixture
def iceberg_schema(stack_env: StackEnv) -> Iterator[str]:
    """A fresh Iceberg schema with two tables, ``orders`` and ``customers``."""
    stack_env("trino")
    schema = f"lineage_{uuid.uuid4().hex[:8]}"
    trino.query(f"create schema iceberg.{schema}")
    try:
        trino.query(
            f"create table iceberg.{schema}.orders as "
            "select orderkey, custkey, totalprice from tpch.tiny.orders"
        )
        trino.query(
            f"create table iceberg.{schema}.customers as "
            "select custkey, name, nationkey from tpch.tiny.customer"
        )
        yield schema
    finally:
        trino.query(f"drop schema if exists iceberg.{schema} cascade")


def ctas(schema: str) -> str:
    return (
        f"create table iceberg.{schema}.order_summary as "
        "select o.orderkey, o.totalprice * 2 as doubled, c.name as customer "
        f"from iceberg.{schema}.orders o join iceberg.{schema}.customers c "
        "on o.custkey = c.custkey"
    )


def test_ctas_from_two_iceberg_tables_on_lite(iceberg_schema: str, lite_store: Path) -> None:
    schema = iceberg_schema
    datahub.record_lineage(True)
    trino.query(ctas(schema))
    assert datahub.flush(120), datahub.lineage_stats()
    stats = datahub.lineage_stats()
    assert stats.recorded >= 1, stats
    orders = datahub.dataset_urn(f"iceberg.{schema}.orders")
    customers = datahub.dataset_urn(f"iceberg.{schema}.customers")
    summary = f"iceberg.{schema}.order_summary"
    assert sorted(datahub.upstreams(summary)) == sorted([orders, customers])
    columns = datahub.column_lineage(summary).sort_values("column").to_dict("records")
    assert columns == [
        {"column": "customer", "upstream": customers, "upstream_column": "name"},
        {"column": "doubled", "upstream": orders, "upstream_column": "totalprice"},
        {"column": "orderkey", "upstream": orders, "upstream_column": "orderkey"},
    ]


def test_gms_down_never_fails_or_slows_the_query(iceberg_schema: str, gms: GmsDouble) -> None:
    schema = iceberg_schema
    trino.query("select 1")  # warm up the connection path
    started = time.perf_counter()
    trino.query(f"create table iceberg.{schema}.baseline as select * from iceberg.{schema}.orders")
    baseline = time.perf_counter() - started

    gms.stop()
    datahub.record_lineage(True)
    before = datahub.lineage_stats()
    started = time.perf_counter()
    result = trino.query(ctas(schema))
    with_outage = time.perf_counter() - started
    assert int(result.iloc[0, 0]) > 0  # rows written: the query succeeded
    assert datahub.flush(120)
    stats = datahub.lineage_stats()
    assert stats.failed == before.failed + 1, stats
    # the statement itself paid nothing for the outage (generous bound: a shared machine)
    assert with_outage < baseline * 3 + 2.0, (baseline, with_outage)
