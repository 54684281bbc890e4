"""TLS for the local stack: one CA per stack, and server certificates it signs for any service.

:func:`stack_ca` makes (once, under a lock) the CA in the stack's shared directory; clients
trust its ``ca.pem``, which lives as long as the stack (``down --purge`` removes it).
:func:`server_certificate` writes a service's PEM keystore (PKCS#8 key, leaf certificate, CA
certificate in one file), the format of Trino's ``http-server.https.keystore.path`` and of
Kafka's ``ssl.keystore.type=PEM``. Both are renewed when less than 30 days remain; a leaf is
also re-issued when the CA or the host names change. Keys are ECDSA P-256.

This module imports ``cryptography``: services import it inside their methods, so the stack
and the services without TLS work without it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from carbon_sdk._files import locked, write_atomic

DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1")
CERT_DAYS = 3650
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class CA:
    """The stack's certificate authority: ``cert_pem`` (what clients trust) and ``key_pem``."""

    cert_pem: Path
    key_pem: Path

    @classmethod
    def of_stack(cls, shared_dir: Path) -> CA:
        """The CA's files in a stack's shared directory (``ca/``); :func:`stack_ca` makes them."""
        return cls(shared_dir / "ca" / "ca.pem", shared_dir / "ca" / "ca-key.pem")


@dataclass(frozen=True)
class ServerCertificate:
    """A service's TLS files: ``ca_pem`` (the stack's CA certificate, for trust stores) and
    ``keystore_pem`` (PKCS#8 private key, leaf certificate and CA certificate; mode 0600)."""

    ca_pem: Path
    keystore_pem: Path


def stack_ca(shared_dir: Path) -> CA:
    """The CA of the stack whose shared directory is ``shared_dir`` (``ServiceContext
    .shared_dir``), created or renewed first if needed (see :meth:`CA.of_stack`).

    Safe to call from several services at once: a lock file serializes them.
    """
    ca = CA.of_stack(shared_dir)
    with locked(ca.cert_pem.parent / ".lock"):
        if ca.key_pem.is_file() and _fresh(ca.cert_pem):
            return ca
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name("carbon-sdk dev CA")
        cert = _builder(name, name, key.public_key(), ca=True).sign(key, hashes.SHA256())
        write_atomic(ca.key_pem, _key_pem(key), 0o600)
        write_atomic(ca.cert_pem, _cert_pem(cert), 0o644)
    return ca


def server_certificate(
    ca: CA, directory: Path, hostnames: Sequence[str] = DEFAULT_HOSTNAMES
) -> ServerCertificate:
    """``directory/server.pem``, a keystore for ``hostnames`` (DNS names or IP addresses; the
    first is the common name) signed by ``ca``; an existing one is kept while it is valid for
    them and was issued by this CA."""
    keystore = directory / "server.pem"
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.read_bytes())
    san = x509.SubjectAlternativeName([_general_name(h) for h in hostnames])
    if _fresh(keystore) and _issued_for(keystore, ca_cert, san):
        return ServerCertificate(ca.cert_pem, keystore)
    ca_key = serialization.load_pem_private_key(ca.key_pem.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{ca.key_pem} does not hold the EC key of a carbon-sdk dev CA")
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        _builder(_name(hostnames[0]), ca_cert.subject, key.public_key(), ca=False)
        .add_extension(san, critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_atomic(keystore, _key_pem(key) + _cert_pem(leaf) + _cert_pem(ca_cert), 0o600)
    return ServerCertificate(ca.cert_pem, keystore)


def _fresh(pem: Path) -> bool:
    """Whether the first certificate in ``pem`` exists and is valid for longer than 30 days."""
    try:
        cert = x509.load_pem_x509_certificate(pem.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE


def _issued_for(
    keystore: Path, ca_cert: x509.Certificate, san: x509.SubjectAlternativeName
) -> bool:
    leaf = x509.load_pem_x509_certificate(keystore.read_bytes())
    try:
        leaf.verify_directly_issued_by(ca_cert)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    return set(names) == set(san)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, *, ca: bool
) -> x509.CertificateBuilder:
    """A certificate valid from 5 minutes ago for :data:`CERT_DAYS`, as a CA or a TLS server."""
    now = dt.datetime.now(dt.UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
