"""Kafka against the local stack's broker (Kafka 4.4.0, KRaft, SASL SCRAM-SHA-512 listener).

Records, each SDK vs the plain confluent-kafka loop a user would write, same broker, same run,
rounds interleaved (drift hits both alike), medians:

``kafka_publish``
    1,000,000 messages of 100 bytes to a one-partition topic (acks=all):
    ``kafka.publish(topic, values, serializer="bytes")`` (delivery reports of failures only,
    bounded flush) vs ``Producer.produce`` in a loop (``BufferError`` -> ``poll``) + ``flush``.
``kafka_consume``
    reading those 1,000,000 messages back in a new group: the SDK's ``kafka.consumer(topic)``
    vs a hand-configured ``Consumer``, both with the same ``consume(10_000)`` loop.
``kafka_tail``
    ``kafka.tail(topic, n=20)`` on the 1 M-message topic (watermarks, assign, no group join)
    vs a plain consumer that assigns the last 20 offsets itself.
``kafka_publish_dataframe``
    a 1,000,000-row pandas DataFrame (int, str, float columns) as JSON messages:
    ``kafka.publish(topic, df)`` vs ``for row in df.to_dict("records"): produce(json.dumps(row))``.
``kafka_read_table`` (informational)
    ``kafka.tail(topic, n=1_000_000, as_="arrow")`` (the whole topic as a table) vs the plain
    consume loop collecting values.

    python benchmarks/bench_kafka.py                 # 1 M messages, 3 rounds
    BENCH_KAFKA_MESSAGES=200000 BENCH_KAFKA_ROUNDS=1 python benchmarks/bench_kafka.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import record

MESSAGES = int(os.environ.get("BENCH_KAFKA_MESSAGES", "1000000"))
ROUNDS = int(os.environ.get("BENCH_KAFKA_ROUNDS", "3"))
VALUE = b"x" * 100
NOTES = "Kafka 4.4.0 single node (KRaft, -Xmx512m) on localhost, SASL SCRAM-SHA-512; 2 cores"


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def _medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    from carbon_sdk.dev.kafka import KafkaService
    from carbon_sdk.dev.supervisor import Stack

    work = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    stack = Stack(work / "dev-home", services={"kafka": KafkaService()}, profile=None)
    try:
        started = time.perf_counter()
        stack.up(["kafka"])
        ready = time.perf_counter() - started
        pid = next(r.pid for r in stack.records() if r.name == "kafka")
        for key, value in stack.env().items():
            os.environ[key] = value
        run(ready, pid)
    finally:
        stack.down(purge=True)
        shutil.rmtree(work, ignore_errors=True)


def _rss_mib(pid: int | None) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def run(ready_seconds: float, broker_pid: int | None) -> None:
    import pandas as pd
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import NewTopic

    import carbon_sdk
    from carbon_sdk import kafka

    carbon_sdk.reload()
    settings = kafka.KafkaSettings.load()
    plain = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": "sasl_plaintext",
        "sasl.mechanism": settings.sasl_mechanism,
        "sasl.username": settings.username,
        "sasl.password": settings.secret("password"),
    }
    admin = kafka.admin()

    def new_topic() -> str:
        name = f"bench-{uuid.uuid4().hex[:10]}"
        for future in admin.create_topics([NewTopic(name, 1, 1)]).values():
            future.result(timeout=60)
        kafka.tail(name, n=1)  # the partition has a leader before anyone is timed
        return name

    values = [VALUE] * MESSAGES

    def raw_publish(topic: str) -> int:
        producer = Producer(plain)
        produce, poll = producer.produce, producer.poll
        for value in values:
            while True:
                try:
                    produce(topic, value)
                    break
                except BufferError:
                    poll(0.05)
        if producer.flush(120) != 0:
            raise RuntimeError("raw producer: messages left after flush")
        return len(values)

    def sdk_publish(topic: str) -> int:
        return kafka.publish(topic, values, serializer="bytes")

    def consume_all(consumer: Any) -> int:
        got: list[bytes] = []
        while len(got) < MESSAGES:
            for message in consumer.consume(10_000, 1.0):
                if message.error() is None:
                    got.append(message.value())
        consumer.close()
        return len(got)

    def raw_consume(topic: str) -> int:
        consumer = Consumer(
            {**plain, "group.id": f"raw-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([topic])
        return consume_all(consumer)

    def sdk_consume(topic: str) -> int:
        return consume_all(kafka.consumer(topic, group_id=f"sdk-{uuid.uuid4().hex[:8]}"))

    # -- publish, then read back what was published ----------------------------------------
    publish: dict[str, list[float]] = {"kafka.publish": [], "Producer.produce loop": []}
    consume: dict[str, list[float]] = {"kafka.consumer": [], "Consumer loop": []}
    topics: list[str] = []
    for i in range(ROUNDS):
        for name, fn in (("kafka.publish", sdk_publish), ("Producer.produce loop", raw_publish)):
            topic = new_topic()
            took, sent = _timed(lambda fn=fn, topic=topic: fn(topic))
            assert sent == MESSAGES
            publish[name].append(took)
            topics.append(topic)
            print(f"  round {i + 1} {name}: {took:.2f} s", file=sys.stderr)
        for name, fn in (("kafka.consumer", sdk_consume), ("Consumer loop", raw_consume)):
            took, read = _timed(lambda fn=fn: fn(topics[-1]))
            assert read == MESSAGES
            consume[name].append(took)
            print(f"  round {i + 1} {name}: {took:.2f} s", file=sys.stderr)
    broker_rss = _rss_mib(broker_pid)
    medians = _medians(publish)
    record(
        "kafka_publish",
        "kafka.publish",
        medians["kafka.publish"],
        "Producer.produce loop",
        medians["Producer.produce loop"],
        ROUNDS,
        NOTES + f"; {MESSAGES} x 100 B, acks=all, 1 partition",
        messages=MESSAGES,
        msg_per_s={k: round(MESSAGES / v) for k, v in medians.items()},
        all_seconds={k: [round(t, 3) for t in ts] for k, ts in publish.items()},
        broker_ready_seconds=round(ready_seconds, 2),
        broker_rss_mib=broker_rss,
    )
    medians = _medians(consume)
    record(
        "kafka_consume",
        "kafka.consumer",
        medians["kafka.consumer"],
        "Consumer loop",
        medians["Consumer loop"],
        ROUNDS,
        NOTES + f"; {MESSAGES} x 100 B read back in a new group",
        messages=MESSAGES,
        msg_per_s={k: round(MESSAGES / v) for k, v in medians.items()},
        all_seconds={k: [round(t, 3) for t in ts] for k, ts in consume.items()},
    )

    # -- tail of the 1 M-message topic -------------------------------------------------------
    big = topics[-1]

    def raw_tail() -> int:
        consumer = Consumer(
            {
                **plain,
                "group.id": "raw-tail",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        low, high = consumer.get_watermark_offsets(TopicPartition(big, 0), timeout=10)
        consumer.assign([TopicPartition(big, 0, max(low, high - 20))])
        got = []
        done = False
        while not done:
            for message in consumer.consume(100, 1.0):
                if message.error() is None:
                    got.append(message)
                else:
                    done = True
        consumer.close()
        return len(got)

    tails: dict[str, list[float]] = {"kafka.tail": [], "assign + consume": []}
    for _ in range(max(ROUNDS, 5)):
        took, rows = _timed(lambda: len(kafka.tail(big, n=20)))
        assert rows == 20
        tails["kafka.tail"].append(took)
        took, rows = _timed(raw_tail)
        assert rows == 20
        tails["assign + consume"].append(took)
    medians = _medians(tails)
    record(
        "kafka_tail",
        "kafka.tail",
        medians["kafka.tail"],
        "assign + consume",
        medians["assign + consume"],
        len(tails["kafka.tail"]),
        NOTES + f"; last 20 of {MESSAGES} messages, target < 1 s",
        all_seconds={k: [round(t, 3) for t in ts] for k, ts in tails.items()},
    )

    # -- the whole topic as a table (informational) -----------------------------------------
    table_times: dict[str, list[float]] = {"kafka.tail(n=all, as_=arrow)": [], "Consumer loop": []}
    for _ in range(ROUNDS):
        took, table = _timed(lambda: kafka.tail(big, n=MESSAGES, as_="arrow"))
        assert table.num_rows == MESSAGES
        del table
        table_times["kafka.tail(n=all, as_=arrow)"].append(took)
        took, _ = _timed(lambda: raw_consume(big))
        table_times["Consumer loop"].append(took)
    medians = _medians(table_times)
    record(
        "kafka_read_table",
        "kafka.tail(n=all, as_=arrow)",
        medians["kafka.tail(n=all, as_=arrow)"],
        "Consumer loop",
        medians["Consumer loop"],
        ROUNDS,
        NOTES + "; the whole topic as an Arrow table (partition, offset, timestamp, key, value, "
        "headers) vs collecting values only; informational",
        all_seconds={k: [round(t, 3) for t in ts] for k, ts in table_times.items()},
    )

    # -- a DataFrame as JSON messages -------------------------------------------------------
    frame = pd.DataFrame(
        {
            "id": range(MESSAGES),
            "user": [f"user-{i % 1000}" for i in range(MESSAGES)],
            "amount": [i * 0.25 for i in range(MESSAGES)],
        }
    )

    def raw_frame(topic: str) -> int:
        producer = Producer(plain)
        produce, poll = producer.produce, producer.poll
        for row in frame.to_dict("records"):
            value = json.dumps(row).encode()
            while True:
                try:
                    produce(topic, value)
                    break
                except BufferError:
                    poll(0.05)
        if producer.flush(120) != 0:
            raise RuntimeError("raw producer: messages left after flush")
        return len(frame)

    frames: dict[str, list[float]] = {"kafka.publish(df)": [], "produce + json.dumps loop": []}
    for i in range(ROUNDS):
        for name, fn in (
            ("kafka.publish(df)", lambda topic: kafka.publish(topic, frame)),
            ("produce + json.dumps loop", raw_frame),
        ):
            topic = new_topic()
            took, sent = _timed(lambda fn=fn, topic=topic: fn(topic))
            assert sent == MESSAGES
            frames[name].append(took)
            print(f"  round {i + 1} {name}: {took:.2f} s", file=sys.stderr)
    sample = kafka.tail(topics[-1], n=1)
    medians = _medians(frames)
    record(
        "kafka_publish_dataframe",
        "kafka.publish(df)",
        medians["kafka.publish(df)"],
        "produce + json.dumps loop",
        medians["produce + json.dumps loop"],
        ROUNDS,
        NOTES + f"; {MESSAGES}-row DataFrame (int, str, float) as JSON objects",
        rows_per_s={k: round(MESSAGES / v) for k, v in medians.items()},
        all_seconds={k: [round(t, 3) for t in ts] for k, ts in frames.items()},
        sample_columns=list(sample.columns),
    )


if __name__ == "__main__":
    main()
