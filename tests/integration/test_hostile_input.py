"""Hostile request bodies and slow clients against the real gunicorn service.

Each case is sent to a live server and must get a precise 4xx JSON error naming the
problem (type, and field where one input is at fault), be counted in
``ml_scoring_errors_total``, and leave every worker alive (same pids). Most cases use
the session ``service`` (``MAX_BODY_BYTES=8192``, ``MAX_BATCH=50``); the slow-client
and full-size batch cases use ``patient``, a service with default limits and a short
``BODY_TIMEOUT_SECONDS``. The fuzzers (tests/fuzz/, test_schemathesis.py) look for what
these hand-written cases miss.
"""

from __future__ import annotations

import contextlib
import csv
import json
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.integration.service import ServiceProcess, metric_value

LEAD = json.loads((Path(__file__).parents[2] / "examples" / "leads" / "auto.json").read_text())
JSON = {"Content-Type": "application/json"}
NUMBERS = ("age", "driving_years", "vehicle_age", "annual_mileage")


def errors_counted(service, error_type: str) -> float:
    try:
        return metric_value(service.metrics(), "ml_scoring_errors_total", error_type=error_type)
    except KeyError:
        return 0.0


def worker_pids(service) -> set[int]:
    return {w.pid for w in service.live_workers()}


@pytest.fixture
def client(service):
    client = service.client()
    yield client
    client.close()


@pytest.fixture
def unharmed(service):
    """Fail the test if a worker of the session service died or was replaced."""
    before = worker_pids(service)
    yield
    assert worker_pids(service) == before
    assert "Traceback" not in service.log()


@pytest.fixture(scope="module")
def realistic_leads(synth_csv):
    """600 leads as a client would send them, from the synthetic auto data."""
    leads = []
    with synth_csv("auto", 600, seed=31).open() as handle:
        for row in csv.DictReader(handle):
            del row["converted"]
            lead = {k: (float(v) if k in NUMBERS else v) for k, v in row.items() if v != ""}
            leads.append(lead)
    return leads


@pytest.fixture(scope="module")
def patient(store, tmp_path_factory):
    """A service with the default body and batch limits and 2 s head and body deadlines."""
    server = ServiceProcess(
        store.env(BODY_TIMEOUT_SECONDS="2", HEADER_TIMEOUT_SECONDS="2"),
        tmp_path_factory.mktemp("patient"),
        workers=1,
    )
    server.start()
    yield server
    server.stop()


def expect(reply, status: int, kind: str, field: str | None = None) -> None:
    assert reply.status == status, reply
    assert reply.headers.get("content-type") == "application/json", reply
    error = reply.json["error"]
    assert error["type"] == kind and error.get("field") == field, reply
    assert error["message"] and len(reply.raw) < 2048, reply


# -- bodies: (raw body, status, error type, field) ---------------------------------------

