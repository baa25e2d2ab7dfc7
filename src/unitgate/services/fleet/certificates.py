"""The fleet's TLS material: a CA of its own and the NATS servers' certificate made by `fleet
init`, and the checks a given certificate must pass (its key, its CA, its dates, its names)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_DAYS = 825  # what browsers still accept; `doctor` warns in its last 30 days
CA_DAYS = 3650
EXPIRY_WARNING = timedelta(days=30)


class CertificateProblem(ValueError):
    """A certificate unitgate will not use, and why."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM text: the CA clients trust, and the servers' certificate and key."""

    ca: bytes
    cert: bytes
    key: bytes


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "unitgate fleet"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def generate(hosts: Sequence[str], now: datetime) -> TlsFiles:
    """A new CA and one certificate for every NATS node, naming each host clients and routes use.
    The CA's key is never written: nothing can sign another server or route later (a new
    certificate means `fleet init` anew, or your own PKI through --tls-cert)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("unitgate fleet CA")
    start = now - timedelta(minutes=5)  # a node whose clock is a little behind still accepts it
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),  # sign certs
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("unitgate NATS"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in dict.fromkeys(hosts)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # A route dials its peers with this same certificate: it is a client there.
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return TlsFiles(
        ca=ca.public_bytes(pem),
        cert=cert.public_bytes(pem),
        key=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def _load_cert(data: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertificateProblem(f"{what} is not a PEM certificate") from None


def _dates(cert: x509.Certificate, what: str, now: datetime) -> None:
    if cert.not_valid_after_utc <= now:
        raise CertificateProblem(f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > now:
        raise CertificateProblem(f"{what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")


def check_ca(data: bytes, now: datetime, what: str = "the CA certificate") -> x509.Certificate:
    """A CA file clients may trust: a certificate, in its dates."""
    ca = _load_cert(data, what)
    _dates(ca, what, now)
    return ca


def check(files: TlsFiles, hosts: Sequence[str], now: datetime) -> None:
    """The checks a given certificate must pass before any file is written: it parses, its key
    is its own, its CA signed it, it is in its dates, and it names every host clients and routes
    dial (each checks the name)."""
    cert = _load_cert(files.cert, "the certificate")
    ca = check_ca(files.ca, now)
    try:
        key = serialization.load_pem_private_key(files.key, password=None)
    except (ValueError, TypeError):
        raise CertificateProblem("the key is not an unencrypted PEM private key") from None
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise CertificateProblem("the certificate does not match its key")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateProblem("the certificate was not signed by the CA given") from None
    _dates(cert, "the certificate", now)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateProblem("the certificate names no host (no subjectAltName)") from None
    named = {str(n) for n in names.get_values_for_type(x509.IPAddress)}
    named |= {n.lower() for n in names.get_values_for_type(x509.DNSName)}
    missing = [h for h in dict.fromkeys(hosts) if h.lower() not in named and not _wildcard(h, named)]
    if missing:
        raise CertificateProblem(f"the certificate does not name {', '.join(missing)}")


def _wildcard(host: str, named: set[str]) -> bool:
    _, _, parent = host.lower().partition(".")
    return bool(parent) and f"*.{parent}" in named


def expiry_problem(data: bytes, what: str, now: datetime) -> tuple[str, str] | None:
    """For doctor: ("FAIL"|"warn", why) when a certificate file is unusable or about to be."""
    try:
        cert = check_ca(data, now, what)
    except CertificateProblem as problem:
        return "FAIL", str(problem)
    if cert.not_valid_after_utc - now < EXPIRY_WARNING:
        return "warn", f"{what} expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def utcnow() -> datetime:
    return datetime.now(UTC)
