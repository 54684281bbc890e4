"""Lineage recorded as a side effect of Trino statements: parsing, emission, and that a DataHub
outage neither fails nor slows the statement (hook level; tests/datahub/test_trino_lineage.py
runs the same through real Trino)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gms_double import GmsDouble

from carbon_sdk import datahub
from carbon_sdk._hooks import Statement, after_statement
from carbon_sdk.settings.carbon import configure

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:datahub")

ORDERS = "urn:li:dataset:(urn:li:dataPlatform:trino,iceberg.analytics.orders,PROD)"
CUSTOMERS = "urn:li:dataset:(urn:li:dataPlatform:trino,iceberg.analytics.customers,PROD)"
SUMMARY = "urn:li:dataset:(urn:li:dataPlatform:trino,iceberg.analytics.order_summary,PROD)"
CTAS = """-- derived table
create table order_summary as
select o.id, o.amount * 2 as amount2, c.name as customer
from orders o join iceberg.analytics.customers c on o.customer_id = c.id"""


def statement(sql: str = CTAS) -> Statement:
    return Statement("trino", sql, "iceberg", "analytics", "alice", "20261126_000001_00001_abcde")


def test_off_by_default(lite_store: Path) -> None:
    after_statement(statement())
    assert datahub.flush(5)
    assert datahub.upstreams(SUMMARY) == []


def test_ctas_lineage_with_columns_on_lite(
    lite_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("JPY_SESSION_NAME", "work/etl.ipynb")
    datahub.record_lineage(True)
    before = datahub.lineage_stats().recorded
    after_statement(statement())
    assert datahub.flush(60)
    assert datahub.lineage_stats().recorded == before + 1
    assert sorted(datahub.upstreams(SUMMARY)) == [CUSTOMERS, ORDERS]
    columns = datahub.column_lineage(SUMMARY).sort_values("column").to_dict("records")
    assert columns == [
        {"column": "amount2", "upstream": ORDERS, "upstream_column": "amount"},
        {"column": "customer", "upstream": CUSTOMERS, "upstream_column": "name"},
        {"column": "id", "upstream": ORDERS, "upstream_column": "id"},
    ]
    # the notebook is the data job
    store = datahub.lite()
    try:
        job = next(u for u in store.list_ids() if u.startswith("urn:li:dataJob:"))
        got = store.get(job, ["dataJobInfo", "dataJobInputOutput", "ownership"], typed=True)
    finally:
        store.close()
    assert got is not None
    assert "alice/work/etl.ipynb" in job
    info = got["dataJobInfo"].customProperties
    assert info["notebook"] == "work/etl.ipynb" and info["hub_user"] == "alice"
    assert info["statement"] == "CREATE_TABLE_AS_SELECT"
    assert sorted(got["dataJobInputOutput"].inputDatasets) == [CUSTOMERS, ORDERS]
    assert got["dataJobInputOutput"].outputDatasets == [SUMMARY]
    assert got["ownership"].owners[0].owner == "urn:li:corpuser:alice"


def test_insert_adds_upstreams_and_select_is_ignored(lite_store: Path) -> None:
    configure(datahub={"record_lineage": True})  # the platform's switch, no call needed
    after_statement(statement())
    after_statement(statement("insert into order_summary select * from iceberg.analytics.returns"))
    after_statement(statement("select * from orders"))
    after_statement(statement("insert into order_summary (id) values (1)"))
    assert datahub.flush(60)
    upstreams = datahub.upstreams(SUMMARY)
    assert sorted(upstreams) == sorted([CUSTOMERS, ORDERS, ORDERS.replace("orders", "returns")])


def test_schema_in_datahub_resolves_star(lite_store: Path) -> None:
    from datahub.emitter.mcp import MetadataChangeProposalWrapper
    from datahub.metadata import schema_classes as m

    fields = [
        m.SchemaFieldClass(
            fieldPath=name,
            type=m.SchemaFieldDataTypeClass(type=m.StringTypeClass()),
            nativeDataType="varchar",
        )
        for name in ("id", "amount")
    ]
    meta = m.SchemaMetadataClass(
        schemaName="orders",
        platform="urn:li:dataPlatform:trino",
        version=0,
        hash="",
        platformSchema=m.OtherSchemaClass(rawSchema=""),
        fields=fields,
    )
    store = datahub.lite()
    try:
        store.write(MetadataChangeProposalWrapper(entityUrn=ORDERS, aspect=meta))
    finally:
        store.close()
    assert datahub.schema(ORDERS)["field"].tolist() == ["id", "amount"]
    datahub.record_lineage(True)
    after_statement(statement("create table copy as select * from orders"))
    assert datahub.flush(60)
    copy = datahub.dataset_urn("iceberg.analytics.copy")
    assert sorted(datahub.column_lineage(copy)["column"]) == ["amount", "id"]


def test_gms_down_never_fails_or_slows_the_statement(gms: GmsDouble) -> None:
    gms.stop()
    datahub.record_lineage(True)
    before = datahub.lineage_stats()
    started = time.perf_counter()
    after_statement(statement())
    assert time.perf_counter() - started < 0.05
    assert datahub.flush(60)
    stats = datahub.lineage_stats()
    assert stats.failed == before.failed + 1
    assert "gms_url" in (stats.last_error or "")


def test_gms_stalled_queue_is_bounded(gms: GmsDouble) -> None:
    gms.delay = 3.0
    configure(datahub={"lineage_queue": 2, "lineage_timeout": 1.0})
    datahub._RECORDER = None  # a recorder of its own, with this queue size
    datahub.record_lineage(True)
    started = time.perf_counter()
    for _ in range(10):
        after_statement(statement())
    assert time.perf_counter() - started < 0.2
    stats = datahub.lineage_stats()
    assert stats.dropped >= 7
    gms.delay = 0
    assert datahub.flush(60)


def test_gms_lineage_is_one_batch(gms: GmsDouble) -> None:
    datahub.record_lineage(True)
    after_statement(statement())
    assert datahub.flush(60)
    assert "POST /aspects?action=ingestProposalBatch" in gms.paths()
    assert sorted(datahub.upstreams(SUMMARY)) == [CUSTOMERS, ORDERS]
    assert datahub.lineage_stats().last_error is None or datahub.lineage_stats().recorded


def test_a_failing_hook_never_fails_the_statement(caplog: pytest.LogCaptureFixture) -> None:
    from carbon_sdk._hooks import add_statement_hook, remove_statement_hook

    seen: list[Statement] = []

    def broken(_: Statement) -> None:
        raise RuntimeError("boom")

    add_statement_hook(broken)
    add_statement_hook(seen.append)
    try:
        after_statement(statement())  # does not raise
    finally:
        remove_statement_hook(broken)
        remove_statement_hook(seen.append)
    assert seen == [statement()]
    assert "statement hook failed: RuntimeError" in caplog.text