DEEP_ARRAYS = b'{"vertical":"auto","lead_data":{"age":30,"x":' + b"[" * 3000 + b"]" * 3000 + b"}}"
DEEP_OBJECTS = (
    b'{"vertical":"auto","lead_data":{"age":30,"x":' + b'{"a":' * 1300 + b"1" + b"}" * 1300 + b"}}"
)
BODIES = {
    "not UTF-8 in a string": (b'{"vertical":"au\xfftx","lead_data":{}}', 400, "invalid_json", None),
    "not UTF-8 at all": (b"\xff\xfe{\x00", 400, "invalid_json", None),
    "UTF-8 encoded surrogate": (
        b'{"vertical":"auto","lead_data":{"occupation":"\xed\xa0\x80"}}',
        400,
        "invalid_json",
        None,
    ),
    "lone surrogate escape": (
        b'{"vertical":"auto","lead_data":{"age":30},"lead_id":"\\ud800"}',
        400,
        "invalid_json",
        None,
    ),
    "deeply nested arrays": (DEEP_ARRAYS, 400, "invalid_json", None),
    "deeply nested objects": (DEEP_OBJECTS, 400, "invalid_json", None),
    "NaN literal": (b'{"vertical":"auto","lead_data":{"age":NaN}}', 400, "invalid_json", None),
    "Infinity literal": (
        b'{"vertical":"auto","lead_data":{"age":Infinity}}',
        400,
        "invalid_json",
        None,
    ),
    "-Infinity literal": (
        b'{"vertical":"auto","lead_data":{"age":-Infinity}}',
        400,
        "invalid_json",
        None,
    ),
    "duplicate top-level key": (
        b'{"vertical":"auto","vertical":"life","lead_data":{"age":30}}',
        400,
        "duplicate_key",
        "vertical",
    ),
    "duplicate lead key": (
        b'{"vertical":"auto","lead_data":{"age":30, "age" : 99}}',
        400,
        "duplicate_key",
        "lead_data.age",
    ),
    "huge integer": (
        b'{"vertical":"auto","lead_data":{"age":1' + b"0" * 400 + b"}}",
        422,
        "validation_error",
        "lead_data.age",
    ),
    "integer past the parser": (
        b'{"vertical":"auto","lead_data":{"age":30,"extra":' + b"9" * 5000 + b"}}",
        422,
        "validation_error",
        "lead_data.extra",
    ),
    "float out of range": (
        b'{"vertical":"auto","lead_data":{"age":1e400}}',
        422,
        "validation_error",
        "lead_data.age",
    ),
    "huge exponent": (
        b'{"vertical":"auto","lead_data":{"age":-1e99999999999999999999}}',
        422,
        "validation_error",
        "lead_data.age",
    ),
    "NUL in lead_id": (
        b'{"vertical":"auto","lead_data":{"age":30},"lead_id":"L-1\\u0000"}',
        422,
        "validation_error",
        "lead_id",
    ),
    "NUL in an unknown field": (
        b'{"vertical":"auto","lead_data":{},"x\\u0000y":1}',
        422,
        "validation_error",
        "x\\u0000y",
    ),
    "NUL in vertical": (
        b'{"vertical":"auto\\u0000","lead_data":{"age":30}}',
        404,
        "unknown_vertical",
        "vertical",
    ),
    "thousands of unknown fields": (
        json.dumps({"vertical": "auto", "lead_data": LEAD, **{f"f{i}": 1 for i in range(700)}}),
        422,
        "validation_error",
        "f0",
    ),
    "hundreds of lead fields": (
        json.dumps({"vertical": "auto", "lead_data": {f"f{i}": 1 for i in range(700)}}),
        422,
        "validation_error",
        "lead_data",
    ),
    "lead_id of a kilobyte": (
        json.dumps({"vertical": "auto", "lead_data": LEAD, "lead_id": "x" * 1024}),
        422,
        "validation_error",
        "lead_id",
    ),
    "empty body": (b"", 400, "invalid_json", None),
    "JSON null": (b"null", 422, "validation_error", None),
}


@pytest.mark.parametrize(("raw", "status", "kind", "field"), BODIES.values(), ids=list(BODIES))
def test_hostile_body_is_answered_precisely(
    service, client, store, unharmed, raw, status, kind, field
):
    before = errors_counted(service, kind)
    body = raw.encode() if isinstance(raw, str) else raw
    reply = client.request("POST", "/api/v1/score", raw=body, token=store.scorer, headers=JSON)
    expect(reply, status, kind, field)
    assert errors_counted(service, kind) >= before + 1


def test_error_messages_quote_client_strings_bounded(client, store, unharmed):
    name = "k" * 5000
    reply = client.request(
        "POST", "/api/v1/score", raw=b'{"%s": 1}' % name.encode(), token=store.scorer, headers=JSON
    )
    expect(reply, 422, "validation_error", "k" * 64 + "…")
    media = "text/" + "x" * 20000
    reply = client.request(
        "POST", "/api/v1/score", raw=b"{}", token=store.scorer, headers={"Content-Type": media}
    )
    expect(reply, 415, "unsupported_media_type")


def test_nul_inside_lead_data_strings_is_data(client, store, unharmed):
    lead = {**LEAD, "occupation": "Software\u0000Engineer", "vehicle_make": "Toy\u0000ota"}
    reply = client.request(
        "POST", "/api/v1/score", body={"vertical": "auto", "lead_data": lead}, token=store.scorer
    )
    assert reply.status == 200, reply


def test_duplicate_key_in_a_batch_lead(service, client, store, unharmed):
    raw = b'{"vertical":"auto","leads":[{"lead_data":{"age":30}},{"lead_data":{"age":1,"age":2}}]}'
    before = errors_counted(service, "duplicate_key")
    reply = client.request("POST", "/api/v1/score/batch", raw=raw, token=store.scorer, headers=JSON)
    expect(reply, 400, "duplicate_key", "leads[1].lead_data.age")
    assert errors_counted(service, "duplicate_key") == before + 1


