"""Hot reload in place, by API and by SIGHUP, under load: no failed response, ever."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from engine.store import pointer
from engine.store.signing import Keyring
from tests.integration.service import Client, ServiceProcess

LEAD = json.loads((Path(__file__).parents[2] / "examples" / "leads" / "auto.json").read_text())
VERSIONS = ("1.0.0", "1.1.0")


@pytest.fixture(scope="module")
def reload_service(store, tmp_path_factory):
    """A service of its own: these tests move pointers."""
    server = ServiceProcess(store.env(), tmp_path_factory.mktemp("reload"))
    server.start()
    yield server
    server.stop()


def served_versions(server: ServiceProcess, token: str, samples: int = 16) -> set[str]:
    clients = [server.client() for _ in range(4)]
    seen = set()
    for i in range(samples):
        reply = clients[i % 4].request(
            "POST", "/api/v1/score", token=token, body={"vertical": "auto", "lead_data": LEAD}
        )
        assert reply.status == 200, reply
        seen.add(reply.json["model_version"])
    for client in clients:
        client.close()
    return seen


def all_workers_at(server: ServiceProcess, generation: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        workers = server.live_workers()
        if len(workers) == server.workers and all(w.generation >= generation for w in workers):
            return True
        time.sleep(0.01)
    return False


def current_generation(server: ServiceProcess) -> int:
    from api.reload_state import ReloadState

    state = ReloadState(server.run_dir / "reload.state")
    try:
        return state.generation()
    finally:
        state.close()


def test_reload_api_switches_every_worker(reload_service, store):
    admin = reload_service.client()
    for version in ("1.1.0", "1.0.0"):
        reply = admin.request(
            "POST", "/api/v1/models/reload", token=store.admin, body={"versions": {"auto": version}}
        )
        assert reply.status == 200, reply
        assert reply.json["status"] == "success" and reply.json["versions"]["auto"] == version
        assert all(w["generation"] >= reply.json["generation"] for w in reply.json["workers"])
        assert served_versions(reload_service, store.scorer) == {version}
        assert pointer.read_current(store.root, "auto") == version
    admin.close()


def test_reload_without_body_rereads_pointers(reload_service, store):
    keyring = Keyring.load(store.model_keys / "trusted")
    pointer.activate(store.root, "auto", "1.1.0", keyring)
    client = reload_service.client()
    reply = client.request("POST", "/api/v1/models/reload", token=store.admin)
    assert reply.status == 200 and reply.json["versions"]["auto"] == "1.1.0"
    assert served_versions(reload_service, store.scorer) == {"1.1.0"}
    client.close()


def test_failed_reload_changes_nothing(reload_service, store, tmp_path):
    client = reload_service.client()
    before = client.request("GET", "/api/v1/models", token=store.viewer).json
    missing = client.request(
        "POST", "/api/v1/models/reload", token=store.admin, body={"versions": {"auto": "9.9.9"}}
    )
    assert missing.status == 409 and missing.json["error"]["field"] == "versions.auto"
    assert "9.9.9 does not exist" in missing.json["error"]["message"]
    unknown = client.request(
        "POST", "/api/v1/models/reload", token=store.admin, body={"versions": {"boat": "1.0.0"}}
    )
    assert unknown.status == 404 and unknown.json["error"]["type"] == "unknown_vertical"
    bad = client.request(
        "POST", "/api/v1/models/reload", token=store.admin, body={"versions": {"auto": "one"}}
    )
    assert bad.status == 422 and bad.json["error"]["field"] == "versions.auto"
    # A tampered copy of a version: published by hand, so it fails its hash check.
    source = store.root / "auto" / "v1.0.0"
    forged = store.root / "auto" / "v2.0.0"
    shutil.copytree(source, forged)
    (forged / "manifest.json").chmod(0o644)
    text = (
        (forged / "manifest.json").read_text().replace('"version": "1.0.0"', '"version": "2.0.0"')
    )
    (forged / "manifest.json").write_text(text)
    try:
        tampered = client.request(
            "POST", "/api/v1/models/reload", token=store.admin, body={"versions": {"auto": "2.0.0"}}
        )
        assert (
            tampered.status == 409 and "signature check failed" in tampered.json["error"]["message"]
        )
    finally:
        for path in forged.iterdir():
            path.chmod(0o644)
        shutil.rmtree(forged)
    after = client.request("GET", "/api/v1/models", token=store.viewer).json
    assert [m["loaded_version"] for m in after["models"]] == [
        m["loaded_version"] for m in before["models"]
    ]
    assert after["generation"] == before["generation"]
    client.close()


def test_rollback_api(reload_service, store):
    client = reload_service.client()
    client.request(
        "POST", "/api/v1/models/reload", token=store.admin, body={"versions": {"auto": "1.0.0"}}
    )
    client.request(
        "POST", "/api/v1/models/reload", token=store.admin, body={"versions": {"auto": "1.1.0"}}
    )
    reply = client.request(
        "POST", "/api/v1/models/rollback", token=store.admin, body={"vertical": "auto"}
    )
    assert reply.status == 200, reply
    assert reply.json["versions"]["auto"] == "1.0.0"
    assert served_versions(reload_service, store.scorer) == {"1.0.0"}
    nothing = client.request(
        "POST", "/api/v1/models/rollback", token=store.admin, body={"vertical": "home"}
    )
    assert nothing.status == 409 and "nothing to roll back" in nothing.json["error"]["message"]
    client.close()


def test_sighup_reloads_in_place_without_restarting_workers(reload_service, store):
    keyring = Keyring.load(store.model_keys / "trusted")
    pids = {w.pid for w in reload_service.live_workers()}
    target = "1.1.0" if pointer.read_current(store.root, "auto") == "1.0.0" else "1.0.0"
    pointer.activate(store.root, "auto", target, keyring)
    generation = current_generation(reload_service)
    reload_service.hup()
    assert all_workers_at(reload_service, generation + 1, within=1.0)
    assert served_versions(reload_service, store.scorer) == {target}
    assert {w.pid for w in reload_service.live_workers()} == pids
    assert reload_service.process is not None and reload_service.process.poll() is None


def test_twenty_reloads_under_load(reload_service, store):
    """20 reloads alternating two versions, half by API and half by SIGHUP, under load."""
    keyring = Keyring.load(store.model_keys / "trusted")
    stop = threading.Event()
    failures: list[str] = []
    versions_seen: list[str] = []
    counts = [0]
    lock = threading.Lock()

    def load(index: int) -> None:
        client = Client(reload_service.port)
        while not stop.is_set():
            try:
                reply = client.request(
                    "POST",
                    "/api/v1/score",
                    token=store.scorer,
                    body={"vertical": "auto", "lead_data": LEAD, "lead_id": f"{index}"},
                )
            except Exception as exc:
                failures.append(f"connection error: {exc!r}")
                continue
            body = reply.json
            if reply.status != 200 or not isinstance(body, dict) or "score" not in body:
                failures.append(f"{reply.status}: {reply.raw[:200]!r}")
                continue
            with lock:
                versions_seen.append(body["model_version"])
                counts[0] += 1
        client.close()

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(6)]
    for thread in threads:
        thread.start()
    admin = reload_service.client()
    slow_switches = []
    first_generation = current_generation(reload_service)
    try:
        time.sleep(0.3)
        for i in range(20):
            version = VERSIONS[i % 2]
            if i % 4 < 2:  # API reloads, alternating versions
                reply = admin.request(
                    "POST",
                    "/api/v1/models/reload",
                    token=store.admin,
                    body={"versions": {"auto": version}},
                )
                assert reply.status == 200 and reply.json["status"] == "success", reply
                generation = reply.json["generation"]
            else:  # SIGHUP after moving the pointer
                pointer.activate(store.root, "auto", version, keyring)
                generation = current_generation(reload_service) + 1
                reload_service.hup()
            if not all_workers_at(reload_service, generation, within=1.0):
                slow_switches.append(i)
            time.sleep(0.15)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        admin.close()
    assert not failures, failures[:5]
    assert not slow_switches, f"reloads {slow_switches} took over 1 s to reach every worker"
    assert counts[0] > 100
    assert set(versions_seen) == set(VERSIONS)
    assert "Traceback" not in reload_service.log()
    # Every one of the 20 reloads reached the workers as a new generation.
    assert current_generation(reload_service) >= first_generation + 20
