"""Key rotation, retirement and revocation reach every worker of a live service on reload."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from api.auth import issue_token
from api.token_keys import revoke, rotate
from engine.store.signing import SigningKey
from tests.integration.service import ServiceProcess, metric_value
from tests.integration.test_service_reload import all_workers_at, current_generation

LEAD = json.loads((Path(__file__).parents[2] / "examples" / "leads" / "auto.json").read_text())
DAY = 86400
RELOADS = "ml_credential_reloads_total"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    directory: Path = tmp_path_factory.mktemp("rotating-jwt")
    rotate(directory)
    return directory


@pytest.fixture(scope="module")
def rotating_service(store, keys, tmp_path_factory):
    server = ServiceProcess(
        store.env(JWT_PUBLIC_KEYS=str(keys / "trusted")), tmp_path_factory.mktemp("rotation")
    )
    server.start()
    yield server
    server.stop()


def token(keys: Path, role: str = "scorer", **extra) -> str:
    return issue_token(SigningKey.load(keys / "jwt-signing.key"), f"rot-{role}", role, DAY, **extra)


def statuses(server: ServiceProcess, bearer: str, connections: int = 4) -> set[tuple[int, str]]:
    """Score on several connections (so every worker answers); return (status, message)."""
    seen = set()
    clients = [server.client() for _ in range(connections)]
    for i in range(4 * connections):
        reply = clients[i % connections].request(
            "POST", "/api/v1/score", token=bearer, body={"vertical": "auto", "lead_data": LEAD}
        )
        seen.add((reply.status, "" if reply.status == 200 else reply.json["error"]["message"]))
    for client in clients:
        client.close()
    return seen


def hup_and_wait(server: ServiceProcess) -> None:
    generation = current_generation(server)
    server.hup()
    assert all_workers_at(server, generation + 1, within=5)


def test_rotation_retirement_and_revocation_on_reload(rotating_service, keys):
    server = rotating_service
    first = token(keys)
    assert statuses(server, first) == {(200, "")}  # cached in every worker from now on

    # Rotate: the new key is unknown to the workers until they reload (SIGHUP here).
    rotate(keys)
    second = token(keys, token_id="second-token")
    assert statuses(server, second) == {(401, "token signed by an unknown key")}
    hup_and_wait(server)
    assert statuses(server, second) == {(200, "")}
    assert statuses(server, first) == {(200, "")}  # the grace period

    # A rotation past the first key's grace retires it; the reload API applies it, and
    # the first token, cached in every worker, is refused at once.
    admin_token = token(keys, "admin")  # signed by the second key, which the workers know
    rotate(keys, now=time.time() + 8 * DAY)
    admin = server.client()
    reply = admin.request("POST", "/api/v1/models/reload", token=admin_token)
    assert reply.status == 200, reply
    assert statuses(server, first) == {(401, "token signed by a retired key")}
    assert statuses(server, second) == {(200, "")}

    # Revoking the second token by its id.
    revoke(keys / "trusted", ["second-token"], [])
    hup_and_wait(server)
    assert statuses(server, second) == {(401, "token revoked")}
    assert statuses(server, token(keys)) == {(200, "")}

    text = server.metrics()
    assert metric_value(text, "ml_auth_failures_total", reason="retired_key") >= 4
    assert metric_value(text, "ml_auth_failures_total", reason="revoked") >= 4
    assert (
        metric_value(
            text, "ml_credential_reloads_total", credential="token_keys", outcome="success"
        )
        >= 6
    )
    admin.close()


def test_a_broken_keyring_keeps_the_previous_one(rotating_service, keys):
    server = rotating_service
    good = token(keys)
    metadata = keys / "trusted" / "keyring.json"
    saved = metadata.read_bytes()
    try:
        metadata.write_text("{broken")
        hup_and_wait(server)
        assert statuses(server, good) == {(200, "")}
        failures = metric_value(
            server.metrics(),
            "ml_credential_reloads_total",
            credential="token_keys",
            outcome="failure",
        )
        assert failures >= server.workers
        assert "credential not reloaded" in server.log()
    finally:
        metadata.write_bytes(saved)
