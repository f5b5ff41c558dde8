"""In-process harness over the scoring request path: the fuzzer's target and its tests.

``Harness`` builds a real worker service in this process (``api.app.build_service``):
two small LightGBM models trained at setup from synthetic data (``models.yaml`` next to
this file: the demo's ``auto`` vertical, and ``open``, whose numerical features have no
bounds so extreme numbers reach the encoder and the predictor), real model-signing and
token keys, and the real scoring handlers (``api.routes.scoring.handlers``), driven as
raw ASGI apps. That is the whole request path of a worker after the HTTP parser: body
reading and its limits, the decoders and their extra checks (``api.decoding``), the
error mapping (``Service.reject`` / ``to_api_error``, ``error_body``), validation,
encoding, prediction, pricing and the response encoding.

``check(route, body)`` posts ``body`` twice, once as one message with a
``Content-Length`` (a body the server already holds) and once in small chunks without
one (as a chunked upload arrives), and asserts the invariant:

- a 2xx answer's body decodes as the route's documented response type;
- every other answer is a 4xx whose body decodes as ``ErrorResponse``, at most
  ``MAX_ERROR_BYTES`` long, and it was counted in ``ml_scoring_errors_total``;
- both deliveries get the same status.

Anything else (a 5xx, an exception out of a handler, a malformed ASGI exchange) raises
``InvariantBroken``: a crash for the fuzzer, a failure for a test.

Corpus layout: ``corpus/<route>/<name>``, one raw request body per file, ``<route>``
being ``score`` or ``batch``. Hand-written seeds are named ``<what>.<status>.json`` and
the replay test also checks that status; files the fuzzer adds are named by libFuzzer
(a SHA-1) and are held to the invariant only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from api import metrics, worker_metrics
from api.access import ACCESS
from api.app import build_service
from api.auth import issue_token
from api.routes import scoring
from api.schemas import BatchResponse, ErrorResponse, ScoreResponse
from api.settings import load_settings
from engine.store.signing import SigningKey

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "models.yaml"
CORPUS = HERE / "corpus"
ROUTES = {"score": "/api/v1/score", "batch": "/api/v1/score/batch"}
MAX_BODY_BYTES = 8192
MAX_BATCH = 20
# An error body quotes at most a few bounded client strings (api.errors.echo).
MAX_ERROR_BYTES = 2048
# An odd chunk size splits multi-byte characters, escapes and numbers across messages.
CHUNK = 97
_EXPECTED = re.compile(r"\.(?P<status>[1-5]\d\d)\.json$")
_RESPONSES: dict[str, msgspec.json.Decoder[Any]] = {
    "score": msgspec.json.Decoder(ScoreResponse),
    "batch": msgspec.json.Decoder(BatchResponse),
}
_ERROR = msgspec.json.Decoder(ErrorResponse)


class InvariantBroken(AssertionError):
    """An input ended in something other than a 2xx body or a counted 4xx error."""


class Outcome(NamedTuple):
    """One answer: status, headers and body."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes


class _Upload:
    """An ASGI ``receive`` for one request body, delivered whole or in chunks.

    ``more_body`` mirrors uvicorn's request cycle (``api.deadlines.body_arrived``): false
    when the server holds the whole body before the app reads it.
    """

    def __init__(self, body: bytes, chunked: bool) -> None:
        size = CHUNK if chunked else max(len(body), 1)
        self.messages = [
            {"type": "http.request", "body": body[i : i + size], "more_body": True}
            for i in range(0, max(len(body), 1), size)
        ]
        self.messages[-1]["more_body"] = False
        self.more_body = chunked

    async def receive(self) -> dict[str, Any]:
        if self.messages:
            return self.messages.pop(0)
        return {"type": "http.disconnect"}


class _Unexpected(logging.Handler):
    """Keeps the last exception the service logged as unexpected (a 500's cause)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.last = record.exc_info[1]


def errors_counted() -> float:
    """Sum of ``ml_scoring_errors_total`` over all labels in this process."""
    return sum(
        sample.value
        for metric in metrics.SCORING_ERRORS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def build_store(workdir: Path, rows: int = 1200) -> Path:
    """Train and sign the harness's models and make token keys in ``workdir``; return it.

    Training imports LightGBM's Python package and scikit-learn (seconds), so it is done
    once and the store shared: ``Harness(store)`` only loads what is here.
    """
    from engine.config import load_config
    from engine.store.signing import Keyring, generate_keypair
    from engine.training.pipeline import train_vertical
    from engine.training.synth import write_csv

    config = load_config(CONFIG)
    generate_keypair(workdir / "model-keys")
    generate_keypair(workdir / "jwt-keys", private_name="jwt-signing.key")
    key = SigningKey.load(workdir / "model-keys" / "model-signing.key")
    keyring = Keyring.load(workdir / "model-keys" / "trusted")
    data = workdir / "auto.csv"
    write_csv("auto", rows, 5, data)
    for vertical in config.verticals:
        train_vertical(
            config, vertical, data, "1.0.0", workdir / "models", key, activate_with=keyring
        )
    return workdir


def service_env(store: Path) -> dict[str, str]:
    """The settings of the harness's service over a store made by ``build_store``."""
    return {
        "CONFIG_PATH": str(CONFIG),
        "MODEL_PATH": str(store / "models"),
        "MODEL_TRUSTED_KEYS": str(store / "model-keys" / "trusted"),
        "JWT_PUBLIC_KEYS": str(store / "jwt-keys" / "trusted"),
        "RUN_DIR": str(store / f"run-{os.getpid()}"),
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "MAX_BATCH": str(MAX_BATCH),
        "ENVIRONMENT": "fuzz",
        "LOG_LEVEL": "warning",
    }


