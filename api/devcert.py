"""A self-signed TLS certificate and key for local use (``ml-service tls dev-cert``).

Files, in one directory (default ``var/keys/tls``, created mode 0700 when missing):

- ``tls.key``: the private key, ECDSA on P-256, PKCS#8 PEM, unencrypted, mode 0600.
- ``tls.crt``: its self-signed X.509 v3 certificate, PEM, mode 0644: subject and
  issuer ``CN=<first DNS name given, else localhost>, O=ml-service development``;
  SHA-256 signature; valid from five minutes ago (clock skew) for ``days`` days;
  ``subjectAltName`` with the DNS names and IP addresses given (``localhost``,
  ``127.0.0.1`` and ``::1`` always);
  ``basicConstraints CA:FALSE`` (critical), ``keyUsage digitalSignature`` (critical),
  ``extendedKeyUsage serverAuth``, subject and authority key identifiers.

The names follow Kubernetes TLS secrets (``tls.crt`` / ``tls.key``). Point
``TLS_CERT_FILE`` / ``TLS_KEY_FILE`` at them, and let clients trust ``tls.crt`` itself
(``curl --cacert``, ``ssl.create_default_context(cafile=...)``); no browser or system
trust store does. An existing key is never overwritten unless asked (``force``): each
file is written to a temporary file beside it and linked into place, so a reader never
sees half a key and, without ``force``, a key that appeared meanwhile is not replaced.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_DIR = Path("var/keys/tls")
CERT_NAME = "tls.crt"
KEY_NAME = "tls.key"
DEFAULT_DAYS = 90
MAX_DAYS = 825  # the longest validity clients have accepted for server certificates
ALWAYS_NAMES = ("localhost", "127.0.0.1", "::1")
_CLOCK_SKEW = datetime.timedelta(minutes=5)
# A DNS name: dot-separated labels of letters, digits and inner hyphens; a wildcard
# only as the whole first label.
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DNS_NAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*\.?$")


class DevCertError(ValueError):
    """The certificate cannot be made as asked (bad name, bad days, key exists)."""


@dataclass(frozen=True)
class DevCertificate:
    """What ``make_dev_certificate`` wrote.

    Attributes:
        cert_path: The certificate (``tls.crt``).
        key_path: The private key (``tls.key``).
        names: The subjectAltName entries, DNS names and IP addresses as text.
        not_after: The end of validity (UTC).
        fingerprint: SHA-256 of the DER certificate, hex.
    """

    cert_path: Path
    key_path: Path
    names: tuple[str, ...]
    not_after: datetime.datetime
    fingerprint: str


def subject_alt_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """Return the SAN entries for ``localhost``, ``127.0.0.1``, ``::1`` and ``hosts``.

    Each host is an IP address (v4 or v6) or a DNS name; duplicates are dropped and the
    order kept.

    Raises:
        DevCertError: A host is neither an IP address nor a valid DNS name.
    """
    entries: list[x509.GeneralName] = []
    for host in (*ALWAYS_NAMES, *hosts):
        text = host.strip()
        entry: x509.GeneralName
        try:
            entry = x509.IPAddress(ipaddress.ip_address(text))
        except ValueError:
            if len(text) > 253 or not _DNS_NAME.match(text):
                raise DevCertError(
                    f"--host {host!r} is neither an IP address nor a DNS name"
                ) from None
            entry = x509.DNSName(text.rstrip(".").lower())
        if entry not in entries:
            entries.append(entry)
    return entries


def _write_new(path: Path, data: bytes, mode: int, replace: bool) -> None:
    """Write ``data`` to ``path`` with ``mode`` through a temporary file beside it.

    Without ``replace``, ``os.link`` puts it in place and fails if ``path`` exists.

    Raises:
        FileExistsError: ``path`` exists and ``replace`` is false.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, mode)
    try:
        try:
            os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            temporary.replace(path)
        else:
            os.link(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def make_dev_certificate(
    directory: Path = DEFAULT_DIR,
    hosts: Iterable[str] = (),
    days: int = DEFAULT_DAYS,
    force: bool = False,
    now: datetime.datetime | None = None,
) -> DevCertificate:
    """Create a self-signed ECDSA P-256 certificate and its key in ``directory``.

    Args:
        directory: Where ``tls.crt`` and ``tls.key`` go (created when missing).
        hosts: Extra DNS names or IP addresses for subjectAltName.
        days: Validity in days, 1 to ``MAX_DAYS``.
        force: Replace an existing ``tls.key`` (and its certificate).
        now: The issue time (default: the current time).

    Raises:
        DevCertError: A host is invalid, ``days`` is out of range, or ``tls.key``
            exists and ``force`` is false.
        OSError: The files cannot be written.
    """
    if not 1 <= days <= MAX_DAYS:
        raise DevCertError(f"--days {days} must be between 1 and {MAX_DAYS}")
    names = subject_alt_names(hosts)
    key_path, cert_path = directory / KEY_NAME, directory / CERT_NAME
    if key_path.exists() and not force:
        raise DevCertError(f"{key_path} exists; refusing to overwrite a key without --force")
    key = ec.generate_private_key(ec.SECP256R1())
    issued = (now or datetime.datetime.now(datetime.UTC)) - _CLOCK_SKEW
    not_after = issued + _CLOCK_SKEW + datetime.timedelta(days=days)
    # Clients match the SANs; the CN is for people: the first DNS name asked for (that
    # fits the CN's 64 characters).
    extra = [
        e.value
        for e in names[len(ALWAYS_NAMES) :]
        if isinstance(e, x509.DNSName) and len(e.value) <= 64
    ]
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, str(extra[0]) if extra else "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ml-service development"),
        ]
    )
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700)
    try:
        _write_new(key_path, key_pem, 0o600, replace=force)
    except FileExistsError:
        raise DevCertError(
            f"{key_path} exists; refusing to overwrite a key without --force"
        ) from None
    # The key is new, so any certificate there belongs to an older key: replace it.
    _write_new(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644, True)
    der = certificate.public_bytes(serialization.Encoding.DER)
    return DevCertificate(
        cert_path=cert_path,
        key_path=key_path,
        names=tuple(str(entry.value) for entry in names),
        not_after=certificate.not_valid_after_utc,
        fingerprint=hashlib.sha256(der).hexdigest(),
    )
