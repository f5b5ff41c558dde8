"""The new operational metrics on a real service: every request timed, acceptance,
prices, batch sizes, resources per process, and what a dead worker leaves behind.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.service import ServiceProcess, metric_value
from tests.system_tools import require_tool

LEADS = Path(__file__).parents[2] / "examples" / "leads"
VERTICALS = ("auto", "home", "health", "life")


def lead(vertical: str) -> dict:
    loaded: dict = json.loads((LEADS / f"{vertical}.json").read_text())
    return loaded


def value(text: str, name: str, /, **labels: str) -> float:
    try:
        return metric_value(text, name, **labels)
    except KeyError:
        return 0.0


def scrape_until(service: ServiceProcess, check, timeout: float = 5.0) -> str:
    """Scrape until ``check(text)`` holds (buffered values land at the next tick)."""
    deadline = time.monotonic() + timeout
    while True:
        text = service.metrics()
        if check(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_every_request_is_timed_by_route_and_status_class(service, store):
    before = service.metrics()
    client = service.client()
    routes = [
        ("POST", "/api/v1/score", {"vertical": "home", "lead_data": lead("home")}, store.scorer),
        ("POST", "/api/v1/score", {"vertical": "home", "lead_data": {"age": -1}}, store.scorer),
        ("POST", "/api/v1/score", {"vertical": "home", "lead_data": lead("home")}, None),
        ("GET", "/api/v1/models", None, store.scorer),  # 403: scorer may not list
        ("GET", "/no/such/route", None, None),
        ("GET", "/health", None, None),
    ]
    expected = [200, 422, 401, 403, 404, 200]
    for (method, path, body, token), status in zip(routes, expected, strict=True):
        assert client.request(method, path, body=body, token=token).status == status
    client.close()
    wanted = {
        ("/api/v1/score", "2xx"): 1,
        ("/api/v1/score", "4xx"): 2,
        ("/api/v1/models", "4xx"): 1,
        ("other", "4xx"): 1,
        ("/health", "2xx"): 1,
    }

    def grown(text: str) -> bool:
        return all(
            value(text, "ml_http_request_duration_seconds_count", route=r, status_class=c)
            - value(before, "ml_http_request_duration_seconds_count", route=r, status_class=c)
            >= n
            for (r, c), n in wanted.items()
        )

    text = scrape_until(service, grown)
    assert grown(text), text
    # The invented path is labelled "other", never by its own text.
    assert "/no/such/route" not in text


def test_acceptance_prices_and_batch_sizes_match_the_responses(service, store):
    before = service.metrics()
    client = service.client()
    accepted = {v: 0 for v in VERTICALS}
    scored = {v: 0 for v in VERTICALS}
    for vertical in VERTICALS:
        for age in (25, 40, 60):
            body = {"vertical": vertical, "lead_data": {**lead(vertical), "age": age}}
            reply = client.request("POST", "/api/v1/score", body=body, token=store.scorer)
            assert reply.status == 200, reply
            scored[vertical] += 1
            accepted[vertical] += reply.json["accepted"]
    batch = {"vertical": "life", "leads": [{"lead_data": lead("life")} for _ in range(7)]}
    reply = client.request("POST", "/api/v1/score/batch", body=batch, token=store.scorer)
    assert reply.status == 200
    scored["life"] += 7
    accepted["life"] += sum(item["result"]["accepted"] for item in reply.json["results"])
    client.close()

    def delta(text: str, name: str, **labels: str) -> float:
        return value(text, name, environment="test", **labels) - value(
            before, name, environment="test", **labels
        )

    text = scrape_until(
        service, lambda t: delta(t, "ml_leads_scored_total", vertical="life") >= scored["life"]
    )
    for vertical in VERTICALS:
        assert delta(text, "ml_leads_scored_total", vertical=vertical) == scored[vertical]
        assert delta(text, "ml_leads_accepted_total", vertical=vertical) == accepted[vertical]
        # Every scored lead had a price quoted, and prices are positive.
        assert delta(text, "ml_lead_price_count", vertical=vertical) == scored[vertical]
        assert delta(text, "ml_lead_price_sum", vertical=vertical) > 0
    assert delta(text, "ml_batch_size_count", vertical="life") == 1
    assert delta(text, "ml_batch_size_sum", vertical="life") == 7
    assert delta(text, "ml_batch_size_bucket", vertical="life", le="5.0") == 0
    assert delta(text, "ml_batch_size_bucket", vertical="life", le="10.0") == 1


def test_liveness_models_resources_and_thresholds_are_reported(service):
    text = scrape_until(
        service, lambda t: value(t, "ml_process_cpu_seconds_total", process="worker-1") > 0
    )
    assert value(text, "ml_workers_live", environment="test") == 2
    assert value(text, "ml_workers_configured", environment="test") == 2
    for vertical in VERTICALS:
        assert value(text, "ml_model_loaded", vertical=vertical) == 1
        for result in ("hit", "miss"):  # present, at 0, before any cache exists
            series = f'environment="test",result="{result}",vertical="{vertical}"'
            assert f"ml_cache_lookups_total{{{series}}} 0.0" in text
    for process in ("master", "worker-0", "worker-1"):
        assert value(text, "ml_process_cpu_seconds_total", process=process) > 0
        assert value(text, "ml_process_resident_memory_bytes", process=process) > 10_000_000
        assert value(text, "ml_process_open_fds", process=process) >= 3
        started = value(text, "ml_process_start_time_seconds", process=process)
        assert time.time() - 3600 < started <= time.time()
    assert value(text, "ml_worker_starts_total", process="worker-0") >= 1
    # Rare events' series exist at 0 from the start, so increase() sees the first one.
    for line in (
        'ml_model_reloads_total{environment="test",outcome="failure"} 0.0',
        'ml_reload_hook_failures_total{environment="test"} 0.0',
        'ml_model_rejections_total{environment="test",reason="signature",vertical="life"} 0.0',
        'ml_http_request_duration_seconds_count{environment="test",route="/api/v1/score/batch",'
        'status_class="5xx"} 0.0',
    ):
        assert line in text, line
    # The seed's thresholds (MONITORING_CONFIG unset), exported for the alert rules.
    assert value(text, "ml_alert_threshold", name="latency_p99_seconds") == 0.5
    assert value(text, "ml_alert_threshold", name="error_rate") == 0.01
    assert value(text, "ml_alert_threshold", name="acceptance_rate") == 0.4
    assert value(text, "ml_alert_threshold", name="drift_psi") == 0.1


def test_promtool_accepts_a_real_scrape(service, store):
    promtool = require_tool("promtool")
    client = service.client()
    client.request(
        "POST",
        "/api/v1/score",
        body={"vertical": "auto", "lead_data": lead("auto")},
        token=store.scorer,
    )
    client.close()
    text = service.metrics()
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # promtool's linter prints problems (naming, units, ...) even when it exits 0.
    assert checked.stdout.strip() == "" and checked.stderr.strip() == "", (
        checked.stdout + checked.stderr
    )


def _counters(text: str) -> dict[str, float]:
    """Every counter and histogram-count sample of a scrape, by its line's series."""
    found = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, number = line.rpartition(" ")
        name = series.split("{", 1)[0]
        if name.endswith(("_total", "_count", "_bucket", "_sum")):
            found[series] = float(number)
    return found


