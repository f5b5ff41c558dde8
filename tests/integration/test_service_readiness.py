"""A worker without a model for some vertical is alive but not ready, and says why."""

from __future__ import annotations

import shutil

from tests.integration.service import ServiceProcess


def test_not_ready_until_every_vertical_has_a_model(store, tmp_path):
    partial = tmp_path / "models"
    shutil.copytree(store.root / "auto", partial / "auto")  # only auto is deployed
    server = ServiceProcess(store.env(MODEL_PATH=str(partial)), tmp_path, workers=1)
    server.start(wait_ready=False)
    client = server.client()
    try:
        assert client.request("GET", "/health").status == 200
        ready = client.request("GET", "/ready")
        assert ready.status == 503 and ready.json["status"] == "not_ready"
        assert set(ready.json["problems"]) == {"home", "health", "life"}
        assert "no active version" in ready.json["problems"]["home"]
        assert ready.json["versions"]["auto"] == "1.0.0"
        unavailable = client.request(
            "POST", "/api/v1/score", token=store.scorer, body={"vertical": "home", "lead_data": {}}
        )
        assert unavailable.status == 503
        assert unavailable.json["error"]["type"] == "model_unavailable"
        served = client.request(
            "POST",
            "/api/v1/score",
            token=store.scorer,
            body={"vertical": "auto", "lead_data": {"age": 30}},
        )
        assert served.status == 200
        # Deploy home and reload by API: the worker becomes ready without a restart.
        shutil.copytree(store.root / "home", partial / "home")
        reload = client.request("POST", "/api/v1/models/reload", token=store.admin)
        assert reload.status == 409  # health and life are still missing: nothing changes
        assert client.request("GET", "/ready").json["versions"]["home"] is None
        for vertical in ("health", "life"):
            shutil.copytree(store.root / vertical, partial / vertical)
        assert client.request("POST", "/api/v1/models/reload", token=store.admin).status == 200
        assert client.request("GET", "/ready").status == 200
    finally:
        client.close()
        server.stop()
