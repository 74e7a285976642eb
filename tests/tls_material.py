"""Certificates made by the tests (a CA, a server and client certificates signed by it, and a stranger
with its own CA), written as PEM files, for the TLS-terminating proxy in front of the Temporal dev server
and for the SMTP STARTTLS tests. Nothing here is committed key material: every run mints its own."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path


@dataclass(frozen=True)
class TlsMaterial:
    ca: Path  # trusted by the clients and (for mTLS) by the proxy
    server: Pem  # SAN: SERVER_NAME, localhost, 127.0.0.1
    client: Pem  # signed by the CA: the mTLS identity of the worker
    stranger_ca: Path  # another CA: a client trusting only this must refuse our server
    stranger_client: Pem  # a client certificate our CA never signed


SERVER_NAME = "temporal.ratio.test"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _ca(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(common: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], *, server: bool
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.now(timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(ca[0].subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), critical=False)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                     else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName(SERVER_NAME), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(ca[1], hashes.SHA256()), key


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> Pem:
    cert_path = directory / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory / f"{name}.key"
    if key is not None:
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
    return Pem(cert_path, key_path)


def mint(directory: Path) -> TlsMaterial:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("ratio-zoom test CA")
    stranger = _ca("somebody else's CA")
    return TlsMaterial(
        ca=_write(directory, "ca", ca[0], None).cert,
        server=_write(directory, "server", *_leaf(SERVER_NAME, ca, server=True)),
        client=_write(directory, "client", *_leaf("ratio-zoom-worker", ca, server=False)),
        stranger_ca=_write(directory, "stranger-ca", stranger[0], None).cert,
        stranger_client=_write(directory, "stranger-client", *_leaf("intruder", stranger, server=False)),
    )