def test_colons_in_values_are_not_mistaken_for_duplicates(client, store, unharmed):
    lead = {**LEAD, "note": "called at 12:30, again at 14:45", "explain": False}
    reply = client.request(
        "POST",
        "/api/v1/score",
        body={"vertical": "auto", "lead_data": lead, "explain": False, "lead_id": None},
        token=store.scorer,
    )
    assert reply.status == 200, reply


# -- batches at and over the limits ------------------------------------------------------


def test_max_batch_realistic_leads_fit_the_batch_body_limit(
    service, client, store, unharmed, realistic_leads
):
    leads = [{"lead_data": lead, "lead_id": f"L-{i}"} for i, lead in enumerate(realistic_leads)]
    body = {"vertical": "auto", "leads": leads[:50]}
    assert len(json.dumps(body)) > 8192  # over MAX_BODY_BYTES: the batch route has its own
    reply = client.request("POST", "/api/v1/score/batch", body=body, token=store.scorer)
    assert reply.status == 200, reply
    assert reply.json["scored"] + reply.json["failed"] == 50
    before = errors_counted(service, "payload_too_large")
    over = client.request(
        "POST",
        "/api/v1/score/batch",
        body={"vertical": "auto", "leads": leads[:51]},
        token=store.scorer,
    )
    expect(over, 413, "payload_too_large", "leads")
    assert errors_counted(service, "payload_too_large") == before + 1


def test_default_max_batch_of_realistic_leads_is_accepted(patient, store, realistic_leads):
    client = patient.client()
    leads = [{"lead_data": lead, "lead_id": f"L-{i}"} for i, lead in enumerate(realistic_leads)]
    body = {"vertical": "auto", "leads": leads[:500]}
    assert len(json.dumps(body)) > 65536  # twice the default MAX_BODY_BYTES, about
    reply = client.request("POST", "/api/v1/score/batch", body=body, token=store.scorer)
    assert reply.status == 200, reply
    assert reply.json["scored"] == 500
    over = client.request(
        "POST",
        "/api/v1/score/batch",
        body={"vertical": "auto", "leads": leads[:501]},
        token=store.scorer,
    )
    expect(over, 413, "payload_too_large", "leads")
    client.close()


# -- raw HTTP: big, chunked and slow bodies -----------------------------------------------


class Exchange:
    """One HTTP/1.1 request over a raw socket, the body sent as the test decides."""

    def __init__(self, port: int, token: str, head: dict[str, str], path: str = "/api/v1/score"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = [f"POST {path} HTTP/1.1", "Host: test", f"Authorization: Bearer {token}"]
        lines += [f"{name}: {value}" for name, value in head.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def answered(self) -> bool:
        return bool(select.select([self.sock], [], [], 0)[0])

    def send(self, data: bytes) -> bool:
        """Send unless the server has answered (or closed); False once it has."""
        if self.answered():
            return False
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def reply(self, timeout: float = 15.0) -> tuple[int, dict[str, str], bytes]:
        self.sock.settimeout(timeout)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed without an answer: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
        while len(body) < int(headers.get("content-length", "0")):
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed in the middle of the answer"
            body += chunk
        return int(status_line.split()[1]), headers, body

    def closed_by_server(self) -> bool:
        self.sock.settimeout(10)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def expect_raw(answer, status: int, kind: str) -> None:
    code, headers, body = answer
    assert code == status, answer
    assert headers["content-type"] == "application/json", answer
    assert json.loads(body)["error"]["type"] == kind, answer


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/score", {"vertical": "auto", "lead_data": LEAD, "lead_id": "x" * 2**20}),
        ("/api/v1/score/batch", {"vertical": "auto", "leads": [{"lead_id": "x" * 2**20}]}),
        (
            "/api/v1/score/batch",
            {"vertical": "auto", "leads": [{"lead_data": {"p": "x" * 60_000}}]},
        ),
    ],
    ids=["lead_id of a megabyte", "batch lead_id of a megabyte", "batch over its body limit"],
)
def test_body_over_the_route_limit(service, store, unharmed, path, body):
    before = errors_counted(service, "payload_too_large")
    raw = json.dumps(body).encode()
    exchange = Exchange(
        service.port,
        store.scorer,
        {"Content-Type": "application/json", "Content-Length": str(len(raw))},
        path,
    )
    exchange.send(raw)
    expect_raw(exchange.reply(), 413, "payload_too_large")
    exchange.close()
    assert errors_counted(service, "payload_too_large") == before + 1


