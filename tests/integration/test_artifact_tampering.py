"""Tampered model artifacts and pointers are refused at every load, under scoring load.

One real service (2 workers) over a private copy of the session store, so tampering never
touches the other tests' models. Two threads score ``auto`` on keep-alive connections
the whole time and record every status and ``model_version``: through every attack the
old version (1.0.0) keeps answering, and not one request fails.

Each attack is offered three ways where it applies: the reload API with the version
(refused before ``CURRENT`` moves), ``CURRENT`` moved behind the service's back then
SIGHUP (every worker refuses), and the reload API without a body (refused, 409). Each
time ``/ready``, ``GET /api/v1/models``, the JSON logs and the metrics must say why;
then the store is put right and the service recovers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine.store import pointer
from engine.store.layout import atomic_write
from engine.store.manifest import decode_manifest, encode_manifest
from engine.store.publish import publish
from engine.store.signing import Keyring, SigningKey, generate_keypair
from tests.integration.service import Client, ServiceProcess, metric_value
from tests.integration.test_service_reload import current_generation

LEAD = json.loads((Path(__file__).parents[2] / "examples" / "leads" / "auto.json").read_text())
OLD = "1.0.0"
ENV = "test"
WAIT_SECONDS = 10.0


# -- the scoring load ------------------------------------------------------------------


class Load:
    """Threads scoring ``auto`` continuously on keep-alive connections."""

    def __init__(self, port: int, token: str, threads: int = 2) -> None:
        self.port = port
        self.token = token
        self.records: list[tuple[int, str | None, bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        client = Client(self.port)
        body = {"vertical": "auto", "lead_data": LEAD}
        while not self._stop.is_set():
            try:
                reply = client.request("POST", "/api/v1/score", token=self.token, body=body)
                status, payload = reply.status, reply.json
                version = payload.get("model_version") if isinstance(payload, dict) else None
                record = (status, version, b"" if status == 200 else reply.raw[:200])
            except Exception as exc:  # a reset connection is a failed request too
                record = (0, None, repr(exc).encode())
            with self._lock:
                self.records.append(record)
        client.close()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def mark(self) -> int:
        with self._lock:
            return len(self.records)

    def served_since(self, mark: int, at_least: int = 20) -> list[tuple[int, str | None, bytes]]:
        """Wait until ``at_least`` more requests were answered; return all since ``mark``."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self.mark() < mark + at_least and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            window = self.records[mark:]
        assert len(window) >= at_least, "the scoring load stalled"
        return window


def assert_old_version_served(window: list[tuple[int, str | None, bytes]]) -> None:
    failed = [r for r in window if r[0] != 200]
    assert not failed, failed[:3]
    assert {version for _, version, _ in window} == {OLD}


# -- the service and its private store -------------------------------------------------


@dataclass
class Bench:
    server: ServiceProcess
    root: Path
    key: SigningKey
    keyring: Keyring
    attacker: SigningKey
    admin: str
    scorer: str
    started_with: tuple[Path, bytes]
    load: Load | None = None


def flip_byte(path: Path, offset: int = -2) -> bytes:
    """Flip the low bit of one byte of a (read-only) file; return the original bytes."""
    original = path.read_bytes()
    data = bytearray(original)
    data[offset] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    return original


def put_back(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)
    path.chmod(0o444)


@pytest.fixture(scope="module")
def bench(store, tmp_path_factory) -> Iterator[Bench]:
    base = tmp_path_factory.mktemp("tampering")
    root = base / "models"
    shutil.copytree(store.root, root, ignore=shutil.ignore_patterns(".lock", ".tmp-*"))
    keyring = Keyring.load(store.model_keys / "trusted")
    pointer.activate(root, "auto", OLD, keyring)  # other tests move the shared pointer
    generate_keypair(base / "attacker")
    attacker = SigningKey.load(base / "attacker" / "model-signing.key")
    # Started with life's active version tampered: one flipped byte in an encoder table.
    table = root / "life" / "v1.0.0" / "encoders.smoker.values.npy"
    original = flip_byte(table)
    server = ServiceProcess(store.env(MODEL_PATH=str(root)), base, workers=2)
    server.start(wait_ready=False)
    setup = Bench(
        server,
        root,
        SigningKey.load(store.model_keys / "model-signing.key"),
        keyring,
        attacker,
        store.admin,
        store.scorer,
        (table, original),
    )
    try:
        yield setup
    finally:
        if setup.load is not None:
            setup.load.stop()
        server.stop()


