"""A real Prometheus scrapes the real service; everything is checked through its HTTP API.

One service (two workers, ``MONITORING_CONFIG`` with thresholds low enough that some
alerts must trigger) and one Prometheus (scraping the master's ``METRICS_PORT`` every
second, evaluating the rule files of ``deploy/prometheus/`` every second) for the whole
module. The traffic goes in two rounds: a warm-up round that creates every series, then,
once Prometheus has scraped it, the main round. Two rounds because ``rate()`` and
``increase()`` see nothing of a counter that is born with its final value: they need an
earlier sample of the series to measure from, exactly as in production.

Every expected number is counted client-side from what was sent and what the service
answered (``accepted`` fields, model versions), never read back from the service's own
``/metrics``: Prometheus, the real consumer, is the only reader here.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.leads import synthetic_leads
from tests.integration.prometheus_server import JOB_NAME, PrometheusError, PrometheusServer
from tests.integration.service import Client, ServiceProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = RULES_DIR / "prometheus.yml"  # the example config a deployment starts from
VERTICALS = ("auto", "home", "health", "life")
SCORE = "/api/v1/score"
BATCH = "/api/v1/score/batch"

# Thresholds low enough that this test's traffic must trigger the threshold alerts:
# 1 µs of p99 latency (every request is slower), an error rate of 0.01% (the bad requests
# below), and 99% acceptance (synthetic leads convert far less often).
MONITORING_CONFIG = {
    "alerts": True,
    "thresholds": {
        "latency_ms": 0.001,
        "error_rate": 0.0001,
        "acceptance_rate": 0.99,
        "drift_psi": 0.1,
    },
}

# Grafana's built-in interval variables, fixed to values that suit a 1 s scrape.
INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
# The vertical variable as Grafana renders "All" (a multi-value regex) and a custom
# "All" value: the dashboard must work with both.
VERTICAL_VALUES = ("|".join(VERTICALS), ".*")

WAIT = 30.0  # generous bound for anything that waits on a scrape or a rule evaluation


# --- traffic ---------------------------------------------------------------------------


@dataclass
class Tally:
    """What the test sent and what the service answered, counted client-side."""

    requests_ok: Counter[str] = field(default_factory=Counter)  # successful requests by vertical
    scored: Counter[str] = field(default_factory=Counter)  # leads scored by vertical
    accepted: Counter[str] = field(default_factory=Counter)  # leads with accepted=true
    errors: Counter[str] = field(default_factory=Counter)  # by error_type
    validation_by_vertical: Counter[str] = field(default_factory=Counter)
    routes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, status_class)
    versions: dict[str, str] = field(default_factory=dict)  # vertical -> model_version


def leads(vertical: str, count: int, seed: int) -> list[dict[str, Any]]:
    """Synthetic leads as a JSON client sends them (tests.integration.leads).

    Synthetic leads span the score range, so each vertical gets accepted and rejected
    leads alike (a fixed example lead would always give the same answer).
    """
    return [lead for lead, _ in synthetic_leads(vertical, count, seed)]


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class Traffic:
    """Sends scoring traffic and bad requests, tallying what it expects to be counted."""

    def __init__(self, clients: list[Client], token: str) -> None:
        self.clients = clients
        self.token = token
        self.tally = Tally()
        self.sent = 0
        self.seed = 100

    def _client(self) -> Client:
        # Round-robin over keep-alive connections, so both workers take traffic.
        self.sent += 1
        return self.clients[self.sent % len(self.clients)]

    def _post(self, route: str, expect: int, **kwargs: Any) -> Any:
        reply = self._client().request("POST", route, **kwargs)
        assert reply.status == expect, (route, kwargs.get("body"), reply)
        self.tally.routes[(route, status_class(reply.status))] += 1
        return reply.json

    def _scored(self, vertical: str, result: dict[str, Any]) -> None:
        assert result["vertical"] == vertical
        self.tally.scored[vertical] += 1
        self.tally.accepted[vertical] += bool(result["accepted"])
        self.tally.versions.setdefault(vertical, result["model_version"])
        assert self.tally.versions[vertical] == result["model_version"]

    def score_round(self, singles: int, batches: int, batch_size: int) -> None:
        """Score ``singles`` single leads and ``batches`` batches per vertical."""
        for vertical in VERTICALS:
            self.seed += 1
            pool = leads(vertical, singles + batches * batch_size, self.seed)
            for lead in pool[:singles]:
                body: dict[str, Any] = {"vertical": vertical, "lead_data": lead}
                self._scored(vertical, self._post(SCORE, 200, body=body, token=self.token))
                self.tally.requests_ok[vertical] += 1
            rest = pool[singles:]
            for b in range(batches):
                chunk = rest[b * batch_size : (b + 1) * batch_size]
                body = {"vertical": vertical, "leads": [{"lead_data": x} for x in chunk]}
                reply = self._post(BATCH, 200, body=body, token=self.token)
                assert reply["failed"] == 0, reply
                for item in reply["results"]:
                    self._scored(vertical, item["result"])
                self.tally.requests_ok[vertical] += 1

    def bad_round(self, each: int) -> None:
        """Send ``each`` of every kind of bad request."""
        broken = b'{"vertical": "auto", '
        json_headers = {"Content-Type": "application/json"}
        lead = leads("auto", 1, 7)[0]
        for i in range(each):
            self._post(SCORE, 400, raw=broken, headers=json_headers, token=self.token)
            self._post(BATCH, 400, raw=broken, headers=json_headers, token=self.token)
            self.tally.errors["invalid_json"] += 2
            # A required feature is missing: 422, counted under the request's vertical.
            vertical = VERTICALS[i % len(VERTICALS)]
            self._post(SCORE, 422, body={"vertical": vertical, "lead_data": {}}, token=self.token)
            self.tally.errors["validation_error"] += 1
            self.tally.validation_by_vertical[vertical] += 1
            # No token at all, on both scoring routes.
            self._post(SCORE, 401, body={"vertical": "auto", "lead_data": lead})
            self._post(BATCH, 401, body={"vertical": "auto", "leads": [{"lead_data": lead}]})
            self.tally.errors["unauthorized"] += 2
            reply = self._client().request("GET", "/no/such/route", token=self.token)
            assert reply.status == 404, reply
            self.tally.routes[("other", "4xx")] += 1
            self.tally.errors["not_found"] += 1


# --- Prometheus helpers ----------------------------------------------------------------


def by_label(samples: list[dict[str, Any]], label: str) -> dict[str, float]:
    """``{label value: sample value}`` of an instant query's samples."""
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in samples}


