"""A self-signed certificate for `dmask serve --https`.

Browsers give a page the camera only in a secure context: https, or http on
localhost. For a consultation across a network the relay therefore serves https with a
certificate made on request (EC P-256, valid one year, for localhost, 127.0.0.1, ::1,
this host's name and any names given) and cached, so a browser's exception for it
stays valid between runs. The key file is readable by its owner only.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DEFAULT_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dmask" / "tls"
VALID_DAYS = 365
RENEW_DAYS = 7


def _names(extra: list[str]) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname(), *extra]
    return sorted({n for n in names if n and n not in ("0.0.0.0", "::")})


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _usable(cert_path: Path, key_path: Path, names: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key_path.stat()
    except (OSError, ValueError):
        return False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    renew_at = cert.not_valid_after_utc - datetime.timedelta(days=RENEW_DAYS)
    return san == _san(names) and datetime.datetime.now(datetime.timezone.utc) < renew_at


def ensure_certificate(directory: Path = DEFAULT_DIR, hostnames: list[str] | None = None) -> tuple[Path, Path]:
    """(cert.pem, key.pem) in `directory`, made now unless a valid one for these names exists."""
    names = _names(hostnames or [])
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if _usable(cert_path, key_path, names):
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dmask relay (self-signed)")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_context(directory: Path = DEFAULT_DIR, hostnames: list[str] | None = None) -> ssl.SSLContext:
    """An SSL context serving the (possibly new) self-signed certificate."""
    cert_path, key_path = ensure_certificate(directory, hostnames)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context