@pytest.fixture(scope="module")
def load(bench: Bench) -> Load:
    """The scoring load, started once the service serves every vertical."""
    bench.load = Load(bench.server.port, bench.scorer)
    bench.load.start()
    return bench.load


# -- observing the service -------------------------------------------------------------


def fresh(server: ServiceProcess, method: str, path: str, **kwargs: Any):
    """One request on a new connection (so it may reach either worker)."""
    client = server.client()
    try:
        return client.request(method, path, **kwargs)
    finally:
        client.close()


def ready_replies(server: ServiceProcess, count: int = 4) -> list[Any]:
    return [fresh(server, "GET", "/ready") for _ in range(count)]


def model_state(bench: Bench, vertical: str) -> dict[str, Any]:
    reply = fresh(bench.server, "GET", "/api/v1/models", token=bench.admin)
    assert reply.status == 200, reply
    return next(m for m in reply.json["models"] if m["vertical"] == vertical)


def metric(server: ServiceProcess, name: str, **labels: str) -> float:
    try:
        return metric_value(server.metrics(), name, environment=ENV, **labels)
    except KeyError:
        return 0.0


def refusal_logs(server: ServiceProcess, vertical: str) -> list[dict[str, Any]]:
    found = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("message") == "model version refused" and entry.get("vertical") == vertical:
            found.append(entry)
    return found


def hup_and_wait(server: ServiceProcess) -> None:
    """SIGHUP the master; wait until every worker has acknowledged the new generation."""
    target = current_generation(server) + 1
    server.hup()
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        workers = server.live_workers()
        if len(workers) == server.workers and all(w.generation >= target for w in workers):
            return
        time.sleep(0.01)
    raise AssertionError(f"workers did not reach generation {target}: {server.log()}")


def reload_api(bench: Bench, versions: dict[str, str] | None = None):
    body = {"versions": versions} if versions is not None else None
    return fresh(bench.server, "POST", "/api/v1/models/reload", token=bench.admin, body=body)


def set_current(root: Path, content: bytes) -> None:
    """Rewrite CURRENT behind the service's back, as an intruder (or a slip) would."""
    path = root / "auto" / "CURRENT"
    if path.is_symlink():
        path.unlink()
    atomic_write(path, content)


def assert_recovers(bench: Bench, via_hup: bool) -> None:
    set_current(bench.root, f"{OLD}\n".encode())
    if via_hup:
        hup_and_wait(bench.server)
    else:
        reply = reload_api(bench)
        assert reply.status == 200, reply
    for reply in ready_replies(bench.server):
        assert (reply.status, reply.json["status"], reply.json["problems"]) == (200, "ready", {})
    assert metric(bench.server, "ml_model_active_unserved", vertical="auto") == 0
    assert model_state(bench, "auto").get("problem") is None


def assert_refusal_visible(bench: Bench, reason: str, active: str | None, *words: str) -> None:
    """/ready (every worker), GET /api/v1/models and the gauge all say why."""
    for reply in ready_replies(bench.server):
        assert reply.status == 200 and reply.json["status"] == "degraded", reply
        assert reply.json["versions"]["auto"] == OLD
        assert reply.json["reasons"] == {"auto": reason}
        problem = reply.json["problems"]["auto"]
        assert all(word in problem for word in words), problem
        assert str(bench.root) not in problem  # public endpoint: no absolute paths
    state = model_state(bench, "auto")
    assert (state["loaded_version"], state["active_version"]) == (OLD, active)
    assert all(word in state["problem"] for word in words), state
    assert metric(bench.server, "ml_model_active_unserved", vertical="auto") == 1


# -- the attacks ---------------------------------------------------------------------

_versions = (f"2.0.{n}" for n in itertools.count())


def candidate(bench: Bench) -> tuple[str, Path]:
    """Publish a good, trusted-signed copy of auto 1.1.0 under a new version number."""
    version = next(_versions)
    source = bench.root / "auto" / "v1.1.0"
    manifest = decode_manifest((source / "manifest.json").read_bytes())
    files = {name: (source / name).read_bytes() for name in manifest.files}
    path = publish(
        bench.root,
        "auto",
        version,
        files,
        lambda hashes: msgspec.structs.replace(manifest, version=version, files=hashes),
        bench.key,
    )
    return version, path