def eventually(
    prom: PrometheusServer, expr: str, check: Any, timeout: float = 15.0
) -> list[dict[str, Any]]:
    """Poll ``expr`` until ``check(samples)`` holds or ``timeout`` passes; return samples.

    The caller asserts on what comes back, so a miss fails with the actual samples (a
    metric not exported at all fails here too: it never skips).
    """
    last: list[dict[str, Any]] = []

    def ready() -> bool:
        nonlocal last
        last = prom.query(expr)
        return bool(check(last))

    with contextlib.suppress(TimeoutError):  # the caller's assert shows what arrived
        prom.wait_for(ready, timeout=timeout, what=expr)
    return last


def counted(prom: PrometheusServer, tally: Tally) -> bool:
    """Whether Prometheus's latest scrape shows everything in ``tally``."""
    env = 'environment="test"'
    scored = by_label(prom.query(f"sum by (vertical) (ml_leads_scored_total{{{env}}})"), "vertical")
    latency = by_label(
        prom.query(f"sum by (vertical) (ml_scoring_latency_seconds_count{{{env}}})"), "vertical"
    )
    errors = by_label(
        prom.query(f"sum by (error_type) (ml_scoring_errors_total{{{env}}})"), "error_type"
    )
    return (
        all(scored.get(v) == tally.scored[v] for v in VERTICALS)
        and all(latency.get(v) == tally.requests_ok[v] for v in VERTICALS)
        and all(errors.get(k) == n for k, n in tally.errors.items())
    )


