"""The model report and the monitor page, served by a live service, in a real browser.

Headless Chromium cannot send a bearer token, so it loads the pages through a small
forwarding proxy that adds the viewer's ``Authorization`` header (what a browser behind
an authenticating gateway sees). Each page is screenshotted and checked: its figures are
in the DOM Chromium built, they drew paths, and the image is not blank. The screenshots
are kept in the test's temporary directory.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import assert_not_blank, dump_dom, parse_page, require_chromium, screenshot
from tests.integration.conftest import service_over_copy
from tests.integration.leads import synthetic_leads
from tests.integration.service import ServiceProcess, metric_value

pytestmark = pytest.mark.slow
REPORT_FIGURES = {"roc", "pr", "calibration", "score-histogram", "importance"}
MONITOR_FIGURES = {"performance", "drift", "acceptance"}


@contextlib.contextmanager
def authorizing_proxy(port: int, token: str) -> Iterator[str]:
    """Forward GETs to the service on ``port`` with ``token``; yield the proxy's base URL."""

    class Forward(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            upstream.request("GET", self.path, headers={"Authorization": f"Bearer {token}"})
            answer = upstream.getresponse()
            body = answer.read()
            self.send_response(answer.status)
            for name in ("content-type", "content-security-policy"):
                value = answer.getheader(name)
                if value:
                    self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            upstream.close()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def pages_service(store, tmp_path_factory):
    """A service over a copy of the store (one test tampers with a report)."""
    server = service_over_copy(
        store,
        tmp_path_factory.mktemp("pages"),
        MONITORING_CONFIG=json.dumps({"quality_refresh_seconds": 1}),
    )
    yield server
    server.stop()


def production(service: ServiceProcess, scorer: str, vertical: str, count: int) -> None:
    """Score ``count`` leads with ids, report their outcomes, and keep scoring until the
    drift window holds enough sampled leads (drift.MIN_LEADS; the sampler takes at most
    SAMPLES_PER_SECOND per worker)."""
    labelled = synthetic_leads(vertical, count, 77)
    leads = [lead for lead, _ in labelled]
    client = service.client()
    for start in range(0, count, 50):
        chunk = [
            {"lead_data": lead, "lead_id": f"{vertical}-page-{start + k}"}
            for k, lead in enumerate(leads[start : start + 50])
        ]
        batch = {"vertical": vertical, "leads": chunk}
        assert client.request("POST", "/api/v1/score/batch", body=batch, token=scorer).status == 200
    deadline = time.monotonic() + 30
    index = 0
    while True:
        body = {"vertical": vertical, "lead_data": leads[index % count]}
        assert client.request("POST", "/api/v1/score", body=body, token=scorer).status == 200
        index += 1
        if index % 200 == 0:
            outcomes = [
                {"lead_id": f"{vertical}-page-{i}", "converted": converted}
                for i, (_, converted) in enumerate(labelled)
            ]
            reply = client.request(
                "POST", "/api/v1/feedback/batch", body={"outcomes": outcomes[:50]}, token=scorer
            )
            assert reply.status == 200
            try:
                metric_value(service.metrics(), "ml_model_drift", vertical=vertical)
                break
            except KeyError:
                assert time.monotonic() < deadline, "no drift figures after 30 s of traffic"
    client.close()


def check_page(url: str, figures: set[str], out: Path) -> None:
    """Load ``url`` in Chromium: figures in its DOM with drawn paths, a non-blank image."""
    require_chromium()
    page = parse_page(dump_dom(url))
    found = page.figures
    assert figures <= set(found), (sorted(found), page.text[:500])
    for name in figures:
        assert found[name].drawn_paths > 0, f"figure {name} drew nothing: {found[name].text}"
    assert not page.external, page.external  # nothing fetched from anywhere
    assert_not_blank(screenshot(url, out))


def test_monitor_page_renders_in_a_browser(pages_service, store, tmp_path):
    production(pages_service, store.scorer, "auto", 300)
    with authorizing_proxy(pages_service.port, store.viewer) as base:
        check_page(f"{base}/api/v1/models/auto/monitor", MONITOR_FIGURES, tmp_path / "monitor.png")


def test_model_report_renders_in_a_browser(pages_service, store, tmp_path):
    with authorizing_proxy(pages_service.port, store.viewer) as base:
        check_page(
            f"{base}/api/v1/models/home/1.0.0/report", REPORT_FIGURES, tmp_path / "report.png"
        )


def test_quality_pages_answer_mistakes_precisely(pages_service, store):
    client = pages_service.client()
    assert client.request("GET", "/api/v1/models/auto/monitor").status == 401
    assert client.request("GET", "/api/v1/models/auto/monitor", token=store.scorer).status == 403
    for path, kind in [
        ("/api/v1/models/nope/monitor", "unknown_vertical"),
        ("/api/v1/models/nope/1.0.0/report", "unknown_vertical"),
        ("/api/v1/models/auto/9.9.9/report", "not_found"),
        ("/api/v1/models/auto/latest/report", "not_found"),
    ]:
        reply = client.request("GET", path, token=store.viewer)
        assert reply.status == 404, (path, reply)
        assert reply.json["error"]["type"] == kind
    ok = client.request("GET", "/api/v1/models/life/1.0.0/report", token=store.viewer)
    assert ok.status == 200
    assert ok.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in ok.headers["content-security-policy"]
    client.close()


def test_a_tampered_report_is_refused(pages_service, store):
    report = pages_service.models / "health" / "v1.0.0" / "report.html"
    original = report.read_bytes()
    report.write_bytes(original.replace(b"</body>", b"<script>alert(1)</script></body>"))
    try:
        client = pages_service.client()
        reply = client.request("GET", "/api/v1/models/health/1.0.0/report", token=store.viewer)
        client.close()
        assert reply.status == 409, reply
        assert b"<script>" not in reply.raw
    finally:
        report.write_bytes(original)
