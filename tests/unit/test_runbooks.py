"""docs/runbooks.md is held to the code: alerts, metrics, commands, API paths and links.

- Every alert of ``deploy/prometheus/alerts.yml`` has a section in runbooks.md titled by
  its name (so its anchor is the lowercase name), and every alert's ``runbook`` (or
  ``runbook_url``) annotation points at a file and anchor that exist.
- Every ``ml_*`` name on the page is a series the service exports (names taken from the
  metric objects themselves, not from a list kept by hand), and every ``ml:*:*`` name is a
  recording rule of alerts.yml.
- Every ``ml-service ...`` command in code on the page is a real (sub)command of the
  CLI's parser with options it has; every API path is a route of ``api.access``.
- Every model refusal reason and auth failure reason named is one the code has.
- Every relative link resolves to a file, and to a heading of it when it has an anchor.

Each check returns its problems; one test asserts there are none on the real page, and
another feeds a broken input and asserts the problem is found.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase
from starlette.routing import compile_path

from api.access import ROUTE_ROLES
from api.auth import REASONS as AUTH_REASONS
from api.cli import build_parser
from engine.store.active import PENDING
from engine.store.active import REASONS as REFUSAL_REASONS
from tests.deploy.rules import Rule, load_rules

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks.md"

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# An inline code span may wrap onto the next line of its paragraph (never past a blank line).
INLINE_CODE = re.compile(r"`((?:[^`\n]|\n(?!\n))+)`")
# ml_* series names; ml_service.<logger> names are loggers, not metrics.
METRIC = re.compile(r"\bml_(?!service\.)[a-z0-9_]+")
RECORDED = re.compile(r"\bml:[a-z0-9_]+:[a-z0-9_]+")
# `ml-service` as a command, not inside a name (deploy/ml-service, job="ml-service",
# ml-service-staging); its arguments run to the end of the code, a comment or a pipe.
COMMAND = re.compile(r"(?<![\w/.\-\"'=])ml-service(?![\w.\-])((?:[ \t]+[^\s`|;&)#]+)*)")
API_PATH = re.compile(r"(/api/v1/[A-Za-z0-9_{}/.\-]*[A-Za-z0-9_}]|(?<![\w])/(?:ready|health)\b)")
LINK = re.compile(r"\]\(([^)\s#]*)(?:#([^)\s]+))?\)")
REFUSAL_ROW = re.compile(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)*) \|", re.MULTILINE)
AUTH_REASON = re.compile(r"reason `([a-z_]+)`")


# --- reading markdown -------------------------------------------------------------------


def without_fences(text: str) -> str:
    return FENCE.sub("", text)


def code_of(text: str) -> list[str]:
    """Fenced blocks (line continuations joined) and inline code spans, in page order."""
    blocks = [block.replace("\\\n", " ") for block in FENCE.findall(text)]
    spans = [span.replace("\n", " ") for span in INLINE_CODE.findall(without_fences(text))]
    return blocks + spans


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(text: str) -> list[str]:
    return [
        line.lstrip("#").strip()
        for line in without_fences(text).splitlines()
        if re.match(r"^#{1,6} ", line)
    ]


def anchors(text: str) -> set[str]:
    """Every heading's anchor (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in headings(text):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


# --- what the code has ------------------------------------------------------------------


def exported_series() -> set[str]:
    """Every series name the service exports, from the metric objects themselves."""
    from api import metrics
    from api.quality import snapshot_metrics
    from engine.monitoring.quality import QualitySnapshot

    families = [
        family
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
        for family in value.describe()
    ]
    families += snapshot_metrics(QualitySnapshot(0.0, "1h", [], []), "test")
    names: set[str] = set()
    for family in families:
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {family.name, *(f"{family.name}{s}" for s in ("_bucket", "_count", "_sum"))}
        else:
            names.add(family.name)
    return names


def alerts(rules: Iterable[Rule]) -> list[Rule]:
    return [rule for rule in rules if rule.kind == "alert"]


# --- the checks -------------------------------------------------------------------------


def section_problems(rules: list[Rule], text: str) -> list[str]:
    """Every alert has a section titled by its name."""
    titles = set(headings(text))
    return [
        f"{alert.name}: no section '### {alert.name}' in runbooks.md"
        for alert in alerts(rules)
        if alert.name not in titles
    ]


