"""The Prometheus rules in deploy/prometheus: checked by promtool, and held to their contract.

promtool (the real one, from the Debian ``prometheus`` package) validates the rules file
and the example config, and runs ``alerts.test.yml``, whose cases prove each alert fires
when it should and stays quiet when it should not. The pure-Python checks below keep the
rules and those cases honest as they change: every alert carries what an operator needs
(severity, summary, description, runbook), every alert has both a firing and a quiet
case, thresholds come from ``ml_alert_threshold`` only, and every metric the rules read
is one the service exports (the metric-name contract of issue 7).

Each contract check is a function returning its problems, so a test asserts none, and a
second test feeds it a broken input and asserts the problem is found: a check that
cannot fail proves nothing.
"""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.monitoring_config import parse_monitoring_config
from tests.deploy.rules import RULES_FILE, Rule, load_rules
from tests.system_tools import require_tool

PROMETHEUS_DIR = RULES_FILE.parent
RULE_TESTS_FILE = PROMETHEUS_DIR / "alerts.test.yml"
CONFIG_FILE = PROMETHEUS_DIR / "prometheus.yml"

SIGNALS_GROUP = "ml-service-signals"
ALERTS_GROUP = "ml-service-alerts"
SEVERITIES = {"page", "ticket"}
RUNBOOK_DOC = "docs/runbooks.md"

# Alerts that compare a signal to a MONITORING_CONFIG threshold, and which one.
THRESHOLD_ALERTS = {
    "MLServiceScoringLatencyHigh": "latency_p99_seconds",
    "MLServiceScoringServerErrorsHigh": "error_rate",
    "MLServiceScoringClientErrorsHigh": "error_rate",
    "MLServiceAcceptanceRateLow": "acceptance_rate",
    "MLServiceModelDrift": "drift_psi",
}

# The metric-name contract (issue 7, OBS_CONTEXT.md): every name the service exports,
# plus ml_model_drift, which the model-quality issue will add under this name.
CONTRACT_HISTOGRAMS = {
    "ml_scoring_latency_seconds",
    "ml_http_request_duration_seconds",
    "ml_lead_price",
    "ml_batch_size",
}
CONTRACT_METRICS = CONTRACT_HISTOGRAMS | {
    "ml_scoring_errors_total",
    "ml_leads_scored_total",
    "ml_model_performance",
    "ml_model_info",
    "ml_auth_failures_total",
    "ml_credential_reloads_total",
    "ml_model_reloads_total",
    "ml_reload_generation",
    "ml_model_rejections_total",
    "ml_model_active_unserved",
    "ml_reload_hook_failures_total",
    "ml_archive_records_total",
    "ml_slow_requests_total",
    "ml_leads_accepted_total",
    "ml_requests_in_flight",
    "ml_model_loaded",
    "ml_process_cpu_seconds_total",
    "ml_process_resident_memory_bytes",
    "ml_process_open_fds",
    "ml_process_start_time_seconds",
    "ml_worker_starts_total",
    "ml_workers_live",
    "ml_workers_configured",
    "ml_alert_threshold",
    "ml_cache_lookups_total",
    "ml_model_drift",
    "ml_redis_up",  # issue 9: the fleet tier (present with REDIS_URL)
}
# A histogram is read through its series: name_bucket, name_count, name_sum.
CONTRACT_SERIES = CONTRACT_METRICS | {
    f"{name}{suffix}" for name in CONTRACT_HISTOGRAMS for suffix in ("_bucket", "_count", "_sum")
}

METRIC_NAME = re.compile(r"\bml_[a-z_]+")
# A number standing alone in PromQL (not part of a name such as rate5m or a duration
# such as [5m]).
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
CAMEL_CASE = re.compile(r"^[A-Z][a-z]*(?:[A-Z][a-z]*)+$")
# level:metric:operations (https://prometheus.io/docs/practices/rules/).
RECORDING_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")