def test_a_dead_worker_leaves_no_live_series_and_no_growing_files(store, tmp_path):
    # Slow-request threshold of 1 µs with alerts off: every request is slow, counted,
    # never logged; and no thresholds are exported.
    monitoring = '{"alerts": false, "thresholds": {"latency_ms": 0.001}}'
    server = ServiceProcess(store.env(MONITORING_CONFIG=monitoring), tmp_path, workers=2)
    server.start()
    stop = threading.Event()
    failures: list[str] = []

    def traffic() -> None:
        client = server.client()
        body = {"vertical": "auto", "lead_data": lead("auto")}
        while not stop.is_set():
            try:
                client.request("POST", "/api/v1/score", body=body, token=store.scorer)
            except OSError as exc:  # a killed worker drops its connections
                failures.append(repr(exc))
                client.close()
                client = server.client()
        client.close()

    sender = threading.Thread(target=traffic)
    sender.start()
    scrapes: list[dict[str, float]] = []
    try:
        metrics_dir = server.run_dir / "metrics"
        killed = []
        for _ in range(3):
            scrapes.append(_counters(server.metrics()))
            victim = {w.slot: w.pid for w in server.live_workers()}[1]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                now = {w.slot: w.pid for w in server.live_workers()}
                if now.get(1) not in (None, victim) and len(now) == 2:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"slot 1 not replaced:\n{server.log()}")
            scrapes.append(_counters(server.metrics()))
        time.sleep(0.3)  # a tick for the last replacement's first values
        text = scrape_until(server, lambda t: value(t, "ml_workers_live") == 2)
        scrapes.append(_counters(text))
    finally:
        stop.set()
        sender.join()
    try:
        # Counters never step back, across three worker deaths.
        for earlier, later in itertools.pairwise(scrapes):
            dropped = {
                s: (earlier[s], later.get(s)) for s in earlier if later.get(s, 0) < earlier[s]
            }
            assert not dropped, dropped
        # Live gauges: two workers, not five; slot 1 was started four times.
        assert value(text, "ml_workers_live") == 2
        assert value(text, "ml_worker_starts_total", process="worker-1") == 4
        assert value(text, "ml_worker_starts_total", process="worker-0") == 1
        assert value(text, "ml_model_loaded", vertical="auto") == 1
        # Nothing of a dead worker is left in the files, and their number is bounded:
        # the live processes' files plus the two retired ones.
        for pid in killed:
            assert not list(metrics_dir.glob(f"*_{pid}.db")), pid
        assert {p.name for p in metrics_dir.glob("*_retired.db")} == {
            "counter_retired.db",
            "histogram_retired.db",
        }
        pids = {str(server.pid), *(str(w.pid) for w in server.live_workers())}
        for path in metrics_dir.glob("*.db"):
            owner = path.stem.rsplit("_", 1)[1]
            assert owner in pids or owner == "retired", path.name
        # alerts=false: slow requests counted, no thresholds exported, no log lines.
        assert value(text, "ml_slow_requests_total", route="/api/v1/score") > 0
        assert "ml_alert_threshold{" not in text
        assert '"slow request"' not in server.log_path.read_text()
    finally:
        server.stop()


def test_a_bad_monitoring_config_stops_the_service_naming_the_variable(store, tmp_path):
    server = ServiceProcess(
        store.env(MONITORING_CONFIG='{"thresholds": {"latency_ms": "fast"}}'), tmp_path
    )
    with pytest.raises(RuntimeError, match="exited early") as caught:
        server.start(timeout=30)
    assert "MONITORING_CONFIG: thresholds.latency_ms must be a number" in str(caught.value)