def test_ten_megabytes_with_content_length(service, store, unharmed):
    before = errors_counted(service, "payload_too_large")
    size = 10 * 2**20
    exchange = Exchange(
        service.port,
        store.scorer,
        {"Content-Type": "application/json", "Content-Length": str(size)},
    )
    exchange.send(b'{"vertical": "auto", "lead_data": {"x": "' + b"y" * 60_000)
    code, headers, body = exchange.reply()
    expect_raw((code, headers, body), 413, "payload_too_large")
    assert headers["connection"] == "close"  # the rest is neither read nor kept
    assert exchange.closed_by_server()
    exchange.close()
    assert errors_counted(service, "payload_too_large") == before + 1


def test_ten_megabytes_with_content_length_and_expect_continue(service, store, unharmed):
    head = {
        "Content-Type": "application/json",
        "Content-Length": str(10 * 2**20),
        "Expect": "100-continue",
    }
    exchange = Exchange(service.port, store.scorer, head)
    expect_raw(exchange.reply(), 413, "payload_too_large")  # no 100 Continue: body unsent
    exchange.close()


def test_ten_megabytes_chunked_without_content_length(service, store, unharmed):
    before = errors_counted(service, "payload_too_large")
    exchange = Exchange(
        service.port,
        store.scorer,
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    piece = b"y" * 4096
    sent = 0
    while sent < 10 * 2**20 and exchange.send(b"%x\r\n%s\r\n" % (len(piece), piece)):
        sent += len(piece)
        time.sleep(0.001)
    expect_raw(exchange.reply(), 413, "payload_too_large")
    exchange.close()
    assert sent < 2**20  # refused as soon as it passed the limit, not at the end
    assert errors_counted(service, "payload_too_large") == before + 1


def test_chunked_body_is_scored(service, store, unharmed):
    body = json.dumps({"vertical": "auto", "lead_data": LEAD}).encode()
    exchange = Exchange(
        service.port,
        store.scorer,
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    for start in range(0, len(body), 50):
        piece = body[start : start + 50]
        exchange.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    exchange.send(b"0\r\n\r\n")
    code, _, answer = exchange.reply()
    assert code == 200 and 0 < json.loads(answer)["score"] < 1
    exchange.close()


def test_malformed_chunked_framing_is_refused_by_the_parser(service, store, unharmed):
    exchange = Exchange(
        service.port,
        store.scorer,
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    before = errors_counted(service, "invalid_http")
    exchange.send(b"zz\r\n{}\r\n0\r\n\r\n")
    # The HTTP parser refuses it before the application runs; the answer is still the
    # service's JSON error, counted, and the connection is closed.
    expect_raw(exchange.reply(), 400, "invalid_http")
    assert exchange.closed_by_server()
    exchange.close()
    assert errors_counted(service, "invalid_http") >= before + 1


def test_body_that_never_comes_gets_408(patient, store):
    before = errors_counted(patient, "request_timeout")
    pids = worker_pids(patient)
    exchange = Exchange(
        patient.port, store.scorer, {"Content-Type": "application/json", "Content-Length": "500"}
    )
    exchange.send(b'{"vertical": "auto", ')
    code, headers, body = exchange.reply()
    expect_raw((code, headers, body), 408, "request_timeout")
    assert headers["connection"] == "close" and exchange.closed_by_server()
    exchange.close()
    assert errors_counted(patient, "request_timeout") == before + 1
    assert worker_pids(patient) == pids


def test_trickled_body_gets_408(patient, store):
    """One byte every 100 ms keeps the connection busy but cannot stretch the deadline."""
    before = errors_counted(patient, "request_timeout")
    body = json.dumps({"vertical": "auto", "lead_data": LEAD}).encode()
    exchange = Exchange(
        patient.port,
        store.scorer,
        {"Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    for byte in body:
        if not exchange.send(bytes([byte])):
            break
        time.sleep(0.1)
    expect_raw(exchange.reply(), 408, "request_timeout")
    exchange.close()
    assert errors_counted(patient, "request_timeout") == before + 1


def test_body_in_two_parts_within_the_deadline_is_scored(patient, store):
    body = json.dumps({"vertical": "auto", "lead_data": LEAD}).encode()
    exchange = Exchange(
        patient.port,
        store.scorer,
        {"Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    exchange.send(body[:40])
    time.sleep(0.1)
    exchange.send(body[40:])
    code, _, answer = exchange.reply()
    assert code == 200 and 0 < json.loads(answer)["score"] < 1
    exchange.close()


def test_slowloris_on_headers_does_not_block_other_clients(service, store, unharmed):
    """Many connections trickling header lines; every other client is still answered."""
    sockets = []
    for _ in range(100):
        sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
        sock.sendall(b"POST /api/v1/score HTTP/1.1\r\nHost: test\r\n")
        sockets.append(sock)
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            for sock in sockets:
                with contextlib.suppress(OSError):  # the server may close it: fine
                    sock.sendall(b"X-Slow: 1\r\n")
            stop.wait(0.2)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        client = service.client()
        for _ in range(20):
            reply = client.request(
                "POST",
                "/api/v1/score",
                body={"vertical": "auto", "lead_data": LEAD},
                token=store.scorer,
            )
            assert reply.status == 200, reply
        client.close()
    finally:
        stop.set()
        thread.join()
        for sock in sockets:
            sock.close()


def read_all(sock: socket.socket) -> bytes:
    sock.settimeout(15)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_slowloris_heads_and_silent_connections_are_closed_with_408(patient, store):
    """Heads trickled forever, or never sent, end at the header deadline: 408, closed."""
    before = errors_counted(patient, "request_timeout")
    pids = worker_pids(patient)
    silent = socket.create_connection(("127.0.0.1", patient.port), timeout=10)
    trickling = socket.create_connection(("127.0.0.1", patient.port), timeout=10)
    trickling.sendall(b"POST /api/v1/score HTTP/1.1\r\nHost: test\r\n")
    started = time.monotonic()
    with contextlib.suppress(OSError):  # the server closes it at the deadline
        while time.monotonic() - started < 6:
            trickling.sendall(b"X-Slow: 1\r\n")
            time.sleep(0.2)
    for sock in (trickling, silent):
        answer = read_all(sock)  # ends: the server closed the connection
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer
        assert json.loads(body)["error"]["type"] == "request_timeout"
        sock.close()
    assert errors_counted(patient, "request_timeout") >= before + 2
    assert worker_pids(patient) == pids


def test_an_idle_kept_alive_connection_is_not_a_slow_head(patient, store):
    client = patient.client()
    body = {"vertical": "auto", "lead_data": LEAD}
    assert client.request("POST", "/api/v1/score", body=body, token=store.scorer).status == 200
    socket_before = client.conn.sock
    time.sleep(3)  # past the 2 s head deadline, well within keep-alive
    assert client.request("POST", "/api/v1/score", body=body, token=store.scorer).status == 200
    assert client.conn.sock is socket_before  # the same connection served both
    client.close()


def test_admin_bodies_refuse_duplicate_keys_and_bound_echoes(service, client, store, unharmed):
    duplicate = b'{"versions": {"auto": "1.0.0", "auto": "1.1.0"}}'
    reply = client.request(
        "POST", "/api/v1/models/reload", raw=duplicate, token=store.admin, headers=JSON
    )
    expect(reply, 400, "duplicate_key", "versions.auto")
    rollback = b'{"vertical": "auto", "vertical": "home"}'
    reply = client.request(
        "POST", "/api/v1/models/rollback", raw=rollback, token=store.admin, headers=JSON
    )
    expect(reply, 400, "duplicate_key", "vertical")
    long_version = json.dumps({"versions": {"auto": "9" * 5000}}).encode()
    reply = client.request(
        "POST", "/api/v1/models/reload", raw=long_version, token=store.admin, headers=JSON
    )
    expect(reply, 422, "validation_error", "versions.auto")
    assert len(reply.json["error"]["message"]) < 200
    missing = client.request("GET", "/api/v1/" + "x" * 5000)
    assert missing.status == 404 and len(missing.json["error"]["message"]) < 200