# --- promtool -------------------------------------------------------------------------


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool with ``args`` and return the finished process (output captured)."""
    promtool = require_tool("promtool")
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "rules", str(RULES_FILE)),
        ("test", "rules", str(RULE_TESTS_FILE)),
        ("check", "config", str(CONFIG_FILE)),
    ],
    ids=["check-rules", "test-rules", "check-config"],
)
def test_promtool_accepts(args: tuple[str, ...]) -> None:
    result = run_promtool(*args)
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def test_promtool_test_rules_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    # The unit tests are only worth something if promtool reports a mismatch: expect the
    # target-down alert quiet while its target has been down for minutes.
    document: dict[str, Any] = {"rule_files": [str(RULES_FILE)], "evaluation_interval": "1m"}
    document["tests"] = [
        {
            "name": "deliberately wrong",
            "interval": "1m",
            "input_series": [
                {"series": 'up{instance="ml-1:9090",job="ml-service"}', "values": "0+0x10"}
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "MLServiceTargetDown", "exp_alerts": []}
            ],
        }
    ]
    wrong = tmp_path / "wrong.test.yml"
    wrong.write_text(yaml.safe_dump(document), encoding="utf-8")
    result = run_promtool("test", "rules", str(wrong))
    assert result.returncode != 0, result.stdout + result.stderr
    assert "MLServiceTargetDown" in result.stdout + result.stderr


# --- contract checks (each returns its problems) ----------------------------------------


def alerts_of(rules: Iterable[Rule]) -> list[Rule]:
    """The alerting rules among ``rules``."""
    return [rule for rule in rules if rule.kind == "alert"]


def layout_problems(rules: list[Rule]) -> list[str]:
    """Groups, names and uniqueness: signals recorded in one group, alerts in the other."""
    problems = []
    names = [rule.name for rule in rules]
    problems += [
        f"{name}: defined twice" for name in sorted({n for n in names if names.count(n) > 1})
    ]
    for rule in rules:
        if rule.kind == "record":
            if rule.group != SIGNALS_GROUP:
                problems.append(f"{rule.name}: recording rule outside {SIGNALS_GROUP}")
            if not RECORDING_NAME.match(rule.name):
                problems.append(f"{rule.name}: not a level:metric:operations name")
        else:
            if rule.group != ALERTS_GROUP:
                problems.append(f"{rule.name}: alert outside {ALERTS_GROUP}")
            if not CAMEL_CASE.match(rule.name):
                problems.append(f"{rule.name}: alert name is not CamelCase")
    return problems


def operator_problems(rules: list[Rule]) -> list[str]:
    """Every alert has a severity, a summary, a description and its runbook anchor."""
    problems = []
    for alert in alerts_of(rules):
        severity = alert.labels.get("severity")
        if severity not in SEVERITIES:
            problems.append(f"{alert.name}: severity {severity!r} not in {sorted(SEVERITIES)}")
        for key in ("summary", "description", "runbook"):
            if not alert.annotations.get(key, "").strip():
                problems.append(f"{alert.name}: no {key} annotation")
        expected = f"{RUNBOOK_DOC}#{alert.name.lower()}"
        runbook = alert.annotations.get("runbook")
        if runbook is not None and runbook != expected:
            problems.append(f"{alert.name}: runbook {runbook!r}, expected {expected!r}")
    return problems


def case_problems(rules: list[Rule], rule_tests: dict[str, Any]) -> list[str]:
    """Every alert is tested firing and quiet; every recording rule is evaluated.

    ``exp_alerts`` lists the alerts expected FIRING at ``eval_time``: a non-empty list is
    a firing case, an empty (or omitted) one a quiet case.
    """
    firing: set[str] = set()
    quiet: set[str] = set()
    exprs: list[str] = []
    for case in rule_tests.get("tests") or []:
        for check in case.get("alert_rule_test") or []:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
        exprs += [str(check["expr"]) for check in case.get("promql_expr_test") or []]
    alert_names = {alert.name for alert in alerts_of(rules)}
    problems = [f"{name}: no case where it fires" for name in sorted(alert_names - firing)]
    problems += [f"{name}: no case where it stays quiet" for name in sorted(alert_names - quiet)]
    # promtool happily passes a quiet expectation for an alert that does not exist.
    problems += [
        f"{name}: tested but not defined in alerts.yml"
        for name in sorted((firing | quiet) - alert_names)
    ]
    for rule in rules:
        if rule.kind == "record" and not any(
            re.search(rf"(?<![\w:]){re.escape(rule.name)}(?![\w:])", expr) for expr in exprs
        ):
            problems.append(f"{rule.name}: no promql_expr_test evaluates it")
    return problems


def threshold_problems(rules: list[Rule], threshold_names: set[str]) -> list[str]:
    """Threshold alerts read ml_alert_threshold (max by environment); no number is copied.

    Args:
        rules: The rules to check.
        threshold_names: The ``name`` values the service exports ml_alert_threshold under.
    """
    problems = []
    reading = {alert.name for alert in alerts_of(rules) if "ml_alert_threshold" in alert.expr}
    problems += [
        f"{name}: reads ml_alert_threshold but is not a known threshold alert"
        for name in sorted(reading - THRESHOLD_ALERTS.keys())
    ]
    for alert in alerts_of(rules):
        if alert.name not in THRESHOLD_ALERTS:
            continue
        threshold = THRESHOLD_ALERTS[alert.name]
        if threshold not in threshold_names:
            problems.append(f"{alert.name}: the service exports no threshold {threshold!r}")
        # The join must stay one-to-one with several instances scraped.
        wanted = f'max by (environment) (ml_alert_threshold{{name="{threshold}"}})'
        if wanted not in " ".join(alert.expr.split()):
            problems.append(f"{alert.name}: does not compare to {wanted}")
        literals = NUMBER.findall(alert.expr)
        if literals:
            problems.append(f"{alert.name}: literal number(s) {literals} in a threshold alert")
    return problems


def copied_threshold_problems(rules: list[Rule], defaults: Iterable[float]) -> list[str]:
    """No expression anywhere carries a MONITORING_CONFIG default as a literal."""
    values = set(defaults)
    return [
        f"{rule.name}: literal {literal} is a MONITORING_CONFIG default; read ml_alert_threshold"
        for rule in rules
        for literal in NUMBER.findall(rule.expr)
        if float(literal) in values
    ]


def contract_problems(rules: list[Rule]) -> list[str]:
    """Every ml_* name in an expression or annotation is a contract metric (or its series)."""
    problems = []
    for rule in rules:
        text = " ".join([rule.expr, *rule.annotations.values()])
        unknown = sorted(set(METRIC_NAME.findall(text)) - CONTRACT_SERIES)
        if unknown:
            problems.append(f"{rule.name}: not in the metric contract: {unknown}")
    return problems


# --- the checks on the real files -------------------------------------------------------


@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    return load_rules()


@pytest.fixture(scope="module")
def rule_tests() -> dict[str, Any]:
    document = yaml.safe_load(RULE_TESTS_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def service_thresholds() -> dict[str, float]:
    # The service's own defaults (MONITORING_CONFIG unset): names and values.
    return parse_monitoring_config(None).alert_thresholds()


def test_rules_are_laid_out_and_named(rules: list[Rule]) -> None:
    assert {rule.kind for rule in rules} == {"alert", "record"}
    assert layout_problems(rules) == []


def test_every_alert_tells_the_operator_what_and_where(rules: list[Rule]) -> None:
    assert operator_problems(rules) == []


def test_every_alert_has_firing_and_quiet_cases(
    rules: list[Rule], rule_tests: dict[str, Any]
) -> None:
    assert rule_tests["rule_files"] == [RULES_FILE.name]
    assert case_problems(rules, rule_tests) == []


def test_thresholds_come_from_ml_alert_threshold_only(
    rules: list[Rule], service_thresholds: dict[str, float]
) -> None:
    assert set(THRESHOLD_ALERTS.values()) == set(service_thresholds)
    assert threshold_problems(rules, set(service_thresholds)) == []
    assert copied_threshold_problems(rules, service_thresholds.values()) == []


def test_rules_read_only_contract_metrics(rules: list[Rule]) -> None:
    assert contract_problems(rules) == []


# --- the checks can fail -------------------------------------------------------------


def _alert(rules: list[Rule], name: str) -> Rule:
    return next(rule for rule in rules if rule.name == name)


def _swap(rules: list[Rule], old: Rule, new: Rule) -> list[Rule]:
    return [new if rule == old else rule for rule in rules]


def test_checks_report_broken_rules(
    rules: list[Rule], service_thresholds: dict[str, float]
) -> None:
    latency = _alert(rules, "MLServiceScoringLatencyHigh")
    thresholds = set(service_thresholds)

    hardcoded = replace(latency, expr="ml:scoring_latency_p99_seconds:rate5m > 0.5")
    assert threshold_problems(_swap(rules, latency, hardcoded), thresholds)
    assert copied_threshold_problems(_swap(rules, latency, hardcoded), service_thresholds.values())

    many_to_many = replace(
        latency,
        expr=latency.expr.replace(
            'max by (environment) (ml_alert_threshold{name="latency_p99_seconds"})',
            'ml_alert_threshold{name="latency_p99_seconds"}',
        ),
    )
    assert many_to_many.expr != latency.expr
    assert threshold_problems(_swap(rules, latency, many_to_many), thresholds)

    no_runbook = replace(latency, annotations={**latency.annotations, "runbook": ""})
    assert operator_problems(_swap(rules, latency, no_runbook))
    wrong_anchor = replace(latency, annotations={**latency.annotations, "runbook": "docs/x.md"})
    assert operator_problems(_swap(rules, latency, wrong_anchor))
    no_severity = replace(latency, labels={})
    assert operator_problems(_swap(rules, latency, no_severity))

    typo = replace(latency, expr=latency.expr.replace("ml:", "ml_http_requests_seconds + ml:"))
    assert contract_problems(_swap(rules, latency, typo))

    snake = replace(latency, name="ml_service_latency_high")
    assert layout_problems(_swap(rules, latency, snake))


def test_checks_report_missing_cases(rules: list[Rule], rule_tests: dict[str, Any]) -> None:
    def without(alertname: str, *, firing: bool) -> dict[str, Any]:
        document = copy.deepcopy(rule_tests)
        for case in document["tests"]:
            case["alert_rule_test"] = [
                check
                for check in case.get("alert_rule_test") or []
                if not (check["alertname"] == alertname and bool(check.get("exp_alerts")) == firing)
            ]
        return document

    for name in ("MLServiceModelDrift", "MLServiceTargetDown"):
        assert f"{name}: no case where it fires" in case_problems(rules, without(name, firing=True))
        assert f"{name}: no case where it stays quiet" in case_problems(
            rules, without(name, firing=False)
        )

    typo = copy.deepcopy(rule_tests)
    typo["tests"][0]["alert_rule_test"].append(
        {"eval_time": "1m", "alertname": "MLServiceTargetDwon", "exp_alerts": []}
    )
    assert "MLServiceTargetDwon: tested but not defined in alerts.yml" in case_problems(rules, typo)

    no_expr_tests = copy.deepcopy(rule_tests)
    for case in no_expr_tests["tests"]:
        case.pop("promql_expr_test", None)
    assert "ml:model_drift_psi:max: no promql_expr_test evaluates it" in case_problems(
        rules, no_expr_tests
    )


# --- the shared loader ---------------------------------------------------------------


def test_load_rules_reads_every_field(rules: list[Rule]) -> None:
    latency = _alert(rules, "MLServiceScoringLatencyHigh")
    assert latency.group == ALERTS_GROUP
    assert latency.for_ == "5m"
    assert latency.labels == {"severity": "page"}
    assert "ml:scoring_latency_p99_seconds:rate5m" in latency.expr
    recorded = _alert(rules, "ml:model_drift_psi:max")
    assert (recorded.kind, recorded.group, recorded.for_, recorded.annotations) == (
        "record",
        SIGNALS_GROUP,
        None,
        {},
    )
    assert len(set(rules)) == len(rules)  # hashable despite its dict fields


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: []\n", "top-level 'groups'"),
        ("groups:\n  - rules: []\n", "has no name"),
        ("groups:\n  - name: g\n", "no 'rules' list"),
        ("groups:\n  - name: g\n    rules:\n      - expr: up\n", "exactly one of"),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        record: b\n",
            "exactly one of",
        ),
        ("groups:\n  - name: g\n    rules:\n      - alert: A\n", "no expr"),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n"
            "        expr: up\n        labels: [a]\n",
            "labels",
        ),
    ],
)
def test_load_rules_rejects_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_rules(path)
