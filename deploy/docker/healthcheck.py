"""The image's HEALTHCHECK: exit 0 if this container's service answers ``GET /health``.

Docker runs it inside the container (``HEALTHCHECK CMD``), so it needs nothing but the
standard library: no curl in the image. It reads the service's own settings:

- ``BIND`` (``HOST:PORT``, default ``0.0.0.0:8000``) for the port; a wildcard host is
  probed on loopback.
- ``TLS_CERT_FILE``: with TLS on the service speaks HTTPS only, so the probe does too,
  without verifying the certificate (it asks whether this process answers over
  loopback, not who it is; the certificate's names are the clients' business).

``/health`` answers 200 once a worker has finished starting (its routes are mounted at
the end of the application's startup), so a passing check means gunicorn is up and at
least one worker serves. Readiness to score (``/ready``) is the orchestrator's probe,
not this one: a worker without a model is alive and says why on ``/ready``.

Exit status 0: healthy; 1: not (the reason goes to stderr, which Docker keeps in
``docker inspect``'s health log).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

HEALTH_PATH = "/health"  # public (api.access): the check has no token
TIMEOUT_SECONDS = 4.0
WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def probe_url(environ: Mapping[str, str]) -> str:
    """Return the URL of ``/health`` for the service configured by ``environ``.

    Raises:
        ValueError: ``BIND`` is not ``HOST:PORT`` (a unix socket cannot be probed here).
    """
    bind = environ.get("BIND") or "0.0.0.0:8000"
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or bind.startswith(("unix:", "fd://")):
        raise ValueError(f"BIND={bind!r} is not HOST:PORT; the health check probes TCP only")
    if host in WILDCARDS:
        host = "[::1]" if ":" in host else "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # a bare IPv6 address
    scheme = "https" if environ.get("TLS_CERT_FILE") else "http"
    return f"{scheme}://{host}:{port}{HEALTH_PATH}"


def check(url: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """Return None if ``url`` answers 200, else why not."""
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:  # refused, reset, timed out, TLS failure
        reason = getattr(exc, "reason", exc)
        return f"GET {url} failed: {reason}"
    return None if status == 200 else f"GET {url} answered {status}"


def main() -> int:
    """Probe the service; return the exit status."""
    try:
        url = probe_url(os.environ)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    problem = check(url)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
