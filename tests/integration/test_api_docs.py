"""docs/api.md and the OpenAPI document against the live service, so neither can drift.

- Every route the worker really serves (its application built in-process as gunicorn
  builds it) is in docs/api.md's route table with its role from ``api.access``, and is an
  operation of the OpenAPI document; neither lists a route that does not exist.
- Every ```` ```bash ```` block of docs/api.md holds curl examples only, each ending with
  ``# -> STATUS`` (and the error type for an error). They run unchanged, in document
  order, with the real ``curl`` under ``bash -u`` (so only ``$ML_URL``, ``$SCORER_TOKEN``,
  ``$VIEWER_TOKEN`` and ``$ADMIN_TOKEN`` may appear), against a service of their own over
  a copy of the test store: what they change (reload, rollback, shadow, feedback) reaches
  no other test. Each answer must have the documented status and error type; its
  operation, status and content type must be in the OpenAPI document and its JSON body
  must match the documented schema; an error's status and type must be in the doc's error
  table; a ```` ```json ```` block right after an example shows that answer's shape (the
  same keys, recursively). Every operation has an example answered 2xx.
- ``/docs`` in headless Chromium renders every operation of the document, logs no console
  message (a CSP violation would be one), and is screenshotted (kept in the test's tmp
  directory). Its files are content-addressed and sent with immutable cache headers.

The service runs one worker: a shadow challenger set by one example is then loaded by
the worker that answers the next (with more workers, the others load it moments later).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]  # (no stubs; via schemathesis)
import pytest

import engine
from api.access import ACCESS, PUBLIC
from api.openapi import build_openapi
from api.routes import docs_page
from engine.store import pointer
from engine.store.signing import Keyring
from tests.browser import _run as run_chromium
from tests.browser import assert_not_blank, colour_share, parse_page
from tests.integration.conftest import Store
from tests.integration.service import ServiceProcess, metric_value
from tests.integration.test_access_control import InProcess, served
from tests.system_tools import require_tool

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
API_MD = ROOT / "docs" / "api.md"
DOCUMENT = build_openapi(engine.__version__)
MARKER = re.compile(r"\s+#\s*->\s*(?P<status>\d{3})(?:\s+(?P<type>[a-z_]+))?\s*$")
WRITE_OUT = "@@\t%{http_code}\t%{method}\t%{content_type}\t%{url_effective}"
TOKENS = ("SCORER_TOKEN", "VIEWER_TOKEN", "ADMIN_TOKEN")
SWAGGER_POST_GREEN = "#49cc90"  # Swagger UI's colour of a POST operation


# --- what docs/api.md says ---


@dataclass
class Example:
    """One curl example of docs/api.md."""

    line: int  # where it starts in docs/api.md (1-based)
    command: str  # as written, without the status comment
    status: int
    error_type: str | None
    shown: Any = None  # the JSON block right after it, if any


@dataclass
class Answer:
    """What running an example gave."""

    example: Example
    status: int
    method: str
    path: str
    content_type: str
    body: bytes
    problems: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def fenced_blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """Every fenced block of ``text``: (language, line of its first content line, lines)."""
    blocks: list[tuple[str, int, list[str]]] = []
    language: str | None = None
    start, indent = 0, 0
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith("```"):  # in a list item a fence is indented
            if language is None:
                language, start, body = stripped[3:].strip(), number + 1, []
                indent = len(line) - len(stripped)
            else:
                blocks.append((language, start, body))
                language = None
        elif language is not None:
            body.append(line[indent:] if line[:indent].isspace() else line.lstrip())
    assert language is None, "docs/api.md has an unclosed code block"
    return blocks


def is_complete(command: str) -> bool:
    """Whether ``command`` is a whole shell command (quotes closed, no continuation)."""
    if command.rstrip().endswith("\\"):
        return False
    checked = subprocess.run(
        ["bash", "-n", "-c", command], capture_output=True, text=True, check=False
    )
    return checked.returncode == 0


def split_examples(start: int, lines: list[str]) -> list[Example]:
    """The curl examples of one bash block (comment lines between them are allowed)."""
    examples: list[Example] = []
    pending: list[str] = []
    first = start
    for offset, line in enumerate(lines):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            first = start + offset
        pending.append(line)
        marker = MARKER.search(line)
        text = "\n".join(pending)
        if marker is None and not is_complete(text):
            continue
        assert marker is not None, (
            f"docs/api.md:{first}: a curl example must end with '# -> STATUS [error_type]'"
        )
        command = text[: len(text) - len(line)] + line[: marker.start()]
        assert is_complete(command), f"docs/api.md:{first}: not a complete command: {command}"
        # curl itself, or a producer piped into curl (the test appends curl options)
        runs_curl = re.match(r"(?:[^|]+\|\s*)*curl\s", command)
        assert runs_curl, f"docs/api.md:{first}: a bash block holds curl examples only"
        assert " -w" not in command and "--write-out" not in command, (
            f"docs/api.md:{first}: the test adds --write-out itself"
        )
        examples.append(Example(first, command, int(marker["status"]), marker["type"]))
        pending = []
    assert not pending, f"docs/api.md:{first}: unfinished command in a bash block"
    return examples


def parse_examples(text: str) -> list[Example]:
    """Every curl example of ``text``, with the JSON block that shows its answer."""
    examples: list[Example] = []
    previous = ""
    for language, start, lines in fenced_blocks(text):
        if language == "bash":
            examples.extend(split_examples(start, lines))
        elif language == "json" and previous == "bash" and examples:
            try:
                examples[-1].shown = json.loads("\n".join(lines))
            except ValueError as exc:
                raise AssertionError(f"docs/api.md:{start}: not JSON: {exc}") from None
        else:
            for offset, line in enumerate(lines):
                assert not line.lstrip().startswith("curl "), (
                    f"docs/api.md:{start + offset}: curl outside a bash block is never run"
                )
        previous = language
    return examples


def table(text: str, header: tuple[str, ...]) -> list[list[str]]:
    """The rows of the markdown table whose header cells start with ``header``."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and tuple(cells[: len(header)]) == header:
            rows = []
            for row in lines[index + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
            return rows
    raise AssertionError(f"docs/api.md has no table with columns {header}")


def documented_routes(text: str) -> dict[tuple[str, str], str]:
    """docs/api.md's route table: (method, path) -> role ("public" for none)."""
    routes = {}
    for method, path, role, *_ in table(text, ("method", "path", "role")):
        routes[(method.strip("`"), path.strip("`"))] = role.strip("`")
    return routes


def documented_errors(text: str) -> set[tuple[int, str]]:
    """docs/api.md's error table: every (status, type)."""
    errors: set[tuple[int, str]] = set()
    for status, types, *_ in table(text, ("status", "type", "when")):
        errors.update((int(status), kind) for kind in re.findall(r"`([a-z_]+)`", types))
    return errors


# --- what the OpenAPI document says ---


def operations() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def template_of(path: str) -> str | None:
    """The OpenAPI path template that ``path`` matches (a fixed path wins)."""
    if path in DOCUMENT["paths"]:
        return path
    templates: list[str] = list(DOCUMENT["paths"])
    for template in templates:
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), path):
            return template
    return None


