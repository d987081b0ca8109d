"""A self-signed TLS certificate for the emulator, valid for 127.0.0.1, ::1 and localhost.

The official SDKs check the subject alternative name, so the certificate carries ``IP:127.0.0.1``; it is
its own trust anchor, so clients pin the PEM file itself. A location has its own; in-memory emulators share
one in ``~/.chatnb/in-memory`` (:func:`chatnb.location.in_memory_dir`), so that a killed one leaves no
temporary folder behind.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..location import open_private, private_dir, write_private

__all__ = ["ensure_certificate"]

CERT_NAME = "emulator-cert.pem"
KEY_NAME = "emulator-key.pem"


def _valid(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)


def ensure_certificate(directory: Path) -> tuple[Path, Path]:
    """The certificate and key PEM files under ``directory``, created when missing or near expiry.

    Processes sharing ``directory`` (in-memory emulators share one) take turns: a lock file beside them.
    """
    lock = open_private(private_dir(directory) / ".certificate.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure(directory / CERT_NAME, directory / KEY_NAME)
    finally:
        os.close(lock)


def _ensure(cert_path: Path, key_path: Path) -> tuple[Path, Path]:
    if cert_path.exists() and key_path.exists() and _valid(cert_path):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "chatnb ACS emulator"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chatnb"),
        ]
    )
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(key_path, key_pem.decode())  # 0600 from creation: no moment where others can read it
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())
    return cert_path, key_path
