"""The kafka connector against the stack's real Apache Kafka broker (KRaft, SCRAM-SHA-512)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pyarrow as pa
import pytest
from confluent_kafka.admin import NewTopic
from reliability.report import FaultLog

from carbon_sdk import AuthFailed, NotFound, TLSError, Unreachable, kafka
from carbon_sdk.dev.kafka import KafkaService
from carbon_sdk.dev.pytest_plugin import StackEnv, StartServices
from carbon_sdk.dev.supervisor import Stack
from carbon_sdk.health import Status, run
from carbon_sdk.settings.carbon import configure

pytestmark = pytest.mark.stack


@pytest.fixture
def kafka_env(stack_env: StackEnv) -> dict[str, str]:
    """The SDK pointed at the stack's broker (SASL_PLAINTEXT listener, SCRAM user)."""
    return stack_env("kafka")


def _create(name: str, partitions: int = 1) -> None:
    client = kafka.admin()  # referenced until the futures resolve
    for future in client.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)


@pytest.fixture
def topic(kafka_env: dict[str, str]) -> Iterator[str]:
    """A new topic with two partitions, deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    _create(name, partitions=2)
    yield name
    client = kafka.admin()
    for future in client.delete_topics([name]).values():
        future.result(timeout=30)


def test_publish_and_tail_round_trip_with_keys_and_headers(topic: str) -> None:
    records = [{"id": i, "kind": "click", "text": 'é\n"quoted"'} for i in range(30)]
    assert kafka.publish(topic, records, key="id", headers={"source": "test"}) == 30
    frame = kafka.tail(topic, n=100)
    assert len(frame) == 30 and set(frame["partition"]) <= {0, 1}
    assert sorted(json.loads(v)["id"] for v in frame["value"]) == list(range(30))
    by_key = {row.key: json.loads(row.value) for row in frame.itertuples()}
    assert by_key["7"] == records[7]  # keyed records land whole, keys as text
    assert all(dict(h) == {"source": "test"} for h in frame["headers"])
    assert str(frame["timestamp"].dtype) == "datetime64[ms, UTC]"
    # the same key always goes to the same partition
    assert frame.groupby("key")["partition"].nunique().max() == 1

    last = kafka.tail(topic, n=3)
    assert len(last) <= 6
    for partition, rows in last.groupby("partition"):
        expected_end = frame[frame["partition"] == partition]["offset"].max()
        assert rows["offset"].max() == expected_end and len(rows) == 3

    parsed = kafka.tail(topic, n=100, deserializer="json")
    assert sorted(v["id"] for v in parsed["value"]) == list(range(30))
    raw = kafka.tail(topic, n=1, as_="arrow", deserializer="bytes")
    assert isinstance(raw, pa.Table) and raw.schema.field("value").type == pa.binary()


def test_publish_dataframe_with_key_column_and_row_headers(topic: str) -> None:
    df = pd.DataFrame(
        {
            "user": [f"u{i % 3}" for i in range(12)],
            "amount": [i * 1.5 for i in range(12)],
            "at": pd.date_range("2026-01-01", periods=12, freq="h", tz="UTC"),
        }
    )
    sent = kafka.publish(topic, df, key="user", headers=lambda row: {"user": row["user"]})
    assert sent == 12
    frame = kafka.tail(topic, n=50, deserializer="json")
    assert len(frame) == 12
    values = sorted(frame["value"], key=lambda v: v["amount"])
    assert values[3] == {"user": "u0", "amount": 4.5, "at": "2026-01-01T03:00:00.000Z"}
    assert all(dict(h)["user"] == k for h, k in zip(frame["headers"], frame["key"], strict=True))
    polars_frame = kafka.tail(topic, n=1, as_="polars")
    assert polars_frame.columns == ["partition", "offset", "timestamp", "key", "value", "headers"]


def test_topics_lists_the_topic_with_its_message_count(topic: str) -> None:
    kafka.publish(topic, range(5), serializer="str")
    listed = kafka.topics()
    row = listed[listed["topic"] == topic].iloc[0]
    assert (row["partitions"], row["replication_factor"], row["messages"]) == (2, 1, 5)
    assert not listed["topic"].str.startswith("__").any()


def test_a_topic_just_created_is_listed_and_tailed_at_once(kafka_env: dict[str, str]) -> None:
    """Its partitions' leaders may still be elected: waited for, not reported as errors."""
    for _ in range(3):
        name = f"fresh-{uuid.uuid4().hex[:8]}"
        _create(name, partitions=3)
        listed = kafka.topics()
        assert listed[listed["topic"] == name]["messages"].tolist() == [0]
        assert kafka.tail(name).empty
        assert kafka.publish(name, [{"n": 1}]) == 1


