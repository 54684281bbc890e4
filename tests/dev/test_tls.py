"""The stack's CA and the server certificates it signs (:mod:`carbon_sdk.dev.tls`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from carbon_sdk.dev import tls


def _handshake(certificate: tls.ServerCertificate, hostname: str) -> str:
    """Serve one TLS handshake with the keystore; return the subject CN the client verified."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certificate.keystore_pem)  # PKCS#8 key + leaf + CA, one file
    client_ctx = ssl.create_default_context(cafile=str(certificate.ca_pem))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(ssl.SSLError):  # the client may reject the certificate
                server_ctx.wrap_socket(conn, server_side=True).close()
            conn.close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                client_ctx.wrap_socket(raw, server_hostname=hostname) as conn,
            ):
                peer = conn.getpeercert()
        finally:
            thread.join()
    return str(dict(x[0] for x in peer["subject"])["commonName"])


def test_a_client_trusting_the_stack_ca_verifies_the_server(tmp_path: Path) -> None:
    ca = tls.stack_ca(tmp_path / "shared")
    assert ca == tls.CA.of_stack(tmp_path / "shared")
    assert stat.S_IMODE(ca.key_pem.stat().st_mode) == 0o600
    certificate = tls.server_certificate(ca, tmp_path / "trino")
    assert certificate.ca_pem == ca.cert_pem
    assert stat.S_IMODE(certificate.keystore_pem.stat().st_mode) == 0o600
    assert certificate.keystore_pem.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert _handshake(certificate, "localhost") == "localhost"
    assert _handshake(certificate, "127.0.0.1") == "localhost"
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(certificate, "example.com")


def test_one_ca_serves_several_services_and_is_kept(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    ca = tls.stack_ca(shared)
    first = ca.cert_pem.read_bytes()
    trino = tls.server_certificate(ca, tmp_path / "trino")
    kafka = tls.server_certificate(tls.stack_ca(shared), tmp_path / "kafka", ["kafka.local"])
    assert ca.cert_pem.read_bytes() == first  # the second call reused the CA
    assert _handshake(kafka, "kafka.local") == "kafka.local"
    keystore = trino.keystore_pem.read_bytes()
    assert tls.server_certificate(ca, tmp_path / "trino").keystore_pem.read_bytes() == keystore


def test_leaf_is_reissued_for_new_hostnames_or_a_new_ca(tmp_path: Path) -> None:
    ca = tls.stack_ca(tmp_path / "shared")
    keystore = tls.server_certificate(ca, tmp_path / "svc").keystore_pem
    before = keystore.read_bytes()
    tls.server_certificate(ca, tmp_path / "svc", ["localhost", "127.0.0.1", "host.test"])
    assert keystore.read_bytes() != before
    assert _handshake(tls.ServerCertificate(ca.cert_pem, keystore), "host.test") == "localhost"

    ca.cert_pem.unlink()  # a new CA: the old leaf no longer chains to it
    renewed = tls.server_certificate(tls.stack_ca(tmp_path / "shared"), tmp_path / "svc")
    assert _handshake(renewed, "localhost") == "localhost"


def test_a_ca_near_expiry_is_renewed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = tls.stack_ca(tmp_path / "shared")
    old = x509.load_pem_x509_certificate(ca.cert_pem.read_bytes())
    monkeypatch.setattr(tls, "RENEW_BEFORE", dt.timedelta(days=tls.CERT_DAYS + 1))
    tls.stack_ca(tmp_path / "shared")
    new = x509.load_pem_x509_certificate(ca.cert_pem.read_bytes())
    assert new.serial_number != old.serial_number
