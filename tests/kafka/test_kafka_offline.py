"""The kafka connector without a broker: settings to librdkafka configuration, errors, input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from carbon_sdk import AuthFailed, ConfigurationError, NotFound, TLSError, Unreachable, kafka
from carbon_sdk.settings.carbon import configure

SECRET = "s3cr3t-Pa55word"


def _sasl() -> None:
    configure(
        kafka={
            "bootstrap_servers": "b1:9093,b2:9093",
            "username": "alice",
            "password": SECRET,
            "ca_bundle": "/etc/ca.pem",
        }
    )


def test_sasl_ssl_config_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    _sasl()
    settings = kafka.KafkaSettings.load()
    assert settings.protocol == "SASL_SSL" and settings.endpoint == "sasl_ssl://b1:9093,b2:9093"
    producer = settings.client_config("producer")
    assert producer["sasl.password"] == SECRET and producer["sasl.mechanism"] == "SCRAM-SHA-512"
    assert producer["ssl.ca.location"] == "/etc/ca.pem"
    assert producer["client.id"] == "carbon-sdk-alice"
    assert producer["socket.connection.setup.timeout.ms"] == 10_000
    assert producer["message.timeout.ms"] == 60_000 and producer["request.timeout.ms"] == 30_000
    assert "group.id" not in producer
    consumer = settings.client_config("consumer")
    assert consumer["group.id"] == "alice-notebook" and "message.timeout.ms" not in consumer
    for shown in (repr(settings), str(settings), settings.debug_string()):
        assert SECRET not in shown


def test_plaintext_by_default_and_sasl_needs_credentials() -> None:
    configure(kafka={"bootstrap_servers": "localhost:9092"})
    config = kafka.KafkaSettings.load().client_config("admin")
    assert config["security.protocol"] == "plaintext" and "sasl.username" not in config
    configure(kafka={"security_protocol": "SASL_PLAINTEXT"})
    with pytest.raises(ConfigurationError, match=r"kafka\.username, kafka\.password not set"):
        kafka.KafkaSettings.load().client_config("admin")


def test_unconfigured_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="CARBON_KAFKA__BOOTSTRAP_SERVERS"):
        kafka.producer()


def test_overrides_split_into_settings_and_librdkafka_properties() -> None:
    fields, properties = kafka._split(
        {"delivery_timeout": 5, "linger_ms": 20, "enable.idempotence": True, "error_cb": print}
    )
    assert fields == {"delivery_timeout": 5}
    assert properties == {"linger.ms": 20, "enable.idempotence": True, "error_cb": print}


def test_unreadable_ca_bundle_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    _sasl()
    with pytest.raises(ConfigurationError, match=r"ssl\.ca\.location") as caught:
        kafka.admin(ca_bundle=bad)
    assert SECRET not in str(caught.value)


def test_no_verify_turns_off_certificate_checks() -> None:
    _sasl()
    config = kafka.KafkaSettings.load(verify=False).client_config("admin")
    assert config["enable.ssl.certificate.verification"] is False
    assert "ssl.ca.location" not in config


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (KafkaError._AUTHENTICATION, AuthFailed),
        (KafkaError._SSL, TLSError),
        (KafkaError.UNKNOWN_TOPIC_OR_PART, NotFound),
        (KafkaError._TRANSPORT, Unreachable),
        (KafkaError._MSG_TIMED_OUT, Unreachable),
    ],
)
def test_error_codes_classify(code: int, error: type[Exception]) -> None:
    _sasl()
    settings = kafka.KafkaSettings.load()
    exc = KafkaException(KafkaError(code, f"boom with {SECRET}"))
    classified = kafka.classify(exc, settings)
    assert type(classified) is error
    assert SECRET not in str(classified) and "***" in str(classified)


def test_error_cb_cause_beats_the_timeout() -> None:
    _sasl()
    settings = kafka.KafkaSettings.load()
    seen = kafka._Seen()
    seen(KafkaError(KafkaError._TRANSPORT, "SSL handshake failed: certificate verify failed"))
    seen(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    timeout = KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
    assert isinstance(kafka.classify(timeout, settings, seen), TLSError)
    seen(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error"))
    assert isinstance(kafka.classify(timeout, settings, seen), AuthFailed)


def test_publish_rejects_bad_input_before_connecting() -> None:
    configure(kafka={"bootstrap_servers": "localhost:9092"})
    with pytest.raises(TypeError, match="iterable of records"):
        kafka.publish("t", {"a": 1})
    with pytest.raises(ValueError, match="serializer"):
        kafka.publish("t", [1], serializer="yaml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be"):
        kafka.tail("t", n=0)


def test_client_created_is_logged_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    configure(kafka={"bootstrap_servers": "b1:9093", "username": "alice", "password": SECRET})
    with caplog.at_level(logging.DEBUG, logger="carbon_sdk.kafka"):
        kafka.admin()
    assert "confluent_kafka admin" in caplog.text and "b1:9093" in caplog.text
    assert SECRET not in caplog.text