def test_aborted_transaction_is_invisible_to_read_committed(topic: str) -> None:
    producer = kafka.producer(transactional_id=f"test-{uuid.uuid4().hex[:8]}")
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, f"aborted-{i}".encode())
    producer.flush(30)
    producer.abort_transaction(30)
    del producer

    assert kafka.publish(topic, [{"n": i} for i in range(5)], transactional=True) == 5

    def failing_records() -> Iterator[dict[str, int]]:
        yield from ({"n": 100 + i} for i in range(3))
        raise ValueError("the source broke mid-batch")

    with pytest.raises(ValueError, match="mid-batch"):
        kafka.publish(topic, failing_records(), transactional=True)

    committed = kafka.tail(topic, n=100)
    assert sorted(json.loads(v)["n"] for v in committed["value"]) == list(range(5))
    everything = kafka.tail(topic, n=100, isolation="read_uncommitted")
    # the 10 aborted and 5 committed; the SDK's abort may purge its 3 before they are sent
    assert 15 <= len(everything) <= 18
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = kafka.consumer(topic, group_id=group)
    seen: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(seen) < 5 and time.monotonic() < deadline:
        seen += [m.value() for m in consumer.consume(100, 0.5) if m.error() is None]
    consumer.close()
    assert sorted(json.loads(v)["n"] for v in seen) == list(range(5))


def test_group_commit_and_resume(topic: str) -> None:
    kafka.publish(topic, [{"n": i} for i in range(20)], key=lambda r: "same")  # one partition
    group = f"g-{uuid.uuid4().hex[:8]}"
    first = kafka.consumer(topic, group_id=group, enable_auto_commit=False)
    taken: list[int] = []
    deadline = time.monotonic() + 30
    while len(taken) < 8 and time.monotonic() < deadline:
        message = first.poll(0.5)
        if message is not None and message.error() is None:
            taken.append(json.loads(message.value())["n"])
    first.commit(asynchronous=False)
    first.close()
    assert taken == list(range(8))

    lagging = kafka.lag(group)
    assert lagging["committed"].sum() == 8 and lagging["lag"].sum() == 12
    assert set(lagging["group"]) == {group} and set(lagging["topic"]) == {topic}

    second = kafka.consumer([topic], group_id=group)
    rest: list[int] = []
    deadline = time.monotonic() + 30
    while len(rest) < 12 and time.monotonic() < deadline:
        rest += [json.loads(m.value())["n"] for m in second.consume(50, 0.5) if m.error() is None]
    second.commit(asynchronous=False)
    second.close()
    assert rest == list(range(8, 20))
    assert kafka.lag(group)["lag"].sum() == 0
    assert kafka.lag(f"no-such-group-{uuid.uuid4().hex[:6]}").empty


