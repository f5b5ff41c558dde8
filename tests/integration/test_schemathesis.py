"""schemathesis against the live service's own OpenAPI document (``GET /docs/api``).

The document is built at import (``api.openapi.build_openapi``, what the service serves:
``test_schema_is_the_served_document`` checks they are equal) because schemathesis's
lazy ``from_fixture`` loader does not work with pytest 9 (it sets ``Node._nodeid``).
Every operation of the document is exercised with a bounded number of generated
requests (``EXAMPLES``, Hypothesis derandomized so every run sends the same ones),
authorised with a scorer token on the scoring routes and an admin token elsewhere, and
each response is checked: no 5xx, a status the document lists for the operation, the
documented content type, and a body that matches the documented schema (error bodies
included). The service runs on its own copy of the model store holding one version per
vertical, so a generated reload or rollback may really run yet cannot change what is
served; ``test_models_unchanged`` proves it afterwards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import engine
from api.openapi import build_openapi
from tests.integration.service import ServiceProcess

SEEN: dict[str, set[int]] = {}  # statuses each operation answered
POINTERS: dict[str, bytes] = {}  # every vertical's CURRENT before the run


def record_status(ctx, response, case):
    """Not a check: remember which statuses each operation answered."""
    SEEN.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
    return None


CHECKS = [
    record_status,
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25


@pytest.fixture(scope="module")
def api_service(store, tmp_path_factory):
    root = tmp_path_factory.mktemp("schemathesis") / "models"
    shutil.copytree(store.root, root)
    shutil.rmtree(root / "auto" / "v1.1.0")  # the only non-active version of the store
    server = ServiceProcess(
        store.env(MODEL_PATH=str(root), MAX_BODY_BYTES="8192", MAX_BATCH="20"),
        root.parent,
        workers=1,
    )
    server.start()
    POINTERS.update({p.parent.name: p.read_bytes() for p in root.glob("*/CURRENT")})
    yield server
    server.stop()


DOCUMENT = build_openapi(engine.__version__)
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_schema_is_the_served_document(api_service):
    client = api_service.client()
    served = client.request("GET", "/docs/api")
    client.close()
    assert served.status == 200
    assert served.json == json.loads(json.dumps(DOCUMENT))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_document(case, store, api_service):
    token = store.scorer if case.path.startswith("/api/v1/score") else store.admin
    case.call_and_validate(
        base_url=f"http://127.0.0.1:{api_service.port}",
        headers={"Authorization": f"Bearer {token}"},
        checks=CHECKS,
        timeout=30,
    )


def test_success_and_errors_were_both_checked():
    for operation in ("POST /api/v1/score", "POST /api/v1/score/batch", "GET /api/v1/models"):
        assert 200 in SEEN[operation], SEEN
        assert any(400 <= status < 500 for status in SEEN[operation]), SEEN
    assert any(400 <= s < 500 for s in SEEN["POST /api/v1/models/reload"]), SEEN


def test_models_unchanged(api_service):
    client = api_service.client()
    ready = client.request("GET", "/ready")
    client.close()
    assert ready.status == 200 and ready.json["status"] == "ready", ready
    assert set(ready.json["versions"].values()) == {"1.0.0"}
    root = api_service.env["MODEL_PATH"]
    pointers = {p.parent.name: p.read_bytes() for p in Path(root).glob("*/CURRENT")}
    assert pointers == POINTERS
    assert "Traceback" not in api_service.log()
