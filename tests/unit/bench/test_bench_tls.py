"""The HTTP benchmark's TLS run: specs, the built-in generator over TLS, goals, report."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import os
import ssl
import threading
from pathlib import Path

import bench_http
import pytest
from httpbench.common import TLS_APP
from httpbench.goals import evaluate_goals
from httpbench.load import Load, run_python_load
from httpbench.parsing import LoadResult
from httpbench.procfs import cpu_sample
from httpbench.report import tls_cost_lines
from httpbench.servers import AppSpec, ours_spec
from httpbench.workspace import Workspace

from api.devcert import make_dev_certificate
from api.tls import server_context


def result(rps: float, p50: float, p99: float, **socket_errors: int) -> LoadResult:
    return LoadResult(int(rps * 10), 10.0, rps, p50, p99, socket_errors=socket_errors)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    made = make_dev_certificate(tmp_path_factory.mktemp("bench-tls") / "tls")
    return made.cert_path, made.key_path


def test_the_tls_run_follows_ours_unless_switched_off():
    assert bench_http.parse_args([]).no_tls is False
    assert bench_http.parse_args(["--no-tls"]).no_tls is True
    # Not an --apps choice: it is tied to ours.
    with pytest.raises(SystemExit):
        bench_http.parse_args(["--apps", TLS_APP])


def test_our_tls_spec_gets_the_certificate_and_speaks_https(tmp_path):
    space = Workspace(tmp_path)
    make_dev_certificate(space.tls_cert.parent)
    assert space.tls_key.exists()
    plain = ours_spec(space, 2, "t")
    tls = ours_spec(space, 2, "t", tls=True)
    assert plain.key == "ours" and "TLS_CERT_FILE" not in plain.env
    assert plain.url("/ready").startswith("http://") and plain.client_context() is None
    assert tls.key == TLS_APP and tls.ca_file == space.tls_cert
    assert tls.env["TLS_CERT_FILE"] == str(space.tls_cert)
    assert tls.env["TLS_KEY_FILE"] == str(space.tls_key)
    assert tls.url("/api/v1/score") == f"https://127.0.0.1:{tls.port}/api/v1/score"
    assert tls.authorization == "Bearer t"
    assert isinstance(plain.connection(1.0), http.client.HTTPConnection)
    assert not isinstance(plain.connection(1.0), http.client.HTTPSConnection)
    assert isinstance(tls.connection(1.0), http.client.HTTPSConnection)
    context = tls.client_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED


def test_the_builtin_generator_loads_a_tls_server_and_verifies_it(certificate, tmp_path):
    """A real TLS 1.3 server on loopback; the generator must verify it and get answers."""
    cert, key = certificate
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    versions: list[str] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    class Answer(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport = transport
            versions.append(transport.get_extra_info("ssl_object").version())

        def data_received(self, data: bytes) -> None:
            for _ in range(data.count(b"POST /api/v1/score ")):
                self.transport.write(answer)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(
            loop.create_server(Answer, "127.0.0.1", 0, ssl=server_context(cert, key))
        )
        ports.append(server.sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())

    ports: list[int] = []
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        body = tmp_path / "body.json"
        body.write_text('{"vertical": "auto"}')
        load = Load(body, duration=1, connections=2, threads=1, generator="python")
        spec = AppSpec(TLS_APP, [], {}, tmp_path, ports[0], "Bearer t", ca_file=cert)
        verified = run_python_load(load, ports[0], "Bearer t", 1, spec.client_context())
        assert verified.requests > 0 and verified.errors == 0
        assert versions and set(versions) == {"TLSv1.3"}
        # A client that does not trust the certificate never gets a request through.
        untrusting = ssl.create_default_context()
        refused = run_python_load(load, ports[0], "Bearer t", 1, untrusting)
        assert refused.requests == 0 and refused.socket_errors.get("connect", 0) > 0
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_tls_cost_lines():
    # 100000 requests in 12 s of server CPU: 120 us each; 80000 in 12 s: 150 us each.
    plain = dataclasses.replace(result(10000, 1.0, 3.0), server_cpu_s=12.0)
    tls = dataclasses.replace(result(8000, 1.25, 3.5), server_cpu_s=12.0)
    lines = tls_cost_lines(plain, tls, cores=2)
    assert lines[0].startswith("TLS 1.3 cost")
    assert "throughput 0.800x (8000 vs 10000 req/s)" in lines[1]
    assert "p50 1.25 vs 1.00 ms (+0.25)" in lines[1]
    assert "p99 3.50 vs 3.00 ms (+0.50)" in lines[1]
    assert "server CPU per request: 150 vs 120 us (+30 us, 1.25x)" in lines[2]
    # 2 cores / 8000 req/s = 250 us of machine time per request, against 200 us.
    assert "250 vs 200 us (+50 us)" in lines[3]
    unmeasured = tls_cost_lines(result(10000, 1, 1), result(8000, 1, 1), cores=2)
    assert "server CPU per request: nan vs nan us" in unmeasured[2]


def test_failed_requests_over_tls_miss_a_goal():
    ok = result(15000, 1.0, 3.0)
    goals = evaluate_goals(result(20000, 1, 1), result(1000, 1, 1), ok, None, ok)
    assert goals[-1].label == "our failed requests over TLS" and goals[-1].met
    goals = evaluate_goals(
        result(20000, 1, 1), result(1000, 1, 1), ok, None, result(9, 1, 1, read=2)
    )
    assert [g.label for g in goals if not g.met] == ["our failed requests over TLS"]
    assert "over TLS" not in " ".join(g.label for g in evaluate_goals(ok, ok, ok))


def test_cpu_samples_carry_the_server_processes_own_time():
    assert cpu_sample([]).server == 0.0
    sample = cpu_sample([os.getpid()])  # this test process has surely used 10 ms of CPU
    assert 0.0 < sample.server <= sample.ours
