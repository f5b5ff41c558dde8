"""Model-signing keys are trusted and dropped by a reload, with no worker restart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec

from engine.store import pointer
from engine.store.manifest import decode_manifest
from engine.store.publish import publish
from engine.store.signing import Keyring, SigningKey, generate_keypair
from tests.integration.service import ServiceProcess, metric_value
from tests.integration.test_token_rotation import hup_and_wait

LEAD = json.loads((Path(__file__).parents[2] / "examples" / "leads" / "auto.json").read_text())


def test_a_new_signing_key_is_trusted_and_an_old_one_dropped_on_reload(store, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(store.root, root, ignore=shutil.ignore_patterns(".lock", ".tmp-*"))
    trusted = tmp_path / "trusted"
    shutil.copytree(store.model_keys / "trusted", trusted)
    pointer.activate(root, "auto", "1.0.0", Keyring.load(trusted))
    # Version 3.0.0 of auto, signed by a key the service does not trust yet.
    generate_keypair(tmp_path / "new-key")
    new_key = SigningKey.load(tmp_path / "new-key" / "model-signing.key")
    source = root / "auto" / "v1.1.0"
    manifest = decode_manifest((source / "manifest.json").read_bytes())
    files = {name: (source / name).read_bytes() for name in manifest.files}
    publish(
        root,
        "auto",
        "3.0.0",
        files,
        lambda hashes: msgspec.structs.replace(manifest, version="3.0.0", files=hashes),
        new_key,
    )
    server = ServiceProcess(
        store.env(MODEL_PATH=str(root), MODEL_TRUSTED_KEYS=str(trusted)), tmp_path, workers=2
    )
    server.start()
    admin = server.client()
    try:
        reload = {"versions": {"auto": "3.0.0"}}
        refused = admin.request("POST", "/api/v1/models/reload", token=store.admin, body=reload)
        assert refused.status == 409 and "not trusted" in refused.json["error"]["message"]

        # Trust the new key: copy its public half in, then reload. No worker restarts.
        pids = {w.pid for w in server.live_workers()}
        shutil.copy(next((tmp_path / "new-key" / "trusted").glob("*.pub")), trusted)
        accepted = admin.request("POST", "/api/v1/models/reload", token=store.admin, body=reload)
        assert accepted.status == 200, accepted
        assert {w.pid for w in server.live_workers()} == pids
        for _ in range(4):  # new connections: either worker may answer
            client = server.client()
            body = {"vertical": "auto", "lead_data": LEAD}
            scored = client.request("POST", "/api/v1/score", token=store.scorer, body=body)
            client.close()
            assert scored.json["model_version"] == "3.0.0"

        # Drop the old key: what it signed (home, health, life) is refused at the next
        # reload and reported; the bytes verified earlier keep serving.
        old = next(p for p in trusted.glob("*.pub") if p.name != f"{new_key.key_id}.pub")
        old.unlink()
        hup_and_wait(server)
        ready = admin.request("GET", "/ready")
        assert ready.status == 200 and ready.json["status"] == "degraded", ready
        assert ready.json["reasons"] == {v: "unknown_key" for v in ("home", "health", "life")}
        text = server.metrics()
        assert metric_value(text, "ml_credential_reloads_total", credential="model_keys") >= 4
    finally:
        admin.close()
        server.stop()