def annotation_problems(rules: list[Rule], root: Path) -> list[str]:
    """Every runbook annotation names an existing file and an anchor in it."""
    problems = []
    for alert in alerts(rules):
        for key in ("runbook", "runbook_url"):
            target = alert.annotations.get(key)
            if target is None:
                continue
            path, _, anchor = target.partition("#")
            if path.startswith(("http://", "https://")):
                # A URL to this repository's docs: check the file part in the checkout.
                path = path.split("/blob/", 1)[-1].split("/", 1)[-1]
            file = root / path
            if not file.is_file():
                problems.append(f"{alert.name}: {key} {target!r}: no file {path}")
            elif anchor and anchor not in anchors(file.read_text(encoding="utf-8")):
                problems.append(f"{alert.name}: {key} {target!r}: no heading #{anchor}")
    return problems


def metric_problems(text: str, exported: set[str], recorded: set[str]) -> list[str]:
    """Every ml_* name is an exported series; every ml:*:* name a recording rule."""
    unknown = sorted(set(METRIC.findall(text)) - exported)
    problems = [f"not a metric the service exports: {name}" for name in unknown]
    unrecorded = sorted(set(RECORDED.findall(text)) - recorded)
    problems += [f"not a recording rule of alerts.yml: {name}" for name in unrecorded]
    return problems


def commands(text: str) -> Iterator[list[str]]:
    for code in code_of(text):
        for match in COMMAND.finditer(code):
            yield match.group(1).split()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_problem(parser: argparse.ArgumentParser, tokens: list[str]) -> str | None:
    """Why ``ml-service <tokens>`` is not a command of ``parser`` (None: it is one)."""
    words = ["ml-service"]
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.startswith("-"):
            name = token.split("=", 1)[0]
            action = parser._option_string_actions.get(name)
            if action is None:
                return f"{' '.join(words)}: no option {name}"
            takes_value = action.nargs != 0 and "=" not in token
            index += 2 if takes_value else 1
            continue
        choices = _subcommands(parser)
        if not choices:
            return f"{' '.join(words)}: unexpected argument {token!r}"
        if token not in choices:
            return f"{' '.join(words)}: no command {token!r} (has {', '.join(choices)})"
        parser = choices[token]
        words.append(token)
        index += 1
    return None


def command_problems(text: str, parser: argparse.ArgumentParser) -> list[str]:
    found = (command_problem(parser, tokens) for tokens in commands(text))
    return sorted({problem for problem in found if problem is not None})


def path_problems(text: str, routes: Iterable[str]) -> list[str]:
    """Every API path is a route (a template as written, or a path a template matches)."""
    routes = set(routes)
    patterns = [compile_path(route)[0] for route in routes if "{" in route]
    problems = []
    for path in sorted(set(API_PATH.findall(text))):
        if path in routes or any(p.fullmatch(path) for p in patterns):
            continue
        problems.append(f"not a route of api.access: {path}")
    return problems


def reason_problems(text: str) -> list[str]:
    """Refusal reasons in the table rows, and auth reasons, are the code's."""
    known_refusals = {*REFUSAL_REASONS, PENDING}
    problems = []
    rows = {name for row in REFUSAL_ROW.findall(text) for name in re.findall(r"`(\w+)`", row)}
    missing = sorted(known_refusals - rows)
    if missing:
        problems.append(f"refusal reasons without a row: {missing}")
    unknown_auth = sorted(set(AUTH_REASON.findall(text)) - set(AUTH_REASONS))
    problems += [f"not an auth failure reason of api.auth: {name}" for name in unknown_auth]
    return problems


def link_problems(doc: Path, text: str) -> list[str]:
    """Every relative link resolves to a file, and its anchor to a heading."""
    problems = []
    for target, anchor in LINK.findall(without_fences(text)):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        if not target:  # an anchor of this page
            if anchor not in anchors(text):
                problems.append(f"link to a missing heading: #{anchor}")
            continue
        file = (doc.parent / target).resolve()
        if not file.exists():
            problems.append(f"link to a missing file: {target}")
        elif (
            anchor
            and file.suffix == ".md"
            and anchor not in anchors(file.read_text(encoding="utf-8"))
        ):
            problems.append(f"link to a missing heading: {target}#{anchor}")
    return problems


# --- on the real page -------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    return load_rules()


@pytest.fixture(scope="module")
def page() -> str:
    return RUNBOOKS.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def recorded(rules: list[Rule]) -> set[str]:
    return {rule.name for rule in rules if rule.kind == "record"}


def test_every_alert_has_a_section(rules: list[Rule], page: str) -> None:
    assert alerts(rules)
    assert section_problems(rules, page) == []


def test_runbook_annotations_point_at_existing_anchors(rules: list[Rule]) -> None:
    assert annotation_problems(rules, ROOT) == []