def rule_files() -> list[Path]:
    """The rule files the example server config loads (``deploy/prometheus/prometheus.yml``).

    Its ``rule_files`` are globs relative to the config's directory, as Prometheus reads
    them; loading exactly those proves the example config names the right files.
    """
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    patterns = config.get("rule_files") or []
    return sorted(path for pattern in patterns for path in RULES_DIR.glob(pattern))


# --- fixtures --------------------------------------------------------------------------


@dataclass
class Setup:
    service: ServiceProcess
    prom: PrometheusServer
    tally: Tally


@pytest.fixture(scope="module")
def monitored_service(store, tmp_path_factory):
    server = ServiceProcess(
        store.env(MONITORING_CONFIG=json.dumps(MONITORING_CONFIG)),
        tmp_path_factory.mktemp("svc-prom"),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prom(monitored_service, tmp_path_factory):
    server = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"),
        targets=[f"127.0.0.1:{monitored_service.metrics_port}"],
        rule_files=rule_files(),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def setup(monitored_service, prom, store) -> Setup:
    clients = [monitored_service.client() for _ in range(4)]
    traffic = Traffic(clients, store.scorer)
    try:
        # Warm-up: every series exists, and Prometheus has a sample of it ...
        traffic.score_round(singles=2, batches=1, batch_size=3)
        traffic.bad_round(each=1)
        # One reload, as an operator does: the reload counters exist only from then on.
        reload = clients[0].request("POST", "/api/v1/models/reload", token=store.admin)
        assert reload.status == 200 and reload.json["status"] == "success", reload
        prom.wait_for(lambda: counted(prom, traffic.tally), WAIT, what="warm-up scraped")
        # ... so the main round shows as increase() and rate(), as in production.
        traffic.score_round(singles=10, batches=2, batch_size=5)
        traffic.bad_round(each=3)
        prom.wait_for(lambda: counted(prom, traffic.tally), WAIT, what="traffic scraped")
        # Recorded series and alerts follow the rules' own clock: one evaluation after
        # the traffic's sample arrived, and they reflect it too.
        prom.wait_for_evaluation(since=time.time(), timeout=WAIT)
        models = clients[0].request("GET", "/api/v1/models", token=store.viewer)
        assert models.status == 200, models
        loaded = {m["vertical"]: m["loaded_version"] for m in models.json["models"]}
        assert loaded == traffic.tally.versions  # the API and the score responses agree
    finally:
        for client in clients:
            client.close()
    return Setup(monitored_service, prom, traffic.tally)


@pytest.fixture(autouse=True)
def _logs_on_failure(request):
    """On a failed test, print the tails of the Prometheus and service logs."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed == failed_before:
        return
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    for name in ("prom", "monitored_service"):
        if name in request.fixturenames:
            server = request.getfixturevalue(name)
            reporter.write_sep("-", f"{name} log: {server.log_path}")
            reporter.write_line(server.log()[-3000:])


# --- the scrape ------------------------------------------------------------------------


def test_target_is_up_and_rules_loaded(setup: Setup):
    prom = setup.prom
    up = prom.query(f'up{{job="{JOB_NAME}"}} == 1')
    assert len(up) == 1, (up, prom.targets())
    [target] = prom.targets()
    assert target["health"] == "up" and target["lastError"] == "", target
    files = rule_files()
    assert files, f"{PROMETHEUS_CONFIG} names no rule file"

    def evaluated() -> list[dict[str, Any]]:
        rules = [r for g in prom.rules() for r in g["rules"]]
        return rules if rules and all(r["health"] != "unknown" for r in rules) else []

    rules = prom.wait_for(evaluated, WAIT, what="every rule evaluated once")
    # health "err" carries Prometheus's evaluation error (e.g. many-to-many matching).
    unhealthy = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not unhealthy, unhealthy
    loaded_files = {g["file"] for g in prom.rules()}
    assert loaded_files == {str(p.resolve()) for p in files}


def test_latency_histogram_per_vertical(setup: Setup):
    prom, tally = setup.prom, setup.tally
    buckets = prom.query(
        'count by (vertical) (ml_scoring_latency_seconds_bucket{environment="test"})'
    )
    # 15 configured buckets and +Inf, for every vertical.
    assert {v: by_label(buckets, "vertical").get(v) for v in VERTICALS} == dict.fromkeys(
        VERTICALS, 16.0
    )
    counts = by_label(
        prom.query('sum by (vertical) (ml_scoring_latency_seconds_count{environment="test"})'),
        "vertical",
    )
    assert {v: counts.get(v) for v in VERTICALS} == {
        v: float(tally.requests_ok[v]) for v in VERTICALS
    }
    # The whole run's p99 (cumulative buckets: no dependence on a rate window).
    p99 = by_label(
        prom.query(
            "histogram_quantile(0.99, sum by (vertical, le) "
            '(ml_scoring_latency_seconds_bucket{environment="test"}))'
        ),
        "vertical",
    )
    for vertical in VERTICALS:
        assert 0 < p99.get(vertical, math.nan) < 1, (vertical, p99)
    total = prom.value('sum(ml_scoring_latency_seconds_sum{environment="test"})')
    assert total is not None and 0 < total < sum(tally.requests_ok.values())  # < 1 s each


def test_request_duration_by_route_and_status_class(setup: Setup):
    prom, tally = setup.prom, setup.tally
    expr = (
        'sum by (route, status_class) (ml_http_request_duration_seconds_count{environment="test"})'
    )
    wanted = {key: float(n) for key, n in tally.routes.items()}

    def key(s: dict[str, Any]) -> tuple[str, str]:
        return (s["metric"].get("route", ""), s["metric"].get("status_class", ""))

    def seen(samples: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
        got = {key(s): float(s["value"][1]) for s in samples}
        return {k: got.get(k, math.nan) for k in wanted}

    samples = eventually(prom, expr, lambda s: seen(s) == wanted)
    assert seen(samples) == wanted, samples
    assert {
        (SCORE, "2xx"),
        (SCORE, "4xx"),
        (BATCH, "2xx"),
        (BATCH, "4xx"),
        ("other", "4xx"),
    } <= set(wanted)


def test_errors_by_type(setup: Setup):
    prom, tally = setup.prom, setup.tally
    errors = by_label(
        prom.query('sum by (error_type) (ml_scoring_errors_total{environment="test"})'),
        "error_type",
    )
    for kind in ("invalid_json", "validation_error", "unauthorized", "not_found"):
        assert errors.get(kind) == tally.errors[kind], (kind, errors)
    per_vertical = by_label(
        prom.query(
            'sum by (vertical) (ml_scoring_errors_total{environment="test",'
            'error_type="validation_error"})'
        ),
        "vertical",
    )
    assert {v: per_vertical.get(v, 0.0) for v in VERTICALS} == {
        v: float(tally.validation_by_vertical[v]) for v in VERTICALS
    }
    # Errors that reach no vertical (undecodable body, no token) are labelled unknown.
    unknown = prom.value(
        'sum(ml_scoring_errors_total{environment="test",vertical="unknown",'
        'error_type=~"invalid_json|unauthorized"})'
    )
    assert unknown == tally.errors["invalid_json"] + tally.errors["unauthorized"]


def test_acceptance_rate_matches_responses(setup: Setup):
    prom, tally = setup.prom, setup.tally
    expected = {v: tally.accepted[v] / tally.scored[v] for v in VERTICALS}
    expr = (
        'sum by (vertical) (ml_leads_accepted_total{environment="test"}) '
        '/ sum by (vertical) (ml_leads_scored_total{environment="test"})'
    )
    samples = eventually(prom, expr, lambda s: set(by_label(s, "vertical")) >= set(VERTICALS))
    rates = by_label(samples, "vertical")
    for vertical in VERTICALS:
        assert 0 <= rates.get(vertical, math.nan) <= 1, (vertical, samples)
        assert rates[vertical] == pytest.approx(expected[vertical]), (vertical, rates, expected)
    accepted = by_label(
        prom.query('sum by (vertical) (ml_leads_accepted_total{environment="test"})'), "vertical"
    )
    assert {v: accepted.get(v) for v in VERTICALS} == {
        v: float(tally.accepted[v]) for v in VERTICALS
    }


def test_model_info_names_the_served_versions(setup: Setup):
    prom, tally = setup.prom, setup.tally
    serving = prom.query('ml_model_info{environment="test"} == 1')
    served = {(s["metric"]["vertical"], s["metric"]["version"]) for s in serving}
    assert served == set(tally.versions.items()), serving


def test_reload_outcomes(setup: Setup):
    # The module's one reload: every worker reloads once, successfully.
    workers = float(setup.service.workers)
    expr = 'sum by (outcome) (ml_model_reloads_total{environment="test"})'
    samples = eventually(
        setup.prom, expr, lambda s: by_label(s, "outcome").get("success") == workers
    )
    outcomes = by_label(samples, "outcome")
    assert outcomes.get("success") == workers and outcomes.get("failure", 0.0) == 0, samples


def test_alert_threshold_comes_from_monitoring_config(setup: Setup):
    samples = eventually(
        setup.prom, 'ml_alert_threshold{environment="test"}', lambda s: len(s) >= 4
    )
    thresholds = by_label(samples, "name")
    assert thresholds.get("latency_p99_seconds") == pytest.approx(1e-6, rel=1e-9), samples
    assert thresholds.get("error_rate") == pytest.approx(0.0001), samples
    assert thresholds.get("acceptance_rate") == pytest.approx(0.99), samples
    assert thresholds.get("drift_psi") == pytest.approx(0.1), samples


# --- the dashboard and the rules, executed ---------------------------------------------


def has_drift(prom: PrometheusServer) -> bool:
    """Whether the service exports ``ml_model_drift`` (the model-quality issue adds it)."""
    return bool(prom.series("ml_model_drift"))


def check_expr(
    prom: PrometheusServer, where: str, expr: str, drift: bool, source: str | None = None
) -> str | None:
    """Run ``expr``; return a failure line, or None when it parsed and returned data.

    Expressions over ``ml_model_drift`` (in ``source``, the expression ``expr`` comes
    from, if given: a recorded series' name does not say) only have to parse until the
    service exports that gauge (a later issue); once any ``ml_model_drift`` series
    exists they must return data like every other, so this check tightens itself when
    drift lands.
    """
    try:
        result = prom.query(expr)
    except PrometheusError as exc:
        return f"{where}: {exc}"
    if not result and (drift or "ml_model_drift" not in (source or expr)):
        return f"{where}: no data\n    {expr}"
    return None


def test_every_dashboard_expression_returns_data(setup: Setup):
    from tests.deploy import dashboard

    prom = setup.prom
    queries = dashboard.panel_queries(dashboard.load_dashboard())
    assert queries, f"no panel queries in {dashboard.DASHBOARD_FILE}"
    drift = has_drift(prom)
    failures = []
    done: set[str] = set()
    for q in queries:
        for vertical in VERTICAL_VALUES:
            mapping = {"environment": "test", "vertical": vertical, **INTERVALS}
            where = f"panel {q.panel!r} {q.ref_id} (vertical={vertical})"
            try:
                expr = dashboard.substitute(q.expr, mapping)
            except ValueError as exc:
                failures.append(f"{where}: {exc}")
                continue
            if expr in done:  # the same query (no $vertical in it, or a repeated panel)
                continue
            done.add(expr)
            failure = check_expr(prom, where, expr, drift)
            if failure:
                failures.append(failure)
    assert not failures, "\n".join(failures)


LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<match>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$")


def test_dashboard_variables_resolve(setup: Setup):
    from tests.deploy import dashboard

    prom = setup.prom
    variables = dashboard.variable_queries(dashboard.load_dashboard())
    assert {"environment", "vertical"} <= set(variables), variables
    resolved = {}
    for name, query in variables.items():
        mapping = {"environment": "test", "vertical": VERTICAL_VALUES[0], **INTERVALS}
        parsed = LABEL_VALUES.match(dashboard.substitute(query, mapping))
        assert parsed, f"variable {name}: not a label_values() query: {query}"
        # What Grafana's Prometheus data source sends for label_values(metric, label).
        resolved[name] = prom.label_values(parsed["label"], parsed["match"])
    assert "test" in resolved["environment"], resolved
    assert set(VERTICALS) <= set(resolved["vertical"]), resolved


def test_every_rule_expression_parses_and_records_data(setup: Setup):
    from tests.deploy import rules as deploy_rules

    prom = setup.prom
    rules = deploy_rules.load_rules()
    assert rules, "no rules loaded from deploy/prometheus"
    loaded = {r["name"] for g in prom.rules() for r in g["rules"]}
    assert {r.name for r in rules} == loaded  # Prometheus loaded exactly the rules we read
    drift = has_drift(prom)
    failures = []
    for rule in rules:
        where = f"{rule.kind} {rule.name} (group {rule.group})"
        if rule.kind == "alert":
            # An alert's expression is empty while nothing is wrong: it must parse.
            try:
                prom.query(rule.expr)
            except PrometheusError as exc:
                failures.append(f"{where}: {exc}")
            continue
        failure = check_expr(prom, where, rule.expr, drift)
        # The series the rule records, as Prometheus's own evaluation wrote it.
        failure = failure or check_expr(
            prom, f"{where}, recorded series", rule.name, drift, source=rule.expr
        )
        if failure:
            failures.append(failure)
    assert not failures, "\n".join(failures)


# Alerts that must stay quiet: nothing in this module breaks the service, no response is
# a 5xx, and none of these reads the thresholds the module lowered.
QUIET = (
    "MLServiceScoringServerErrorsHigh",
    "MLServiceModelNotLoaded",
    "MLServiceModelReloadFailed",
    "MLServiceModelRejected",
    "MLServiceWorkerRestarting",
    "MLServiceWorkersBelowConfigured",
    "MLServiceTargetDown",
)


def provoked(tally: Tally) -> list[tuple[str, dict[str, str]]]:
    """The alerts this module's MONITORING_CONFIG must trigger, with labels each carries.

    Names come from deploy/prometheus/alerts.yml. Pending is enough: their ``for`` is
    minutes long, longer than the test.
    """
    env = {"environment": "test"}
    alerts = [
        # p99 of each scoring route's requests is above 1 µs.
        ("MLServiceScoringLatencyHigh", {**env, "route": SCORE, "severity": "page"}),
        ("MLServiceScoringLatencyHigh", {**env, "route": BATCH, "severity": "page"}),
        # The 4xx share of scoring requests is above 0.01 %.
        ("MLServiceScoringClientErrorsHigh", {**env, "severity": "ticket"}),
    ]
    # Acceptance under 99 %: every vertical whose responses accepted fewer leads.
    low = [v for v in VERTICALS if tally.accepted[v] < 0.99 * tally.scored[v]]
    assert low, f"every vertical accepted >= 99 % of its leads: {tally.accepted}"
    alerts += [
        ("MLServiceAcceptanceRateLow", {**env, "vertical": v, "severity": "ticket"}) for v in low
    ]
    return alerts


def test_provoked_alerts_are_active(setup: Setup):
    prom = setup.prom
    expected = provoked(setup.tally)

    def active() -> list[dict[str, str]]:
        return [a["labels"] for a in prom.alerts() if a["state"] in ("pending", "firing")]

    def matched(labels: dict[str, str], name: str, want: dict[str, str]) -> bool:
        return labels["alertname"] == name and want.items() <= labels.items()

    def missing() -> list[tuple[str, dict[str, str]]]:
        now = active()
        return [(n, w) for n, w in expected if not any(matched(a, n, w) for a in now)]

    with contextlib.suppress(TimeoutError):  # the assert below names what is missing
        prom.wait_for(lambda: not missing(), WAIT, what="provoked alerts active")
    assert not missing(), (missing(), active())
    quiet = [a for a in active() if a["alertname"] in QUIET]
    assert not quiet, quiet