def schema_problems(schema: dict[str, Any], body: Any) -> list[str]:
    """Where ``body`` breaks ``schema`` (its $refs resolved in the whole document)."""
    rooted = {**schema, "components": DOCUMENT["components"]}
    validator = jsonschema.Draft202012Validator(rooted)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


def shape_problems(shown: Any, real: Any, where: str = "$") -> list[str]:
    """Where the documented JSON's shape (object keys, recursively) differs from the real."""
    if isinstance(shown, dict):
        if not isinstance(real, dict):
            return [f"{where}: documented an object, got {type(real).__name__}"]
        problems = []
        if set(shown) != set(real):
            problems.append(f"{where}: documented keys {sorted(shown)}, real {sorted(real)}")
        for key in set(shown) & set(real):
            problems.extend(shape_problems(shown[key], real[key], f"{where}.{key}"))
        return problems
    if isinstance(shown, list):
        if not isinstance(real, list) or len(real) < len(shown):
            return [f"{where}: documented {len(shown)} items, got {real!r:.200}"]
        return [
            problem
            for index, item in enumerate(shown)
            for problem in shape_problems(item, real[index], f"{where}[{index}]")
        ]
    return []


# --- the service the examples run against ---


@pytest.fixture(scope="module")
def docs_service(
    store: Store, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One worker over a copy of the store, auto's active version reset to 1.0.0."""
    workdir = tmp_path_factory.mktemp("api-docs")
    models = workdir / "models"
    shutil.copytree(store.root, models)
    pointer.activate(models, "auto", "1.0.0", Keyring.load(store.model_keys / "trusted"))
    server = ServiceProcess(
        store.env(MODEL_PATH=str(models), MONITORING_DB=str(workdir / "monitoring.db")),
        workdir,
        workers=1,
    )
    server.start()
    yield server
    server.stop()


def leads_scored_with_ids(answer: Answer) -> int:
    """How many leads with a lead_id a successful scoring answer scored."""
    if answer.status != 200 or not answer.path.startswith("/api/v1/score"):
        return 0
    body = answer.json
    if answer.path == "/api/v1/score":
        return 1 if body.get("lead_id") else 0
    return sum(1 for item in body["results"] if "result" in item and item.get("lead_id"))


def wait_until_remembered(service: ServiceProcess, count: int) -> None:
    """Wait until the monitoring store holds ``count`` scored leads (a tick after scoring)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            stored = metric_value(
                service.metrics(), "ml_feedback_leads_total", outcome="remembered"
            )
        except KeyError:  # no lead remembered yet
            stored = 0
        if stored >= count:
            return
        assert time.monotonic() < deadline, f"{count} scored leads not remembered within 30 s"
        time.sleep(0.05)


def run(example: Example, env: dict[str, str]) -> Answer:
    """Run ``example`` as written, plus --write-out (what curl requested and got)."""
    command = f"{example.command} --max-time 60 --write-out '\\n{WRITE_OUT}\\n'"
    done = subprocess.run(
        ["bash", "-u", "-c", command], env=env, capture_output=True, timeout=120, check=False
    )
    where = f"docs/api.md:{example.line}"
    assert done.returncode == 0, f"{where}: exit {done.returncode}: {done.stderr.decode()!r}"
    output, _, tail = done.stdout.rpartition(b"\n@@\t")
    status, method, content_type, url = tail.decode().rstrip("\n").split("\t")
    if output.startswith(b"HTTP/"):  # -i or -I: headers first
        output = output.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in output else b""
    return Answer(example, int(status), method, urlsplit(url).path, content_type, output)


def check(answer: Answer, errors: set[tuple[int, str]]) -> list[str]:
    """Everything wrong with ``answer`` against docs/api.md and the OpenAPI document."""
    example = answer.example
    problems = []
    if answer.status != example.status:
        problems.append(f"answered {answer.status}, documented {example.status}")
    is_json = answer.content_type.split(";")[0].strip() == "application/json"
    body = answer.json if is_json and answer.body and answer.method != "HEAD" else None
    if example.status >= 400:
        if example.error_type is None:
            problems.append("an error example must name its error type: '# -> 404 not_found'")
        elif (example.status, example.error_type) not in errors:
            problems.append(f"{example.status} {example.error_type} is not in the error table")
        if body is not None and body["error"]["type"] != example.error_type:
            problems.append(f"error type {body['error']['type']}, documented {example.error_type}")
    template = template_of(answer.path)
    if answer.status == 405:
        if template is None or answer.method.lower() in DOCUMENT["paths"][template]:
            problems.append(f"405 for {answer.method} {answer.path}, which the document has")
    elif template is None:
        if (answer.status, example.error_type) != (404, "not_found"):
            problems.append(f"{answer.path} is in no OpenAPI path")
    else:
        operation = DOCUMENT["paths"][template].get(answer.method.lower().replace("head", "get"))
        response = (operation or {}).get("responses", {}).get(str(answer.status))
        if response is None:
            problems.append(f"{answer.method} {template} {answer.status} is not in the document")
        else:
            media = answer.content_type.split(";")[0].strip()
            content = response.get("content", {})
            if media not in content:
                problems.append(f"content type {media}, documented {sorted(content)}")
            elif body is not None:
                problems.extend(schema_problems(content[media]["schema"], body))
    if example.shown is not None:
        if body is None:
            problems.append("a JSON block follows it, but the answer is not JSON")
        else:
            problems.extend(shape_problems(example.shown, body))
    return problems


@pytest.fixture(scope="module")
def answers(docs_service: ServiceProcess, store: Store, tmp_path_factory) -> list[Answer]:
    """Every example of docs/api.md run in order against ``docs_service``."""
    curl = require_tool("curl")
    env = {
        "PATH": f"{Path(curl).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path_factory.mktemp("curl-home")),  # no ~/.curlrc of anyone's
        "LC_ALL": "C.UTF-8",
        "ML_URL": f"http://127.0.0.1:{docs_service.port}",
        "SCORER_TOKEN": store.scorer,
        "VIEWER_TOKEN": store.viewer,
        "ADMIN_TOKEN": store.admin,
    }
    text = API_MD.read_text()
    errors = documented_errors(text)
    results: list[Answer] = []
    scored = 0
    for example in parse_examples(text):
        if "/api/v1/feedback" in example.command:
            wait_until_remembered(docs_service, scored)  # outcomes need their leads stored
        answer = run(example, env)
        answer.problems = check(answer, errors)
        scored += leads_scored_with_ids(answer)
        results.append(answer)
    return results


# --- the tests ---


def test_every_served_route_is_in_the_route_table_and_the_document(store, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    app = InProcess(store.env(RUN_DIR=str(run_dir), ENVIRONMENT="test", METRICS_PORT="1"))
    try:
        real = {(method, path) for method, path in served(app) if method != "HEAD"}
    finally:
        app.close()
    documented = documented_routes(API_MD.read_text())
    assert set(documented) == real, "docs/api.md's route table is not what the worker serves"
    assert operations() == real, "the OpenAPI document is not what the worker serves"
    roles = {key: "public" if role is PUBLIC else role for key, role in ACCESS.table.items()}
    assert documented == roles, "docs/api.md's roles are not api.access's"
    for (method, path), role in roles.items():
        secured = "security" in DOCUMENT["paths"][path][method.lower()]
        assert secured == (role != "public"), (method, path)


def test_every_curl_example_answers_as_documented(answers):
    assert len(answers) >= 30
    wrong = [
        f"docs/api.md:{a.example.line}: {a.method} {a.path} -> {a.status}: "
        f"{'; '.join(a.problems)}\n  body: {a.body[:300]!r}"
        for a in answers
        if a.problems
    ]
    assert not wrong, "\n".join(wrong)


def test_every_operation_has_a_successful_example(answers):
    succeeded = {
        (a.method.replace("HEAD", "GET"), template_of(a.path))
        for a in answers
        if 200 <= a.status < 300
    }
    missing = operations() - succeeded
    assert not missing, f"no example of docs/api.md answered 2xx for {sorted(missing)}"


def test_the_examples_cover_the_client_errors(answers):
    shown = {(a.status, a.example.error_type) for a in answers if a.status >= 400}
    errors = documented_errors(API_MD.read_text())
    # Not shown by a curl example: a broken HTTP framing, a client that hangs up or sends
    # too slowly (they need a misbehaving client, tests/integration/test_hostile_input.py),
    # and the 503s of a service without a model or a monitoring store.
    unshowable = {
        (400, "client_disconnected"),
        (400, "invalid_http"),
        (408, "request_timeout"),
        (503, "model_unavailable"),
        (503, "feedback_unavailable"),
    }
    assert not (errors - unshowable) - shown, sorted((errors - unshowable) - shown)


def test_the_api_page_renders_every_operation_in_a_browser(docs_service, tmp_path):
    # A deep link: the page lists every operation and opens this one (its request example,
    # "Try it out", every response with its schema: most of what Swagger UI draws).
    url = f"http://127.0.0.1:{docs_service.port}/docs#/Scoring/scoreLead"
    png = tmp_path / "api-page.png"
    # Swagger UI fetches the document and renders after the load event: a virtual-time
    # budget lets Chromium run until the network and timers are idle, not for a guess.
    result = run_chromium(
        [
            "--window-size=1280,2400",
            "--virtual-time-budget=20000",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={png}",
            "--dump-dom",
            url,
        ],
        timeout=90,
    )
    assert result.returncode == 0 and png.is_file(), result.stderr[-2000:]
    dom = result.stdout
    rendered = {
        (method, html.unescape(path))
        for method, path in re.findall(
            r'opblock-summary-method">(\w+)</span>.*?data-path="([^"]+)"', dom
        )
    }
    assert rendered == operations(), sorted(rendered ^ operations())
    opened = re.search(
        r'<div class="opblock opblock-post is-open" id="operations-Scoring-scoreLead"', dom
    )
    assert opened, "the deep-linked operation is not open"
    assert "Try it out" in dom and "Austin, TX 78701" in dom  # the request body's example
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console  # a CSP violation, a failed fetch, a script error
    page = parse_page(dom)
    assert page.title == "ML Service API"
    assert not [ref for ref in page.external if "//" in ref], page.external  # nothing remote
    assert_not_blank(png)
    assert colour_share(png, SWAGGER_POST_GREEN) > 0.002  # the POST operations painted
    print(f"screenshot: {png}")


def test_the_page_and_its_files_are_served_with_their_headers(docs_service):
    client = docs_service.client()
    try:
        page = client.request("GET", "/docs")
        assert page.status == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-cache"
        linked = re.findall(r'(?:href|src)="(docs/assets/[^"]+)"', page.raw.decode())
        assert len(linked) == 4, linked
        vendor = {p.name: p.read_bytes() for p in docs_page.SWAGGER_UI.iterdir()}
        for relative in linked:
            name = relative.rsplit("/", 1)[1]
            stem, digest, suffix = name.rsplit(".", 2)
            for method in ("GET", "HEAD"):
                reply = client.request(method, f"/{relative}")
                assert reply.status == 200, (method, relative, reply)
                assert reply.headers["content-type"] == docs_page.MEDIA_TYPES[f".{suffix}"]
                assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
                assert reply.headers["x-content-type-options"] == "nosniff"
            body = client.request("GET", f"/{relative}").raw
            assert hashlib.sha256(body).hexdigest()[:12] == digest  # the name is the content's
            if stem != "init":
                assert body == vendor[f"{stem}.{suffix}"]  # the package's file, as shipped
        for missing in ("nothing.js", "swagger-ui-bundle.js", "..%2Fapp.py", "init.0.js"):
            reply = client.request("GET", f"/docs/assets/{missing}")
            assert reply.status == 404 and reply.json["error"]["type"] == "not_found", reply
        described = client.request("GET", "/docs/api")
        assert described.status == 200 and described.json == json.loads(json.dumps(DOCUMENT))
    finally:
        client.close()