class Harness:
    """A worker's scoring path in this process (see the module docstring)."""

    def __init__(self, store: Path) -> None:
        """Serve the models of ``store`` (see ``build_store``)."""
        self.settings = load_settings(service_env(store))
        self.service = build_service(self.settings)
        recorder = worker_metrics.start(self.service, ACCESS.paths)
        by_path = scoring.handlers(self.service, recorder)
        self.handlers = {name: by_path[path] for name, path in ROUTES.items()}
        signing = SigningKey.load(store / "jwt-keys" / "jwt-signing.key")
        self.token = issue_token(signing, "fuzz", "scorer", 24 * 3600).encode()
        self.loop = asyncio.new_event_loop()
        self._unexpected = _Unexpected()
        logging.getLogger("ml_service").addHandler(self._unexpected)

    def close(self) -> None:
        """Free the models and the event loop."""
        logging.getLogger("ml_service").removeHandler(self._unexpected)
        self.loop.run_until_complete(self.service.runtime.stop())
        self.loop.close()

    def post(
        self,
        route: str,
        body: bytes,
        *,
        chunked: bool = False,
        content_type: bytes = b"application/json",
    ) -> Outcome:
        """Send ``body`` to ``route`` (``score`` or ``batch``) and return the answer."""
        headers = [(b"authorization", b"Bearer " + self.token), (b"content-type", content_type)]
        if not chunked:
            headers.append((b"content-length", b"%d" % len(body)))
        scope = {"type": "http", "method": "POST", "path": ROUTES[route], "headers": headers}
        upload = _Upload(body, chunked)
        sent: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        self._unexpected.last = None
        try:
            handler = self.handlers[route]
            self.loop.run_until_complete(handler(scope, upload.receive, send, time.perf_counter()))
        except Exception as exc:
            raise InvariantBroken(f"the {route} handler raised {exc!r}") from exc
        if len(sent) != 2 or [m["type"] for m in sent] != [
            "http.response.start",
            "http.response.body",
        ]:
            raise InvariantBroken(f"malformed ASGI answer: {sent!r:.300}")
        return Outcome(sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"])

    def check(self, route: str, body: bytes) -> list[Outcome]:
        """Post ``body`` whole and chunked; assert the invariant; return both answers."""
        outcomes = []
        for chunked in (False, True):
            before = errors_counted()
            outcome = self.post(route, body, chunked=chunked)
            self._verify(route, outcome, errors_counted() - before)
            outcomes.append(outcome)
        if outcomes[0].status != outcomes[1].status:
            raise InvariantBroken(
                f"whole body answered {outcomes[0].status}, chunked {outcomes[1].status}"
            )
        return outcomes

    def _verify(self, route: str, outcome: Outcome, counted: float) -> None:
        status, headers, body = outcome
        if headers.get(b"content-type") != b"application/json":
            raise InvariantBroken(f"{status} answered with content-type {headers!r}")
        if headers.get(b"content-length") != b"%d" % len(body):
            raise InvariantBroken(f"{status}: content-length does not match the body")
        if 200 <= status < 300:
            try:
                _RESPONSES[route].decode(body)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise InvariantBroken(f"{status} body does not decode: {exc}") from exc
            return
        if not 400 <= status < 500:
            cause = self._unexpected.last  # what the service logged as the 500's cause
            raise InvariantBroken(f"answered {status}, caused by {cause!r:.300}") from cause
        try:
            error = _ERROR.decode(body).error
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise InvariantBroken(f"{status} error body does not decode: {exc}") from exc
        if not (error.type and error.message) or len(body) > MAX_ERROR_BYTES:
            raise InvariantBroken(f"{status} error body is empty or too long: {body[:300]!r}")
        if counted < 1:
            raise InvariantBroken(f"{status} {error.type} was not counted")


def corpus_files(route: str | None = None) -> list[tuple[str, Path]]:
    """Every corpus file as (route, path), sorted."""
    routes = [route] if route else list(ROUTES)
    return [(r, p) for r in routes for p in sorted((CORPUS / r).glob("*")) if p.is_file()]


def expected_status(path: Path) -> int | None:
    """The status a hand-written seed names (``<what>.<status>.json``), if any."""
    match = _EXPECTED.search(path.name)
    return int(match["status"]) if match else None