def test_every_metric_named_exists(page: str, recorded: set[str]) -> None:
    assert len(METRIC.findall(page)) > 20  # the page does name metrics
    assert metric_problems(page, exported_series(), recorded) == []


def test_every_command_exists(page: str) -> None:
    assert len(list(commands(page))) > 10
    assert command_problems(page, build_parser()) == []


def test_every_api_path_is_a_route(page: str) -> None:
    routes = {path for _, path in ROUTE_ROLES}
    assert path_problems(page, routes) == []


def test_every_reason_named_is_the_codes(page: str) -> None:
    assert reason_problems(page) == []


def test_every_link_resolves(page: str) -> None:
    assert link_problems(RUNBOOKS, page) == []


# --- the checks find what they look for -------------------------------------------------


def test_checks_report_a_broken_page(rules: list[Rule], recorded: set[str], tmp_path: Path) -> None:
    page = RUNBOOKS.read_text(encoding="utf-8")
    first = alerts(rules)[0].name
    assert section_problems(rules, page.replace(f"### {first}\n", "### Renamed\n")) == [
        f"{first}: no section '### {first}' in runbooks.md"
    ]
    assert metric_problems("`ml_made_up_total` and ml:made:up", exported_series(), recorded) == [
        "not a metric the service exports: ml_made_up_total",
        "not a recording rule of alerts.yml: ml:made:up",
    ]
    # A counter is exported with _total only; a histogram's family name is fine.
    assert metric_problems("`ml_model_reloads` `ml_lead_price`", exported_series(), set()) == [
        "not a metric the service exports: ml_model_reloads"
    ]
    assert metric_problems('logger "ml_service.redis"', exported_series(), set()) == []
    parser = build_parser()
    assert command_problems("`ml-service models promote --vertical auto`", parser) == [
        "ml-service models: no command 'promote' (has list, verify, activate, rollback, report)"
    ]
    assert command_problems("```sh\nml-service auth rotate --days 3\n```", parser) == [
        "ml-service auth rotate: no option --days"
    ]
    assert (
        command_problems("`ml-service score --at x --json '{}'` `deploy/ml-service`", parser) == []
    )
    assert path_problems("`/api/v1/models/auto/monitor` `/ready`", ["/ready"]) == [
        "not a route of api.access: /api/v1/models/auto/monitor"
    ]
    routes = {path for _, path in ROUTE_ROLES}
    assert path_problems("`/api/v1/models/auto/monitor` `/api/v1/modles`", routes) == [
        "not a route of api.access: /api/v1/modles"
    ]
    assert reason_problems("| `pointer` | x |\nreason `expird`") == [
        f"refusal reasons without a row: {sorted({*REFUSAL_REASONS, PENDING} - {'pointer'})}",
        "not an auth failure reason of api.auth: expird",
    ]
    doc = tmp_path / "doc.md"
    assert link_problems(doc, "# Top\n[a](#top) [b](#nowhere) [c](missing.md)") == [
        "link to a missing heading: #nowhere",
        "link to a missing file: missing.md",
    ]


def test_annotation_check_reports_a_dangling_runbook(rules: list[Rule], tmp_path: Path) -> None:
    alert = alerts(rules)[0]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "book.md").write_text(f"# Book\n\n## {alert.name}\n")
    good = [
        Rule(**{**vars(alert), "annotations": {"runbook": f"docs/book.md#{alert.name.lower()}"}})
    ]
    assert annotation_problems(good, tmp_path) == []
    url = f"https://github.com/o/r/blob/main/docs/book.md#{alert.name.lower()}"
    as_url = [replace(alert, annotations={"runbook_url": url})]
    assert annotation_problems(as_url, tmp_path) == []
    wrong = [replace(alert, annotations={"runbook": "docs/book.md#nope"})]
    assert annotation_problems(wrong, tmp_path) == [
        f"{alert.name}: runbook 'docs/book.md#nope': no heading #nope"
    ]
    missing = [replace(alert, annotations={"runbook": "docs/gone.md#x"})]
    assert annotation_problems(missing, tmp_path) == [
        f"{alert.name}: runbook 'docs/gone.md#x': no file docs/gone.md"
    ]


def test_slug_is_githubs() -> None:
    assert (
        slug("Workers restarting (OOM, crash, timeout)") == "workers-restarting-oom-crash-timeout"
    )
    assert slug("The prediction cache's tiers") == "the-prediction-caches-tiers"
    assert slug("API token keys (JWT)") == "api-token-keys-jwt"
    assert anchors("# A\n```\n# not a heading\n```\n## A\n") == {"a", "a-1"}
