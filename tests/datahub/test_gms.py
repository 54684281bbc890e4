"""The GMS path against the contract double: token, request shapes, 404s, batches, doctor."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from conftest import TOKEN
from gms_double import GmsDouble
from reliability.report import FaultLog
from unit.listeners import Proxy

from carbon_sdk import AuthFailed, ConfigurationError, NotFound, Unreachable, datahub
from carbon_sdk.health import Status, run
from carbon_sdk.settings.carbon import configure, reload

ORDERS = "urn:li:dataset:(urn:li:dataPlatform:trino,iceberg.analytics.orders,PROD)"
CUSTOMERS = "urn:li:dataset:(urn:li:dataPlatform:trino,iceberg.analytics.customers,PROD)"
SUMMARY = "urn:li:dataset:(urn:li:dataPlatform:trino,iceberg.analytics.order_summary,PROD)"


def test_dataset_urn() -> None:
    assert datahub.dataset_urn("Iceberg.Analytics.Orders") == ORDERS
    assert datahub.dataset_urn(ORDERS) == ORDERS
    assert datahub.dataset_urn("db.t", platform="postgres", env="DEV") == (
        "urn:li:dataset:(urn:li:dataPlatform:postgres,db.t,DEV)"
    )
    with pytest.raises(ValueError, match="not a dataset name"):
        datahub.dataset_urn("a,b")


def test_emit_lineage_and_read_it_back(gms: GmsDouble) -> None:
    down = datahub.emit_lineage(
        ["iceberg.analytics.orders", "iceberg.analytics.customers"],
        "iceberg.analytics.order_summary",
        columns={"customer": [("iceberg.analytics.customers", "name")]},
    )
    assert down == SUMMARY
    assert "POST /aspects?action=ingestProposal" in gms.paths()
    assert sorted(datahub.upstreams(SUMMARY)) == sorted([ORDERS, CUSTOMERS])
    columns = datahub.column_lineage(SUMMARY)
    assert columns.to_dict("records") == [
        {"column": "customer", "upstream": CUSTOMERS, "upstream_column": "name"}
    ]
    # merge keeps what was there; the default replaces
    datahub.emit_lineage("iceberg.analytics.returns", SUMMARY, merge=True)
    assert len(datahub.upstreams(SUMMARY)) == 3
    datahub.emit_lineage("iceberg.analytics.returns", SUMMARY)
    assert len(datahub.upstreams(SUMMARY)) == 1


def test_reads_are_tried_again_writes_are_not(
    gms: GmsDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBON_DATAHUB__MAX_ATTEMPTS", "3")
    configure()
    datahub.emit_lineage(ORDERS, SUMMARY)
    gms.unavailable = 2  # GET /aspects: answered 503 twice, then the aspect
    assert datahub.upstreams(SUMMARY) == [ORDERS]
    gms.unavailable = 1  # a GraphQL query is a read too
    assert list(datahub.search("summary")["urn"]) == [SUMMARY]
    gms.unavailable = 1
    before = len(gms.paths())
    with pytest.raises(Unreachable, match="503"):
        datahub.emit_lineage(CUSTOMERS, SUMMARY)  # a write: sent once, the 503 reported
    assert gms.paths()[before:] == ["POST /aspects?action=ingestProposal"]
    gms.unavailable = 3  # more than max_attempts: the last answer is the error
    with pytest.raises(Unreachable, match="503"):
        datahub.upstreams(SUMMARY)
    assert datahub.upstreams(SUMMARY) == [ORDERS]  # nothing half-written


def test_describe_is_one_batch_and_keeps_existing_tags(gms: GmsDouble) -> None:
    urn = datahub.describe("iceberg.analytics.orders", description="Orders", tags=["pii"])
    assert urn == ORDERS
    assert gms.paths()[-1] == "POST /aspects?action=ingestProposalBatch"
    datahub.describe(ORDERS, tags=["gold", "pii"])
    tags = [t["tag"] for t in gms.aspect(ORDERS, "globalTags")["tags"]]
    assert tags == ["urn:li:tag:pii", "urn:li:tag:gold"]
    assert gms.aspect(ORDERS, "editableDatasetProperties")["description"] == "Orders"
    with pytest.raises(ValueError):
        datahub.describe(ORDERS)


def test_missing_aspects_are_404_handled(gms: GmsDouble) -> None:
    assert datahub.upstreams("iceberg.analytics.nothing") == []
    assert datahub.column_lineage("iceberg.analytics.nothing").empty
    with pytest.raises(NotFound, match="no schema for"):
        datahub.schema("iceberg.analytics.nothing")
    assert any(p.startswith("GET /aspects/urn%3Ali%3Adataset") for p in gms.paths())


def test_schema_from_gms(gms: GmsDouble) -> None:
    from datahub.emitter.mcp import MetadataChangeProposalWrapper
    from datahub.metadata import schema_classes as m

    fields = [
        m.SchemaFieldClass(
            fieldPath="id",
            type=m.SchemaFieldDataTypeClass(type=m.NumberTypeClass()),
            nativeDataType="bigint",
            nullable=False,
        )
    ]
    meta = m.SchemaMetadataClass(
        schemaName="orders",
        platform="urn:li:dataPlatform:trino",
        version=0,
        hash="",
        platformSchema=m.OtherSchemaClass(rawSchema=""),
        fields=fields,
    )
    datahub.emitter().emit_mcp(MetadataChangeProposalWrapper(entityUrn=ORDERS, aspect=meta))
    frame = datahub.schema("iceberg.analytics.orders")
    assert frame.to_dict("records") == [
        {"field": "id", "type": "bigint", "nullable": False, "description": None}
    ]


def test_search_over_graphql(gms: GmsDouble) -> None:
    datahub.emit_lineage(ORDERS, SUMMARY)
    found = datahub.search("summary")
    assert list(found.columns) == ["urn", "name", "platform", "description"]
    assert found["urn"].tolist() == [SUMMARY]
    assert found["platform"].tolist() == ["trino"]
    assert "POST /api/graphql" in gms.paths()


def test_batch_emit_through_the_emitter(gms: GmsDouble) -> None:
    from datahub.emitter.mcp import MetadataChangeProposalWrapper
    from datahub.metadata import schema_classes as m

    mcps = [
        MetadataChangeProposalWrapper(
            entityUrn=datahub.dataset_urn(f"iceberg.analytics.t{i}"),
            aspect=m.GlobalTagsClass(tags=[m.TagAssociationClass(tag="urn:li:tag:x")]),
        )
        for i in range(5)
    ]
    datahub.emitter().emit_mcps(mcps)
    assert gms.paths() == ["POST /aspects?action=ingestProposalBatch"]
    assert all(gms.aspect(mcp.entityUrn, "globalTags") for mcp in mcps)


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["missing", "wrong"])
def test_bad_token_is_auth_failed_without_the_token(
    gms: GmsDouble, token: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if token is None:
        monkeypatch.delenv("CARBON_DATAHUB__TOKEN")
    else:
        monkeypatch.setenv("CARBON_DATAHUB__TOKEN", token)
    configure()
    with pytest.raises(AuthFailed, match="401") as caught:
        datahub.emit_lineage(ORDERS, SUMMARY)
    assert "datahub.token" in str(caught.value)
    with pytest.raises(AuthFailed):
        datahub.upstreams(SUMMARY)
    with pytest.raises(AuthFailed):
        datahub.search("x")
    (result,) = run(["datahub"]).results
    assert result.status is Status.AUTH_FAILED, result
    for text in (str(caught.value), result.detail, result.hint or ""):
        assert TOKEN not in text
        if token:
            assert token not in text


def test_doctor_ok_names_version_and_user(gms: GmsDouble) -> None:
    (result,) = run(["datahub"]).results
    assert result.status is Status.OK, result
    assert "v1.3.0-double" in result.detail and "as datahub" in result.detail
    assert gms.paths()[:2] == ["GET /config", "POST /api/graphql"]


def test_doctor_catches_a_wrong_url(gms: GmsDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_DATAHUB__GMS_URL", gms.url + "/not-gms")
    configure()
    (result,) = run(["datahub"]).results
    assert result.status is not Status.OK
    assert "gms_url" in (result.detail + (result.hint or ""))


def test_unreachable(gms: GmsDouble) -> None:
    gms.stop()
    with pytest.raises(Unreachable, match="gms_url"):
        datahub.upstreams(SUMMARY)
    (result,) = run(["datahub"]).results
    assert result.status is not Status.OK


@pytest.fixture
def cut(gms: GmsDouble, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    """The SDK talking to the double through a fault-injection proxy that resets every
    connection carrying more than 64 KiB (``heal()`` ends that), with the bounds the other
    ``killed mid-operation`` cells use: connect 2 s, request 10 s, one attempt."""
    proxy = Proxy(int(gms.url.rsplit(":", 1)[1]), cut_after=0)
    monkeypatch.setenv("CARBON_DATAHUB__GMS_URL", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("CARBON_DATAHUB__CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("CARBON_DATAHUB__REQUEST_TIMEOUT", "10")
    reload()
    yield proxy
    proxy.stop()


def test_batch_cut_mid_way_writes_nothing_and_the_call_works_again(
    gms: GmsDouble, cut: Proxy, fault_log: FaultLog
) -> None:
    """``describe`` reads two aspects (small requests: they pass), then sends both in one
    batch whose 1 MiB body the proxy cuts: ``Unreachable`` naming the setting within the
    configured deadline, neither aspect written; once the proxy forwards, the same call works."""
    description = "x" * (1 << 20)
    started = time.monotonic()
    with pytest.raises(Unreachable, match=r"datahub\.gms_url") as info:
        datahub.describe(ORDERS, description=description, tags=["pii"])
    elapsed = time.monotonic() - started
    fault_log("datahub", "killed mid-operation", info.value, elapsed, 12)
    assert cut.cuts, "the proxy cut no connection: the batch was not cut mid-way"
    assert elapsed < 12, f"{elapsed:.1f} s: {info.value}"
    assert TOKEN not in str(info.value)
    assert gms.aspect(ORDERS, "editableDatasetProperties") is None  # nothing half-written
    assert gms.aspect(ORDERS, "globalTags") is None
    cut.heal()
    assert datahub.describe(ORDERS, description=description, tags=["pii"]) == ORDERS
    assert gms.aspect(ORDERS, "editableDatasetProperties")["description"] == description
    assert [t["tag"] for t in gms.aspect(ORDERS, "globalTags")["tags"]] == ["urn:li:tag:pii"]


def test_token_not_in_repr_logs_or_errors(gms: GmsDouble, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = datahub.DatahubSettings.load()
    assert TOKEN not in repr(settings) and TOKEN not in settings.debug_string()
    gms.token = "another"  # every request now fails with 401, and acryl logs curl commands
    with pytest.raises(AuthFailed) as caught:
        datahub.emit_lineage(ORDERS, SUMMARY)
    assert TOKEN not in str(caught.value)
    assert caplog.records and all(TOKEN not in r.getMessage() for r in caplog.records)


def test_lite_backend_refuses_the_gms_clients(lite_store: object) -> None:
    with pytest.raises(ConfigurationError, match="backend is lite"):
        datahub.emitter()
    with pytest.raises(ConfigurationError, match="backend is lite"):
        datahub.graph()


def test_gms_needs_a_url() -> None:
    with pytest.raises(ConfigurationError, match="CARBON_DATAHUB__GMS_URL"):
        datahub.graph()
    configure(datahub={"gms_url": "ftp://x"})
    with pytest.raises(ConfigurationError, match="not an http"):
        datahub.graph()
    configure(datahub={"gms_url": "http://u:secret@x"})
    with pytest.raises(ConfigurationError, match="credentials") as caught:
        datahub.graph()
    assert "secret" not in str(caught.value)
    configure(datahub={"gms_url": "gms.data.svc:8080/"})
    assert datahub.DatahubSettings.load().endpoint == "http://gms.data.svc:8080"


def test_client_import_is_lazy() -> None:
    import subprocess
    import sys

    code = (
        "import time, sys, carbon_sdk.settings; t = time.perf_counter(); "
        "from carbon_sdk import datahub; "
        "datahub.dataset_urn('a.b.c'); print(time.perf_counter() - t); "
        "print('datahub.emitter.rest_emitter' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, loaded = out.stdout.split()
    assert loaded == "False"
    assert float(seconds) < 0.3  # the settings base (pydantic) is everybody's, not counted