def _trojan(bench: Bench, path: Path, key: SigningKey, claim_trusted_id: bool) -> None:
    """Swap in another model, fix the manifest's hash, and re-sign with ``key``."""
    trojan = (bench.root / "auto" / "v1.0.0" / "model.txt").read_bytes()
    put_back(path / "model.txt", trojan)
    manifest = decode_manifest((path / "manifest.json").read_bytes())
    files = {**manifest.files, "model.txt": hashlib.sha256(trojan).hexdigest()}
    data = encode_manifest(msgspec.structs.replace(manifest, files=files))
    put_back(path / "manifest.json", data)
    signature = key.sign(data)
    if claim_trusted_id:
        doc = json.loads(signature)
        doc["key_id"] = bench.key.key_id
        signature = json.dumps(doc).encode()
    put_back(path / "manifest.sig", signature)


def _replay(bench: Bench, path: Path) -> None:
    """A genuine, trusted manifest and signature, but of another version."""
    for name in ("manifest.json", "manifest.sig"):
        put_back(path / name, (bench.root / "auto" / "v1.1.0" / name).read_bytes())


def _other_vertical(bench: Bench, path: Path) -> None:
    """A genuine, trusted version of another vertical, copied in whole."""
    for entry in path.iterdir():
        entry.chmod(0o644)
        entry.unlink()
    for entry in (bench.root / "home" / "v1.0.0").iterdir():
        shutil.copy(entry, path / entry.name)


def _symlinked_model(bench: Bench, path: Path) -> None:
    """model.txt replaced by a link to a file with the right bytes (hash would match)."""
    (path / "model.txt").chmod(0o644)
    (path / "model.txt").unlink()
    (path / "model.txt").symlink_to(bench.root / "auto" / "v1.1.0" / "model.txt")


Tamper = Callable[[Bench, Path], object]
ATTACKS: dict[str, tuple[Tamper, str, tuple[str, ...]]] = {
    # name: (tamper the candidate, expected reason, words the problem must contain)
    "model-byte": (
        lambda b, p: flip_byte(p / "model.txt", 1000),
        "hash",
        ("hash check failed", "model.txt"),
    ),
    "encoder-byte": (
        lambda b, p: flip_byte(next(p.glob("encoders.*.npy"))),
        "hash",
        ("hash check failed", "encoders."),
    ),
    "manifest-byte": (
        lambda b, p: flip_byte(p / "manifest.json", 200),
        "signature",
        ("signature check failed", "does not match manifest.json"),
    ),
    "untrusted-signer": (
        lambda b, p: _trojan(b, p, b.attacker, claim_trusted_id=False),
        "unknown_key",
        ("unknown_key check failed", "not trusted"),
    ),
    "forged-key-id": (
        lambda b, p: _trojan(b, p, b.attacker, claim_trusted_id=True),
        "signature",
        ("signature check failed",),
    ),
    "signature-of-another-version": (
        lambda b, p: put_back(
            p / "manifest.sig", (b.root / "auto" / "v1.1.0" / "manifest.sig").read_bytes()
        ),
        "signature",
        ("signature check failed",),
    ),
    "replayed-manifest": (_replay, "mismatch", ("mismatch check failed", "version '1.1.0'")),
    "other-vertical": (_other_vertical, "mismatch", ("mismatch check failed", "'home'")),
    "extra-file": (
        lambda b, p: (p / "encoders.planted.npy").write_bytes(b"\x93NUMPY"),
        "mismatch",
        ("mismatch check failed", "encoders.planted.npy"),
    ),
    "signature-removed": (
        lambda b, p: (p / "manifest.sig").unlink(),
        "layout",
        ("layout check failed", "manifest.sig is missing"),
    ),
    "symlinked-model": (_symlinked_model, "layout", ("layout check failed", "symlink")),
}


# -- the tests -----------------------------------------------------------------------


