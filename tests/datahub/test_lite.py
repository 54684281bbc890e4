"""The Lite backend, on DataHub's real embedded store (a SQLite file per test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbon_sdk import ConfigurationError, NotFound, datahub
from carbon_sdk.health import Status, run
from carbon_sdk.settings.carbon import configure

ORDERS = "urn:li:dataset:(urn:li:dataPlatform:trino,iceberg.analytics.orders,PROD)"
CUSTOMERS = "urn:li:dataset:(urn:li:dataPlatform:trino,iceberg.analytics.customers,PROD)"
SUMMARY = "urn:li:dataset:(urn:li:dataPlatform:trino,iceberg.analytics.order_summary,PROD)"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:datahub")


def test_emit_lineage_and_read_it_back(lite_store: Path) -> None:
    down = datahub.emit_lineage(
        ["iceberg.analytics.orders", "iceberg.analytics.customers"],
        "iceberg.analytics.order_summary",
        columns={
            "amount": [("iceberg.analytics.orders", "amount")],
            "customer": [("iceberg.analytics.customers", "name")],
        },
    )
    assert down == SUMMARY
    assert lite_store.is_file()
    assert sorted(datahub.upstreams("iceberg.analytics.order_summary")) == [CUSTOMERS, ORDERS]
    columns = datahub.column_lineage(SUMMARY).sort_values("column")
    assert columns.to_dict("records") == [
        {"column": "amount", "upstream": ORDERS, "upstream_column": "amount"},
        {"column": "customer", "upstream": CUSTOMERS, "upstream_column": "name"},
    ]
    # the store itself, read with acryl-datahub's own Lite API, has the aspect
    store = datahub.lite()
    try:
        assert "upstreamLineage" in (store.get(SUMMARY, ["upstreamLineage"]) or {})
    finally:
        store.close()


def test_merge_adds_upstreams(lite_store: Path) -> None:
    datahub.emit_lineage(ORDERS, SUMMARY, columns={"id": [(ORDERS, "id")]})
    datahub.emit_lineage(CUSTOMERS, SUMMARY, columns={"name": [(CUSTOMERS, "name")]}, merge=True)
    assert sorted(datahub.upstreams(SUMMARY)) == [CUSTOMERS, ORDERS]
    assert sorted(datahub.column_lineage(SUMMARY)["column"]) == ["id", "name"]


def test_describe_search_and_schema(lite_store: Path) -> None:
    datahub.describe("iceberg.analytics.orders", description="All orders", tags=["pii"])
    datahub.describe(ORDERS, tags=["gold"])
    store = datahub.lite()
    try:
        got = store.get(ORDERS, ["globalTags", "editableDatasetProperties"], typed=True) or {}
    finally:
        store.close()
    assert [t.tag for t in got["globalTags"].tags] == ["urn:li:tag:pii", "urn:li:tag:gold"]
    assert got["editableDatasetProperties"].description == "All orders"
    # Lite's free text search matches URNs and names only
    found = datahub.search("analytics.ord")
    assert found["urn"].tolist() == [ORDERS]
    assert found["name"].tolist() == ["iceberg.analytics.orders"]
    assert datahub.search("All orders").empty  # descriptions are not searched on Lite
    assert datahub.search("*")["urn"].tolist() == [ORDERS]
    with pytest.raises(NotFound, match="no schema"):
        datahub.schema(ORDERS)


def test_doctor_lite(lite_store: Path) -> None:
    (result,) = run(["datahub"]).results
    assert result.status is Status.OK, result
    assert "DataHub Lite" in result.detail
    datahub.emit_lineage(ORDERS, SUMMARY)
    (result,) = run(["datahub"]).results
    assert "(1 entities)" in result.detail


def test_unopenable_store_names_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not sqlite" * 100)
    configure(datahub={"backend": "lite", "lite_path": str(bad)})
    with pytest.raises(ConfigurationError, match="lite_path") as caught:
        datahub.emit_lineage(ORDERS, SUMMARY)
    assert "not-a-db" in str(caught.value)
    (result,) = run(["datahub"]).results
    assert result.status is not Status.OK


def test_default_store_is_datahubs_own(datahub_home: Path) -> None:
    configure(datahub={"backend": "lite"})
    settings = datahub.DatahubSettings.load()
    assert settings.configured
    assert settings.lite_file == datahub_home / ".datahub" / "lite" / "datahub.db"
    datahub.emit_lineage(ORDERS, SUMMARY)
    assert settings.lite_file.is_file()
