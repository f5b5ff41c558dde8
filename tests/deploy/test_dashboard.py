"""Structure of the Grafana dashboard (deploy/grafana/ml-service.json).

The dashboard is checked as data here: it imports into any Grafana (datasource
variable, no hard-coded datasource uid), its panels tile a 24-column grid, every query
filters on the templated environment (and vertical where the metric has one), names
only metrics of the service's contract, and parses as PromQL in the real ``promtool``.
The integration test runs the same expressions (via ``tests.deploy.dashboard``) against
a real Prometheus after traffic.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.dashboard import (
    DASHBOARD_FILE,
    PanelQuery,
    iter_panels,
    load_dashboard,
    panel_queries,
    substitute,
    variable_queries,
)
from tests.system_tools import require_tool

# The metric-name contract of issue 7 (api/metrics.py): name -> labels besides
# ``environment``, which every metric carries. ml_model_drift comes with the model-quality
# issue; the dashboard has its panel already.
CONTRACT: dict[str, frozenset[str]] = {
    "ml_scoring_latency_seconds": frozenset({"vertical"}),
    "ml_scoring_errors_total": frozenset({"error_type", "vertical"}),
    "ml_leads_scored_total": frozenset({"vertical"}),
    "ml_model_performance": frozenset({"vertical", "version", "role", "kind", "window", "metric"}),
    "ml_model_info": frozenset({"vertical", "version"}),
    "ml_auth_failures_total": frozenset({"reason"}),
    "ml_credential_reloads_total": frozenset({"credential", "outcome"}),
    "ml_model_reloads_total": frozenset({"outcome"}),
    "ml_reload_generation": frozenset(),
    "ml_model_rejections_total": frozenset({"vertical", "reason"}),
    "ml_model_active_unserved": frozenset({"vertical"}),
    "ml_reload_hook_failures_total": frozenset(),
    "ml_archive_records_total": frozenset({"outcome"}),
    "ml_http_request_duration_seconds": frozenset({"route", "status_class"}),
    "ml_slow_requests_total": frozenset({"route"}),
    "ml_leads_accepted_total": frozenset({"vertical"}),
    "ml_lead_price": frozenset({"vertical"}),
    "ml_batch_size": frozenset({"vertical"}),
    "ml_requests_in_flight": frozenset(),
    "ml_model_loaded": frozenset({"vertical"}),
    "ml_process_cpu_seconds_total": frozenset({"process"}),
    "ml_process_resident_memory_bytes": frozenset({"process"}),
    "ml_process_open_fds": frozenset({"process"}),
    "ml_process_start_time_seconds": frozenset({"process"}),
    "ml_worker_starts_total": frozenset({"process"}),
    "ml_workers_live": frozenset(),
    "ml_workers_configured": frozenset(),
    "ml_alert_threshold": frozenset({"name"}),
    "ml_cache_lookups_total": frozenset({"vertical", "result"}),
    "ml_model_drift": frozenset({"vertical", "version", "role", "feature"}),
}

# Each area the issue asks for, by the metric whose panel shows it.
REQUIRED_METRICS = {
    "ml_scoring_latency_seconds",  # latency percentiles and request rate per vertical
    "ml_http_request_duration_seconds",  # every request by route/status class, error ratio
    "ml_leads_scored_total",
    "ml_requests_in_flight",
    "ml_batch_size",
    "ml_scoring_errors_total",
    "ml_auth_failures_total",
    "ml_slow_requests_total",
    "ml_leads_accepted_total",
    "ml_alert_threshold",
    "ml_lead_price",
    "ml_model_performance",
    "ml_model_info",
    "ml_model_loaded",
    "ml_model_reloads_total",
    "ml_model_rejections_total",
    "ml_reload_generation",
    "ml_model_drift",
    "ml_cache_lookups_total",
    "ml_process_cpu_seconds_total",
    "ml_process_resident_memory_bytes",
    "ml_process_open_fds",
    "ml_worker_starts_total",
    "ml_workers_live",
    "ml_workers_configured",
}

REQUIRED_ROWS = {"Real-time scoring", "Errors", "Business", "Model", "Resources per worker"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# What Grafana would send for environment "test" with every demo vertical selected.
VARIABLES = {
    "datasource": "prometheus",
    "environment": "test",
    "vertical": "auto|home|health|life",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}
GRID_COLUMNS = 24

METRIC = re.compile(r"\bml_[a-z_]+")
# A metric reference and its label matchers, if any: ``ml_x{a="b", c=~"d"}``.
SELECTOR = re.compile(r"\b(ml_[a-z_]+)(\{[^}]*\})?")
RANGE = re.compile(r"\[([^\]]*)\]")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def contract_name(name: str) -> str:
    """Map a histogram's series name (``_bucket``, ``_sum``, ``_count``) to its metric."""
    base = HISTOGRAM_SUFFIX.sub("", name)
    return base if base in CONTRACT else name


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