def test_default_group_and_client_id_carry_the_hub_user(
    kafka_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    settings = kafka.KafkaSettings.load()
    config = settings.client_config("consumer")
    assert config["group.id"] == "alice-notebook"
    assert config["client.id"] == "carbon-sdk-alice"


def test_wrong_scram_password_is_an_auth_failure_without_the_password(
    kafka_env: dict[str, str],
) -> None:
    topic = "any-topic"  # authentication fails before the topic is looked up
    configure(kafka={"password": "not-the-password"})
    started = time.monotonic()
    with pytest.raises(AuthFailed) as caught:
        kafka.publish(topic, [{"n": 1}])
    assert time.monotonic() - started < 10  # named by error_cb, not after a metadata timeout
    message = str(caught.value)
    assert "_AUTHENTICATION" in message and "kafka.password" in message
    assert "not-the-password" not in message
    assert kafka_env["CARBON_KAFKA__PASSWORD"] not in message
    with pytest.raises(AuthFailed):
        kafka.tail(topic)
    (result,) = run(["kafka"], timeout=10).results
    assert result.status is Status.AUTH_FAILED
    assert "not-the-password" not in f"{result.detail} {result.hint}"


def test_doctor_reports_cluster_id_and_brokers(kafka_env: dict[str, str]) -> None:
    (result,) = run(["kafka"], timeout=10).results
    assert result.status is Status.OK, result
    assert "1 broker" in result.detail and "cluster " in result.detail
    assert kafka_env["CARBON_KAFKA__PASSWORD"] not in repr(kafka.KafkaSettings.load())


def test_broker_listens_on_loopback_only(carbon_services: StartServices) -> None:
    record = next(r for r in carbon_services("kafka").stack.records() if r.name == "kafka")
    assert record.pid is not None
    listening = {
        (c.laddr.ip.removeprefix("::ffff:"), c.laddr.port)
        for c in psutil.Process(record.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert {ip for ip, _ in listening} == {"127.0.0.1"}
    assert set(record.ports.values()) <= {port for _, port in listening}


def test_tls_listener_needs_the_stack_ca(
    kafka_env: dict[str, str], carbon_services: StartServices
) -> None:
    session = carbon_services("kafka")
    record = next(r for r in session.stack.records() if r.name == "kafka")
    ca = session.stack.home / "shared" / "ca" / "ca.pem"
    assert ca.is_file()
    tls = {"bootstrap_servers": f"127.0.0.1:{record.ports['tls']}", "security_protocol": "SASL_SSL"}
    assert "1 broker" in kafka.check(kafka.KafkaSettings.load(**tls, ca_bundle=ca))
    with pytest.raises(TLSError, match="certificate verify failed"):
        kafka.check(kafka.KafkaSettings.load(**tls))
    with pytest.raises(TLSError, match=r"PLAINTEXT broker listener"):  # TLS to a plain port
        kafka.check(kafka.KafkaSettings.load(security_protocol="SASL_SSL"))


def test_unreachable_broker(kafka_env: dict[str, str]) -> None:
    started = time.monotonic()
    with pytest.raises(Unreachable, match="refused"):
        kafka.publish("anything", [1], bootstrap_servers="127.0.0.1:1")
    assert time.monotonic() - started < 5


def test_topic_that_does_not_exist(kafka_env: dict[str, str]) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(NotFound, match="does not exist"):
        kafka.publish(missing, [{"n": 1}])
    with pytest.raises(NotFound, match="does not exist"):
        kafka.tail(missing)
    assert missing not in set(kafka.topics(internal=True)["topic"])  # not auto-created


@pytest.mark.slow
def test_broker_stopped_mid_publish_reports_failures_and_bounds_the_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_log: FaultLog
) -> None:
    """A broker of its own (the session's stays up): stopped while records are being sent,
    then restarted and read at once (leadership settling is waited for, not slept over)."""
    stack = Stack(tmp_path / "stack", services={"kafka": KafkaService()}, profile=None)
    try:
        stack.up(["kafka"])
        for key, value in stack.env().items():
            monkeypatch.setenv(key, value)
        configure(kafka={"delivery_timeout": 3, "request_timeout": 5})
        _create("doomed")
        total = 400_000
        stopped_at: list[float] = []

        def records() -> Iterator[bytes]:
            for i in range(total):
                if i == 20_000:
                    stack.down()
                    stopped_at.append(time.monotonic())
                yield b"x" * 100

        with pytest.raises(kafka.DeliveryFailed) as caught:
            kafka.publish("doomed", records(), serializer="bytes")
        elapsed = time.monotonic() - stopped_at[0]
        bound = 3 + 5 + 10  # delivery + request timeout, + slack for the loaded 2 cores
        fault_log("kafka", "killed mid-operation", caught.value, elapsed, bound)
        assert elapsed < bound
        failure = caught.value
        assert failure.failed_count > 0 and failure.failed
        assert {name for _, name, _ in failure.failed} <= {"_MSG_TIMED_OUT", "_TRANSPORT"}
        assert "not delivered" in str(failure)

        stack.up(["kafka"])
        frame = kafka.tail("doomed", n=5)
        assert len(frame) == 5  # the records acknowledged before the stop are there
        assert kafka.publish("doomed", [b"after"], serializer="bytes") == 1
    finally:
        stack.down(purge=True)


def test_publish_shows_a_progress_bar_when_asked(
    topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kafka.publish(topic, range(2500), serializer="str", progress=True) == 2500
    bar = capsys.readouterr().err  # tqdm's console bar (pytest's stderr is not a terminal)
    assert f"publish {topic}" in bar and "2500/2500" in bar
    assert kafka.publish(topic, [{"n": 1}]) == 1  # default: no bar when nobody watches
    assert capsys.readouterr().err == ""
