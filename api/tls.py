"""TLS 1.3 in transit: the server's SSL context and how it reaches uvicorn.

When ``TLS_CERT_FILE`` and ``TLS_KEY_FILE`` are set (``api.settings``), every worker
serves HTTPS with ``server_context``: TLS 1.3 and nothing older (``minimum_version``;
OpenSSL has no newer version), so TLS 1.2 and below fail at the handshake. The cipher
suites are OpenSSL's TLS 1.3 defaults (``TLS_AES_256_GCM_SHA384``,
``TLS_CHACHA20_POLY1305_SHA256``, ``TLS_AES_128_GCM_SHA256``): all AEAD with ephemeral
key exchange, which is why TLS 1.3 has no cipher string to tune.

How the files reach the socket (gunicorn 25+, uvicorn-worker 0.4, uvicorn 0.47+; read
from their sources, and pinned by ``tests/unit/api/test_tls.py``):

1. ``gunicorn.conf.py`` sets gunicorn's ``certfile`` and ``keyfile``. The master only
   checks that they exist and logs ``https://``; it never wraps a socket for an ASGI
   worker, and gunicorn's own ``ssl_context`` hook (its documented way to set
   ``minimum_version``) is never called for uvicorn workers.
2. ``uvicorn_worker.UvicornWorker.__init__`` copies gunicorn's SSL settings into
   ``uvicorn.Config(ssl_certfile=..., ssl_keyfile=..., ssl_version=..., ...)``.
3. Left alone, uvicorn's ``Config.load()`` (in each worker) would build
   ``ssl.SSLContext(ssl_version)`` with gunicorn's ``ssl_version``, deprecated and
   "ignored" by gunicorn yet still passed on: ``PROTOCOL_TLS``, which accepts TLS 1.2.
   So ``api.worker.ServiceWorker`` sets ``Config.ssl_context_factory`` to
   ``uvicorn_context_factory``, and ``Config.load()`` takes the context from it.

``uvicorn_context_factory`` builds its own context rather than adjusting uvicorn's
default one, so no library default can widen the protocol range. It keeps gunicorn's
client-certificate settings (``--cert-reqs``, ``--ca-certs``, for mutual TLS) and the
key password; ``ssl_version`` and ``ciphers`` are ignored (TLS 1.3 suites are not
chosen by a cipher string).

A worker builds its context once, when it starts, and keeps it (``LIVE_CONTEXTS``).
A reload (``kill -HUP`` or the reload API) calls ``reload_certificates``, which checks
the files on disk as a pair in a throwaway context first and only then loads them into
the live context: connections accepted from then on present the new certificate,
connections already open keep theirs, and a bad pair leaves the old one serving.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uvicorn.config import Config

TLS_VERSION = ssl.TLSVersion.TLSv1_3


class TLSError(RuntimeError):
    """The certificate or key cannot be used.

    A ``RuntimeError`` so that, raised from a gunicorn hook in the master, gunicorn
    prints the message and exits 1 instead of a traceback.
    """


def server_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None = None,
    password: str | None = None,
) -> ssl.SSLContext:
    """Return a server context that speaks TLS 1.3 only, with the given certificate.

    Args:
        certfile: PEM certificate chain (leaf first); may also hold the key.
        keyfile: PEM private key (``None``: in ``certfile``).
        password: The key's password, when it is encrypted.

    Raises:
        TLSError: A file cannot be read, is not PEM, or the key does not match the
            certificate; the message names the files and OpenSSL's reason.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # The one line this module exists for. PROTOCOL_TLS_SERVER alone would accept TLS
    # 1.2 (Python's floor); the version range, not a cipher string, is what rules out
    # every pre-1.3 handshake.
    context.minimum_version = TLS_VERSION
    try:
        context.load_cert_chain(certfile, keyfile, password)
    except (ssl.SSLError, OSError) as exc:
        # OpenSSL's reason (KEY_VALUES_MISMATCH, ...) or the OS error; a file that is not
        # PEM only gets OpenSSL's unhelpful "[SSL] PEM lib", so say what it means.
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        if "PEM lib" in str(reason):
            reason = "not a PEM certificate chain and private key"
        key = f" with key {keyfile}" if keyfile else ""
        raise TLSError(f"cannot use TLS certificate {certfile}{key}: {reason}") from exc
    return context


def uvicorn_context_factory(
    config: Config, default_factory: Callable[[], ssl.SSLContext]
) -> ssl.SSLContext:
    """``uvicorn.Config.ssl_context_factory``: build the worker's TLS 1.3-only context.

    Args:
        config: The worker's ``uvicorn.Config``; its ``ssl_*`` attributes carry
            gunicorn's SSL settings (step 2 of the module docstring).
        default_factory: uvicorn's own context builder; deliberately not called.

    Returns:
        The ``ssl.SSLContext`` every connection of this worker is wrapped with.

    Raises:
        TLSError: No certificate is configured, or it cannot be used.
    """
    if not config.ssl_certfile:
        raise TLSError("TLS is on but no certificate file was passed to uvicorn")
    context = server_context(
        config.ssl_certfile, config.ssl_keyfile or None, config.ssl_keyfile_password
    )
    # Mutual TLS stays available through gunicorn's --cert-reqs / --ca-certs.
    context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
    if config.ssl_ca_certs:
        context.load_verify_locations(config.ssl_ca_certs)
    LIVE_CONTEXTS.append(
        LiveContext(
            context, config.ssl_certfile, config.ssl_keyfile or None, config.ssl_keyfile_password
        )
    )
    return context


@dataclass(frozen=True, slots=True)
class LiveContext:
    """A context this worker serves with, and the files it was loaded from."""

    context: ssl.SSLContext
    certfile: str | os.PathLike[str]
    keyfile: str | os.PathLike[str] | None
    password: str | None


# The contexts this process serves with (one per worker process in practice).
LIVE_CONTEXTS: list[LiveContext] = []


def reload_certificates() -> list[str]:
    """Load the certificate files again into every live context (call on a reload).

    Each pair is first loaded into a throwaway context, so a missing, unreadable or
    mismatched pair raises before the live context is touched and the old certificate
    keeps serving.

    Returns:
        The new expiry (ISO 8601 UTC) of each reloaded certificate.

    Raises:
        TLSError: A certificate or key on disk cannot be used (nothing was changed).
    """
    expiries = []
    for live in LIVE_CONTEXTS:
        server_context(live.certfile, live.keyfile, live.password)  # check the pair first
        live.context.load_cert_chain(live.certfile, live.keyfile, live.password)
        expiries.append(certificate_not_after(live.certfile))
    return expiries


def certificate_not_after(certfile: str | os.PathLike[str]) -> str:
    """Return the expiry of the first (leaf) certificate in ``certfile``, ISO 8601 UTC.

    Raises:
        TLSError: The file holds no readable PEM certificate.
    """
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(Path(certfile).read_bytes())
    except (OSError, ValueError) as exc:
        raise TLSError(f"cannot read TLS certificate {certfile}: {exc}") from exc
    return certificate.not_valid_after_utc.isoformat()