@pytest.fixture(scope="module")
def queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    return panel_queries(dashboard)


def visible_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in iter_panels(dashboard) if panel.get("type") != "row"]


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = {key for key in keys if keys.count(key) > 1}
    assert not duplicates, f"duplicate JSON keys {duplicates}: Grafana keeps only the last"
    return dict(pairs)


# ----------------------------------------------------------------- the file itself


def test_dashboard_file_is_the_deploy_one():
    expected = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ml-service.json"
    assert expected == DASHBOARD_FILE
    assert DASHBOARD_FILE.is_file()


def test_json_is_valid_without_duplicate_keys():
    data = json.loads(
        DASHBOARD_FILE.read_text(encoding="utf-8"), object_pairs_hook=no_duplicate_keys
    )
    assert isinstance(data, dict)


def test_identity_refresh_and_time(dashboard):
    assert dashboard["uid"] == "ml-service"
    assert dashboard["title"] == "ML Service"
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["refresh"] == "10s"
    assert dashboard["time"] == {"from": "now-1h", "to": "now"}
    # Importable anywhere: no instance-specific id, no __inputs that provisioning cannot fill.
    assert dashboard.get("id") is None
    assert "__inputs" not in dashboard


# ----------------------------------------------------------------- templating


def test_datasource_variable(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"


def test_environment_and_vertical_variables(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    label_values = re.compile(r"^label_values\((ml_[a-z_]+)(\{[^}]*\})?,\s*(\w+)\)$")
    queries = variable_queries(dashboard)
    assert set(queries) == {"environment", "vertical"}
    for name in ("environment", "vertical"):
        match = label_values.match(queries[name])
        assert match, f"{name}: {queries[name]!r} is not label_values(metric, label)"
        metric, _, label = match.groups()
        assert metric in CONTRACT
        assert label == name
        if name == "vertical":
            assert "vertical" in CONTRACT[metric]
        assert variables[name]["datasource"] == DATASOURCE
    # Verticals are those of the chosen environment; several at once, All by default.
    assert 'environment="$environment"' in queries["vertical"]
    assert variables["vertical"]["multi"] is True
    assert variables["vertical"]["includeAll"] is True
    assert variables["environment"]["multi"] is False


# ----------------------------------------------------------------- panels and layout


def test_rows_organise_the_dashboard(dashboard):
    top = dashboard["panels"]
    rows = [panel["title"] for panel in top if panel["type"] == "row"]
    assert set(rows) >= REQUIRED_ROWS
    assert top[0]["type"] == "row", "the first panel sits under a row"
    for index, panel in enumerate(top):
        if panel["type"] == "row" and not panel.get("collapsed"):
            following = top[index + 1] if index + 1 < len(top) else None
            assert following is not None and following["type"] != "row", (
                f"row {panel['title']!r} is empty"
            )


def test_every_panel_has_datasource_and_a_query(dashboard):
    panels = visible_panels(dashboard)
    assert len(panels) >= 20
    for panel in panels:
        title = panel.get("title")
        assert title, f"panel {panel.get('id')} has no title"
        assert panel.get("datasource") == DATASOURCE, title
        targets = panel.get("targets") or []
        assert targets, f"{title}: no targets"
        for target in targets:
            assert target.get("datasource") == DATASOURCE, title
            assert str(target.get("expr", "")).strip(), f"{title} {target.get('refId')}: empty expr"
        ref_ids = [target.get("refId") for target in targets]
        assert len(set(ref_ids)) == len(ref_ids), f"{title}: duplicate refId {ref_ids}"


def test_panel_ids_are_unique(dashboard):
    ids = [panel.get("id") for panel in iter_panels(dashboard)]
    assert all(isinstance(i, int) for i in ids), ids
    assert len(set(ids)) == len(ids), ids


def rectangles_overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def check_grid(panels: list[dict[str, Any]]) -> None:
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["w"] >= 1 and pos["h"] >= 1, panel["title"]
        assert pos["x"] >= 0 and pos["y"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= GRID_COLUMNS, f"{panel['title']} is wider than the grid"
        if panel["type"] == "row":
            assert pos == {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": pos["y"]}, panel["title"]
    for i, a in enumerate(panels):
        for b in panels[i + 1 :]:
            assert not rectangles_overlap(a["gridPos"], b["gridPos"]), (
                f"{a['title']!r} overlaps {b['title']!r}"
            )


def test_grid_has_no_overflow_or_overlap(dashboard):
    # Top-level panels share one grid; a collapsed row's nested panels are laid out
    # only when it opens, against each other.
    check_grid(dashboard["panels"])
    for row in dashboard["panels"]:
        if row.get("panels"):
            check_grid(row["panels"])


def test_check_grid_catches_overlap_and_overflow():
    a: dict[str, Any] = {"title": "a", "type": "stat", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8}}
    b: dict[str, Any] = {"title": "b", "type": "stat", "gridPos": {"x": 11, "y": 7, "w": 6, "h": 8}}
    c: dict[str, Any] = {
        "title": "c",
        "type": "stat",
        "gridPos": {"x": 20, "y": 20, "w": 6, "h": 8},
    }
    with pytest.raises(AssertionError, match="overlaps"):
        check_grid([a, b])
    with pytest.raises(AssertionError, match="wider"):
        check_grid([c])
    b["gridPos"]["x"] = 12
    check_grid([a, b])  # touching edges do not overlap


def test_units(dashboard):
    for panel in visible_panels(dashboard):
        if panel["type"] in ("table", "heatmap"):
            continue
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit, f"{panel['title']}: no unit"
        exprs = " ".join(target["expr"] for target in panel["targets"])
        if re.search(r"histogram_quantile\([^,]+, sum by \([^)]*\) \(rate\(ml_\w+_seconds", exprs):
            assert unit == "s", panel["title"]
        if "ml_lead_price" in exprs:
            assert unit.startswith("currency"), panel["title"]
        if "ml_process_resident_memory_bytes" in exprs:
            assert unit == "bytes", panel["title"]


# ----------------------------------------------------------------- the queries


def test_exprs_substitute_and_filter_on_environment_and_vertical(queries):
    assert queries
    for query in queries:
        expr = substitute(query.expr, VARIABLES)
        where = f"{query.panel} {query.ref_id}: {expr}"
        assert "$" not in expr, where
        selectors = SELECTOR.findall(expr)
        assert selectors, f"{where}: no ml_ metric"
        for name, matchers in selectors:
            assert 'environment="test"' in matchers, f"{where}: {name} not filtered on environment"
            if "vertical" in CONTRACT.get(contract_name(name), frozenset()):
                assert re.search(r'vertical=~"auto\|home\|health\|life\b', matchers), (
                    f"{where}: {name} not filtered on the vertical variable"
                )


def test_ranges_use_grafana_intervals(queries):
    # A fixed range ([5m]) breaks with a scrape interval that does not fit it;
    # $__rate_interval adapts, $__range follows the time picker.
    for query in queries:
        for window in RANGE.findall(query.expr):
            assert window in ("$__rate_interval", "$__range"), f"{query.panel}: [{window}]"


def test_metric_names_are_in_the_contract(queries):
    used = {contract_name(name) for query in queries for name in METRIC.findall(query.expr)}
    unknown = used - set(CONTRACT)
    assert not unknown, f"metrics outside the contract: {sorted(unknown)}"


def test_every_required_area_has_a_panel(queries):
    used = {contract_name(name) for query in queries for name in METRIC.findall(query.expr)}
    missing = REQUIRED_METRICS - used
    assert not missing, f"no panel for {sorted(missing)}"


def test_targets_drawn_against_alert_thresholds(queries):
    by_panel: dict[str, str] = {}
    for query in queries:
        by_panel[query.panel] = by_panel.get(query.panel, "") + "\n" + query.expr
    acceptance = [
        exprs
        for exprs in by_panel.values()
        if "ml_leads_accepted_total" in exprs and "rate(ml_leads_accepted_total" in exprs
    ]
    assert any('name="acceptance_rate"' in exprs for exprs in acceptance), (
        "the acceptance-rate panel shows its target from ml_alert_threshold"
    )
    latency = [exprs for exprs in by_panel.values() if "ml_scoring_latency_seconds_bucket" in exprs]
    assert any('name="latency_p99_seconds"' in exprs for exprs in latency)


def test_cache_hit_rate_is_hits_over_lookups(queries):
    cache = [q.expr for q in queries if "ml_cache_lookups_total" in q.expr]
    assert cache
    assert any('result="hit"' in expr and "/" in expr for expr in cache)


def check_rules(promtool: str, rule_file: Path) -> subprocess.CompletedProcess[str]:
    """Run ``promtool check rules`` on ``rule_file``."""
    return subprocess.run(
        [promtool, "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_exprs_parse_in_promtool(queries, dashboard, tmp_path):
    """Every expression, variables expanded, parses as PromQL in the real promtool.

    promtool 2.42 has no command to check a bare expression, but ``check rules`` parses
    each rule's ``expr`` with Prometheus's own parser, so each query becomes a recording
    rule. The selectors inside the variables' ``label_values()`` are checked the same way.
    """
    promtool = require_tool("promtool")
    exprs = [(f"{q.panel} {q.ref_id}", substitute(q.expr, VARIABLES)) for q in queries]
    for name, query in variable_queries(dashboard).items():
        selector = re.match(r"^label_values\((.*),\s*\w+\)$", query)
        assert selector, query
        exprs.append((f"variable {name}", substitute(selector.group(1), VARIABLES)))
    rules = [
        {"record": f"dashboard:query_{index}", "expr": expr, "labels": {"source": where}}
        for index, (where, expr) in enumerate(exprs)
    ]
    rule_file = tmp_path / "dashboard-queries.yml"
    # JSON is YAML: no YAML library needed to write the rule file.
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = check_rules(promtool, rule_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout, result.stdout


def test_promtool_rejects_a_broken_expr(tmp_path):
    # The check above is only worth something if promtool does fail on bad PromQL.
    promtool = require_tool("promtool")
    rule_file = tmp_path / "broken.yml"
    broken = 'sum by (vertical) (rate(ml_leads_scored_total{environment="test"}[1m])'
    rule_file.write_text(
        json.dumps({"groups": [{"name": "g", "rules": [{"record": "r:x", "expr": broken}]}]})
    )
    result = check_rules(promtool, rule_file)
    assert result.returncode != 0


# ----------------------------------------------------------------- substitute()


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('x{vertical=~"$vertical"}', 'x{vertical=~"auto|home"}'),
        ('x{vertical=~"${vertical}"}', 'x{vertical=~"auto|home"}'),
        ('x{vertical=~"${vertical:regex}"}', 'x{vertical=~"auto|home"}'),
        ('x{vertical=~"${vertical:pipe}"}', 'x{vertical=~"auto|home"}'),
        ('x{vertical=~"${vertical:raw}"}', 'x{vertical=~"auto|home"}'),
        ('x{vertical=~"[[vertical]]"}', 'x{vertical=~"auto|home"}'),
        ("rate(x[$__rate_interval])", "rate(x[1m])"),
        ("rate(x[${__rate_interval}])", "rate(x[1m])"),
        ("rate(x[$__interval])", "rate(x[15s])"),
        ("increase(x[$__range])", "increase(x[1h])"),
        (
            'x{environment="$environment", vertical=~"$vertical|unknown"}[$__range]',
            'x{environment="prod", vertical=~"auto|home|unknown"}[1h]',
        ),
        # A $ that is not a variable (a regex anchor) is PromQL and stays.
        ('x{route=~"/api.*$"}', 'x{route=~"/api.*$"}'),
        ("no variables at all", "no variables at all"),
    ],
)
def test_substitute_forms(expr, expected):
    variables = {
        "environment": "prod",
        "vertical": "auto|home",
        "__rate_interval": "1m",
        "__interval": "15s",
        "__range": "1h",
    }
    assert substitute(expr, variables) == expected


@pytest.mark.parametrize(
    "expr",
    [
        'x{environment="$env"}',  # unknown variable
        'x{vertical=~"$verticals"}',  # not $vertical followed by "s": a different name
        'x{vertical=~"${vertical"}',  # unterminated
        'x{vertical=~"${vertical.text}"}',  # field access Grafana supports, we do not
        "rate(x[$__rate_interval])",  # built-in not given
        'x{a="$"} + x{b="${}"}',  # empty braces
        'x{a="[[nope]]"}',
    ],
)
def test_substitute_rejects_unresolved(expr):
    with pytest.raises(ValueError, match="unresolved"):
        substitute(expr, {"vertical": "auto"})


def test_substitute_rejects_formats_it_cannot_honour():
    with pytest.raises(ValueError, match="format 'csv'"):
        substitute("${vertical:csv}", {"vertical": "auto|home"})


def test_substitute_is_a_single_pass():
    # A value is inserted as is, never expanded again.
    assert substitute("$a", {"a": "$b", "b": "x"}) == "$b"


def test_substitute_reports_every_unresolved_name():
    with pytest.raises(ValueError) as raised:
        substitute('x{a="$one", b="${two}"}', {})
    assert "$one" in str(raised.value) and "${two}" in str(raised.value)


# ----------------------------------------------------------------- the readers


def test_panel_queries_walk_collapsed_rows():
    nested = {
        "panels": [
            {"type": "row", "id": 1, "title": "open", "panels": []},
            {"type": "stat", "id": 2, "title": "top", "targets": [{"refId": "A", "expr": "up"}]},
            {
                "type": "row",
                "id": 3,
                "title": "closed",
                "collapsed": True,
                "panels": [
                    {
                        "type": "timeseries",
                        "id": 4,
                        "title": "inner",
                        "targets": [
                            {"refId": "A", "expr": "a"},
                            {"refId": "B", "expr": "b"},
                            {"refId": "C", "datasource": {"type": "loki"}},
                        ],
                    }
                ],
            },
        ]
    }
    assert panel_queries(nested) == [
        PanelQuery("top", "A", "up"),
        PanelQuery("inner", "A", "a"),
        PanelQuery("inner", "B", "b"),
    ]
    assert [panel["id"] for panel in iter_panels(nested)] == [1, 2, 3, 4]


def test_variable_queries_read_both_query_shapes():
    templated = {
        "templating": {
            "list": [
                {"type": "datasource", "name": "datasource", "query": "prometheus"},
                {"type": "query", "name": "a", "query": "label_values(m, a)"},
                {"type": "query", "name": "b", "query": {"query": "label_values(m, b)"}},
                {"type": "custom", "name": "c", "query": "x,y"},
            ]
        }
    }
    assert variable_queries(templated) == {"a": "label_values(m, a)", "b": "label_values(m, b)"}


def test_load_dashboard_rejects_a_non_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[]")
    with pytest.raises(ValueError, match="JSON object"):
        load_dashboard(path)
    path.write_text("{not json")
    with pytest.raises(ValueError):
        load_dashboard(path)