def test_a_tampered_active_version_is_not_served_from_the_start(bench: Bench) -> None:
    server = bench.server
    for reply in ready_replies(server):
        assert reply.status == 503 and reply.json["status"] == "not_ready", reply
        assert reply.json["versions"]["life"] is None
        assert reply.json["reasons"] == {"life": "hash"}
        problem = reply.json["problems"]["life"]
        assert "hash check failed: encoders.smoker.values.npy" in problem
        assert problem.endswith("nothing is served")
    life = {"vertical": "life", "lead_data": {"age": 40}}
    refused = fresh(server, "POST", "/api/v1/score", token=bench.scorer, body=life)
    assert refused.status == 503 and refused.json["error"]["type"] == "model_unavailable"
    auto = {"vertical": "auto", "lead_data": LEAD}
    assert fresh(server, "POST", "/api/v1/score", token=bench.scorer, body=auto).status == 200
    state = model_state(bench, "life")
    assert (state["loaded_version"], state["active_version"]) == (None, "1.0.0")
    assert "encoders.smoker.values.npy" in state["problem"]
    # Each worker refused it at start, and says so in its log and its metrics.
    assert metric(server, "ml_model_rejections_total", vertical="life", reason="hash") == 2
    assert metric(server, "ml_model_active_unserved", vertical="life") == 1
    logged = refusal_logs(server, "life")
    assert len(logged) == 2 and {e["reason"] for e in logged} == {"hash"}
    assert {e["version"] for e in logged} == {"1.0.0"}

    # Put the byte back and reload: every worker serves life, without a restart.
    pids = {w.pid for w in server.live_workers()}
    put_back(*bench.started_with)
    assert reload_api(bench).status == 200
    for reply in ready_replies(server):
        assert (reply.status, reply.json["status"], reply.json["versions"]["life"]) == (
            200,
            "ready",
            "1.0.0",
        )
    assert fresh(server, "POST", "/api/v1/score", token=bench.scorer, body=life).status == 200
    assert metric(server, "ml_model_active_unserved", vertical="life") == 0
    assert {w.pid for w in server.live_workers()} == pids


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_tampered_version_is_refused_and_the_old_one_serves_on(
    bench: Bench, load: Load, attack: str
) -> None:
    tamper, reason, words = ATTACKS[attack]
    server = bench.server
    mark = load.mark()
    rejections = metric(server, "ml_model_rejections_total", vertical="auto", reason=reason)
    logged = len(refusal_logs(server, "auto"))
    refused_calls = metric(
        server, "ml_scoring_errors_total", error_type="reload_failed", vertical="auto"
    )
    version, path = candidate(bench)
    tamper(bench, path)

    # 1. Asked for by version: refused before CURRENT moves; nothing else changes.
    reply = reload_api(bench, {"auto": version})
    assert reply.status == 409 and reply.json["error"]["type"] == "reload_failed", reply
    assert (
        metric(server, "ml_scoring_errors_total", error_type="reload_failed", vertical="auto")
        == refused_calls + 1
    )
    assert reply.json["error"]["field"] == "versions.auto"
    message = reply.json["error"]["message"]
    assert message.startswith(f"auto: version {version} refused: ")
    assert all(word in message for word in words), message
    assert pointer.read_current(bench.root, "auto") == OLD
    assert all(r.json["status"] == "ready" for r in ready_replies(server))

    # 2. CURRENT moved behind the service's back, then SIGHUP: every worker refuses.
    set_current(bench.root, f"{version}\n".encode())
    hup_and_wait(server)
    assert_refusal_visible(bench, reason, version, f"CURRENT names {version}", *words)

    # 3. The reload API without a body re-reads CURRENT: refused, 409 naming why.
    reply = reload_api(bench)
    assert reply.status == 409, reply
    assert reply.json["error"]["message"].startswith(f"auto: CURRENT names {version}, refused")

    after = metric(server, "ml_model_rejections_total", vertical="auto", reason=reason)
    assert after == rejections + 1 + 2 + 1  # by version, by both workers on SIGHUP, by API
    entries = refusal_logs(server, "auto")[logged:]
    assert len(entries) == 4 and {(e["reason"], e["version"]) for e in entries} == {
        (reason, version)
    }
    assert_old_version_served(load.served_since(mark))

    # 4. Put right: the service recovers (alternately by SIGHUP and by API).
    assert_recovers(bench, via_hup=len(attack) % 2 == 0)
    assert_old_version_served(load.served_since(mark))


