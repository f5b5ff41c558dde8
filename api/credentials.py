"""Credentials re-read on every reload: model-signing keys, token keys, TLS certificate.

A reload (the reload API or ``kill -HUP`` of the master) rotates credentials in place in
every worker, with no restart: ``ModelRuntime`` re-reads the trusted model-signing keys
before it verifies anything (``model_keys``), then runs its ``reload_hooks``: the token
keyring with its revocations (``token_keys``, ``api.token_keys``) and the certificate
(``tls_certificate``, ``api.tls``). A credential that fails to load leaves the previous
one in force; the failure is logged and counted in
``ml_credential_reloads_total{credential,outcome}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from api import metrics, tls
from api.auth import Authenticator
from engine.errors import StoreError

log = logging.getLogger("ml_service.credentials")


def refresh(credential: str, load: Callable[[], dict[str, Any]], environment: str) -> bool:
    """Run ``load`` (which returns what to log) under the failure policy; count it.

    Returns:
        Whether the credential was reloaded (False: the previous one stays in force).
    """
    try:
        details = load()
    except (StoreError, tls.TLSError) as exc:
        metrics.CREDENTIAL_RELOADS.labels(credential, "failure", environment).inc()
        log.error(
            "credential not reloaded; the previous one stays",
            extra={"credential": credential, "reason": str(exc)},
        )
        return False
    metrics.CREDENTIAL_RELOADS.labels(credential, "success", environment).inc()
    log.info("credential reloaded", extra={"credential": credential, **details})
    return True


def reload_hooks(auth: Authenticator, environment: str, tls_on: bool) -> list[Callable[[], object]]:
    """Return the hooks that re-read this worker's credentials."""

    def token_keys() -> dict[str, Any]:
        auth.reload()
        return {"key_ids": sorted(auth.key_ids)}

    def certificate() -> dict[str, Any]:
        return {"valid_until": tls.reload_certificates()}

    hooks: list[Callable[[], object]] = [partial(refresh, "token_keys", token_keys, environment)]
    if tls_on:
        hooks.append(partial(refresh, "tls_certificate", certificate, environment))
    return hooks
