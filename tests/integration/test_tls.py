"""TLS 1.3 only, against the real service: ``ml-service serve`` with a dev certificate.

The certificate comes from the real ``ml-service tls dev-cert``; clients verify the
server against it (no ``CERT_NONE`` anywhere), so a handshake that completes proves the
service presented that certificate.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.service import ServiceProcess, metric_value

LEAD = json.loads((Path(__file__).parents[2] / "examples" / "leads" / "auto.json").read_text())
ML_SERVICE = str(Path(sys.executable).parent / "ml-service")
# OpenSSL's TLS 1.3 suites: the only ones a TLS 1.3-only server can pick.
TLS13_SUITES = {"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"}


def dev_cert(directory: Path, *options: str) -> tuple[Path, Path]:
    done = subprocess.run(
        [ML_SERVICE, "tls", "dev-cert", "--dir", str(directory), *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return directory / "tls.crt", directory / "tls.key"


def client_context(cafile: Path) -> ssl.SSLContext:
    """A client that verifies the server against the dev certificate, hostname included."""
    context = ssl.create_default_context(cafile=str(cafile))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    return context


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    return dev_cert(tmp_path_factory.mktemp("tls") / "keys")


@pytest.fixture(scope="module")
def tls_service(store, tls_files, tmp_path_factory):
    cert, key = tls_files
    server = ServiceProcess(
        store.env(TLS_CERT_FILE=str(cert), TLS_KEY_FILE=str(key)),
        tmp_path_factory.mktemp("tls-svc"),
        workers=1,
        ssl_context=client_context(cert),
    )
    server.start()
    yield server
    server.stop()


def handshake(port: int, context: ssl.SSLContext, name: str = "localhost") -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return context.wrap_socket(sock, server_hostname=name)
    except BaseException:
        sock.close()
        raise


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_tls13_handshake_verifies_the_dev_certificate(tls_service, tls_files, name):
    with handshake(tls_service.port, client_context(tls_files[0]), name) as tls:
        assert tls.version() == "TLSv1.3"
        cipher, peer = tls.cipher(), tls.getpeercert()
        assert cipher is not None and cipher[0] in TLS13_SUITES
        assert peer is not None
        sans = peer["subjectAltName"]
        assert ("DNS", "localhost") in sans and ("IP Address", "127.0.0.1") in sans


def test_scoring_and_every_response_shape_over_one_tls_connection(tls_service, store):
    client = tls_service.client()
    try:
        reply = client.request(
            "POST",
            "/api/v1/score",
            token=store.scorer,
            body={"vertical": "auto", "lead_data": LEAD, "lead_id": "L-TLS"},
        )
        assert reply.status == 200, reply
        assert 0 < reply.json["score"] < 1 and reply.json["lead_id"] == "L-TLS"
        tls = client.conn.sock
        assert isinstance(tls, ssl.SSLSocket) and tls.version() == "TLSv1.3"
        # The coalescing transport over TLS: a head with no body (HEAD), an error, a
        # large body and another score, in order, on the same kept-alive connection.
        head = client.request("HEAD", "/health")
        assert head.status == 200 and head.raw == b""
        refused = client.request("POST", "/api/v1/score", body={"vertical": "auto"})
        assert refused.status == 401 and refused.json["error"]["type"]
        described = client.request("GET", "/docs/api")
        assert described.status == 200 and "/api/v1/score" in described.json["paths"]
        again = client.request(
            "POST",
            "/api/v1/score",
            token=store.scorer,
            body={"vertical": "auto", "lead_data": LEAD},
        )
        assert again.status == 200 and again.json["score"] == reply.json["score"]
        assert client.conn.sock is tls  # never reconnected: nothing was lost or reordered
    finally:
        client.close()


def test_a_tls12_client_is_refused_at_the_handshake(tls_service, tls_files):
    context = client_context(tls_files[0])
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError) as refused:
        handshake(tls_service.port, context)
    # uvloop drops the connection without flushing OpenSSL's protocol_version alert,
    # so the client may see either; never a certificate problem.
    assert not isinstance(refused.value, ssl.SSLCertVerificationError)
    assert refused.value.reason in {"TLSV1_ALERT_PROTOCOL_VERSION", "UNEXPECTED_EOF_WHILE_READING"}
    # The same client allowed TLS 1.3 gets in: the version was the only obstacle, and
    # the refusal cost the service nothing.
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    with handshake(tls_service.port, context) as tls:
        assert tls.version() == "TLSv1.3"


def test_plain_http_to_the_tls_port_gets_no_http_answer(tls_service):
    with socket.create_connection(("127.0.0.1", tls_service.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = b""
        while chunk := sock.recv(4096):  # the server closes the connection
            received += chunk
    assert not received.startswith(b"HTTP/") and b"200" not in received
    connection = http.client.HTTPConnection("127.0.0.1", tls_service.port, timeout=10)
    try:
        connection.request("GET", "/ready")
        status: int | None = connection.getresponse().status
    except (OSError, http.client.HTTPException):
        status = None
    finally:
        connection.close()
    assert status != 200


def test_bad_tls_settings_stop_the_service_at_start(store, tls_files, tmp_path):
    cert = tls_files[0]
    _, other_key = dev_cert(tmp_path / "other")
    cases = [
        ({"TLS_CERT_FILE": str(cert)}, "TLS_KEY_FILE is not set"),
        (
            {"TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(tmp_path / "missing.key")},
            "TLS_KEY_FILE=.* is not a readable file",
        ),
        # Both readable, but not a pair: the master refuses before any worker starts.
        ({"TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(other_key)}, "KEY_VALUES_MISMATCH"),
    ]
    for env, message in cases:
        server = ServiceProcess(store.env(**env), tmp_path, workers=1)
        with pytest.raises(RuntimeError, match="service exited early") as stopped:
            server.start(timeout=30)
        assert server.process is not None and server.process.returncode != 0
        assert re.search(message, str(stopped.value)), stopped.value


def test_a_renewed_certificate_is_served_after_a_reload_and_a_bad_one_is_not(store, tmp_path):
    """Certificate rotation in place: files replaced, SIGHUP, new handshakes get the new one."""
    from tests.integration.test_service_reload import all_workers_at, current_generation

    cert, key = dev_cert(tmp_path / "live")
    old_cert = tmp_path / "old.crt"
    old_cert.write_bytes(cert.read_bytes())
    new_cert, new_key = dev_cert(tmp_path / "new", "--host", "renewed.test")
    server = ServiceProcess(
        store.env(TLS_CERT_FILE=str(cert), TLS_KEY_FILE=str(key)),
        tmp_path,
        workers=2,
        ssl_context=client_context(cert),
    )
    server.start()

    def reload_and_names(trust: Path) -> set[str]:
        generation = current_generation(server)
        server.hup()
        assert all_workers_at(server, generation + 1, within=5)
        names = set()
        for _ in range(6):  # several connections: both workers answer
            with handshake(server.port, client_context(trust)) as tls:
                peer = tls.getpeercert()
                assert peer is not None
                names |= {str(entry[1]) for entry in peer["subjectAltName"] if entry[0] == "DNS"}
        return names

    try:
        # A mismatched pair on disk (the new certificate, the old key) is refused and
        # the old certificate keeps serving.
        cert.write_bytes(new_cert.read_bytes())
        assert "renewed.test" not in reload_and_names(old_cert)
        # The whole new pair is served by every worker after the next reload.
        key.write_bytes(new_key.read_bytes())
        assert "renewed.test" in reload_and_names(new_cert)
        text = server.metrics()
        for outcome in ("failure", "success"):
            count = metric_value(
                text, "ml_credential_reloads_total", credential="tls_certificate", outcome=outcome
            )
            assert count >= server.workers, outcome
    finally:
        server.stop()