def _symlink_current(root: Path) -> None:
    """CURRENT as a link to another file (here a valid pointer: it must not matter)."""
    (root / "auto" / "CURRENT").unlink()
    (root / "auto" / "CURRENT").symlink_to(root / "home" / "CURRENT")


POINTERS: dict[str, tuple[Callable[[Path], object], str | None, tuple[str, ...]]] = {
    "missing-version": (
        lambda root: set_current(root, b"9.9.9\n"),
        "9.9.9",
        ("CURRENT names 9.9.9, which is not published",),
    ),
    "garbage": (
        lambda root: set_current(root, b"\x89PNG\r\n\x1a\n\x00\xff"),
        None,
        ("CURRENT is unusable", "not UTF-8"),
    ),
    "path-traversal": (
        lambda root: set_current(root, b"../../etc\n"),
        None,
        ("CURRENT is unusable", "'../../etc\\n', not a version X.Y.Z"),
    ),
    "symlink": (
        _symlink_current,
        None,
        ("CURRENT is unusable", "is a symlink"),
    ),
}


@pytest.mark.parametrize("attack", list(POINTERS))
def test_a_bad_pointer_is_refused_and_the_old_version_serves_on(
    bench: Bench, load: Load, attack: str
) -> None:
    move, active, words = POINTERS[attack]
    server = bench.server
    mark = load.mark()
    rejections = metric(server, "ml_model_rejections_total", vertical="auto", reason="pointer")
    move(bench.root)

    reply = reload_api(bench)
    assert reply.status == 409 and reply.json["error"]["field"] == "versions.auto", reply
    assert reply.json["error"]["message"].startswith("auto: CURRENT")
    assert all(word in reply.json["error"]["message"] for word in words), reply
    hup_and_wait(server)
    assert_refusal_visible(bench, "pointer", active, *words)
    after = metric(server, "ml_model_rejections_total", vertical="auto", reason="pointer")
    assert after == rejections + 1 + 2
    entries = refusal_logs(server, "auto")[-3:]
    assert {e["reason"] for e in entries} == {"pointer"}
    assert_old_version_served(load.served_since(mark))

    assert_recovers(bench, via_hup=attack == "garbage")
    assert_old_version_served(load.served_since(mark))


def test_the_served_version_tampered_in_place_is_refused_at_reload(
    bench: Bench, load: Load
) -> None:
    """The bytes in memory were verified at load; the ones on disk no longer verify."""
    server = bench.server
    mark = load.mark()
    model = bench.root / "auto" / OLD.join(("v", "")) / "model.txt"
    original = flip_byte(model, 5000)
    try:
        reply = reload_api(bench, {"auto": OLD})
        assert (
            reply.status == 409 and "hash check failed: model.txt" in reply.json["error"]["message"]
        )
        hup_and_wait(server)
        assert_refusal_visible(
            bench, "hash", OLD, "hash check failed: model.txt", "as verified when it was loaded"
        )
        assert reload_api(bench).status == 409
    finally:
        put_back(model, original)
    assert_recovers(bench, via_hup=False)
    assert_old_version_served(load.served_since(mark))


def test_a_refusal_by_one_worker_is_seen_by_every_worker(bench: Bench, load: Load) -> None:
    """A refused API reload runs in one worker; the others see it in their next audit."""
    server = bench.server
    mark = load.mark()
    version, path = candidate(bench)
    flip_byte(path / "model.txt", 3000)
    set_current(bench.root, f"{version}\n".encode())
    assert reload_api(bench).status == 409  # one worker looked; no generation was signalled
    # Whichever worker answers, GET /api/v1/models audits the store first.
    for _ in range(4):
        assert model_state(bench, "auto")["problem"].startswith(f"CURRENT names {version}")
    # /ready answers from memory: every worker's background audit catches up.
    deadline = time.monotonic() + WAIT_SECONDS
    streak = 0
    while streak < 8 and time.monotonic() < deadline:
        reply = fresh(server, "GET", "/ready")
        streak = streak + 1 if reply.json["reasons"].get("auto") == "hash" else 0
        time.sleep(0.05)
    assert streak == 8, "some worker never reported the refused version"
    assert_old_version_served(load.served_since(mark))
    assert_recovers(bench, via_hup=True)


def test_not_one_request_failed_during_the_whole_run(load: Load) -> None:
    window = load.served_since(0, at_least=1)
    assert_old_version_served(window)
    assert len(window) > 200
