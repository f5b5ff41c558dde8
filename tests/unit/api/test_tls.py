"""TLS 1.3: settings, the server context, its path through gunicorn and uvicorn, dev certs.

Handshakes run in memory (``ssl.MemoryBIO``) with real OpenSSL and real certificates
made by ``api.devcert``; clients always verify the server (certificate and hostname).
The tests of ``ServiceWorker`` pin the library internals ``api.tls`` relies on: if
uvicorn-worker stops passing gunicorn's certificate on, or uvicorn stops taking its
context from ``ssl_context_factory``, they fail.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import logging
import os
import ssl
import stat
from pathlib import Path

import pytest
import uvicorn
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from gunicorn.config import Config as GunicornConfig  # type: ignore[import-untyped]
from gunicorn.glogging import Logger  # type: ignore[import-untyped]

from api import cli
from api.devcert import (
    DEFAULT_DAYS,
    DEFAULT_DIR,
    MAX_DAYS,
    DevCertError,
    make_dev_certificate,
    subject_alt_names,
)
from api.http_protocol import CoalescingTransport
from api.settings import SettingsError, load_settings
from api.tls import TLSError, certificate_not_after, server_context, uvicorn_context_factory
from api.worker import ServiceWorker

T13 = ssl.TLSVersion.TLSv1_3
T12 = ssl.TLSVersion.TLSv1_2


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    made = make_dev_certificate(tmp_path_factory.mktemp("tls") / "keys", ["api.example.test"])
    return made.cert_path, made.key_path


def client(cafile: Path, maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED):
    context = ssl.create_default_context(cafile=str(cafile))
    context.verify_flags |= ssl.VERIFY_X509_STRICT  # as Python 3.13+ clients do by default
    context.maximum_version = maximum
    return context


def handshake(server: ssl.SSLContext, client_context: ssl.SSLContext, name: str = "localhost"):
    """Run a TLS handshake in memory; return the client's SSLObject."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_side = server.wrap_bio(to_server, to_client, server_side=True)
    client_side = client_context.wrap_bio(to_client, to_server, server_hostname=name)
    for _ in range(10):
        finished = 0
        for side in (client_side, server_side):
            try:
                side.do_handshake()
                finished += 1
            except ssl.SSLWantReadError:
                pass
        if finished == 2:
            return client_side
    raise AssertionError("the handshake did not finish")


# --- settings ---------------------------------------------------------------------------


def test_tls_is_off_unless_both_files_are_set(pair):
    settings = load_settings({})
    assert settings.tls_cert_file is None and settings.tls_key_file is None
    settings = load_settings({"TLS_CERT_FILE": "", "TLS_KEY_FILE": ""})
    assert settings.tls_cert_file is None
    cert, key = pair
    settings = load_settings({"TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(key)})
    assert settings.tls_cert_file == cert and settings.tls_key_file == key


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("TLS_CERT_FILE",), "TLS_KEY_FILE is not set but TLS_CERT_FILE is"),
        (("TLS_KEY_FILE",), "TLS_CERT_FILE is not set but TLS_KEY_FILE is"),
    ],
)
def test_one_tls_file_without_the_other_is_refused(pair, names, message):
    values = {"TLS_CERT_FILE": str(pair[0]), "TLS_KEY_FILE": str(pair[1])}
    with pytest.raises(SettingsError, match=message):
        load_settings({name: values[name] for name in names})


def test_tls_files_must_be_readable_files(pair, tmp_path):
    cert, key = pair
    for env, name in (
        ({"TLS_CERT_FILE": str(tmp_path / "nope.crt"), "TLS_KEY_FILE": str(key)}, "TLS_CERT"),
        ({"TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(tmp_path)}, "TLS_KEY"),
    ):
        with pytest.raises(SettingsError, match=rf"{name}_FILE=.* is not a readable file"):
            load_settings(env)


# --- the server context -----------------------------------------------------------------


def test_server_context_speaks_tls13_only(pair):
    cert, key = pair
    context = server_context(cert, key)
    assert context.minimum_version == T13
    for name in ("localhost", "127.0.0.1", "::1", "api.example.test"):
        session = handshake(context, client(cert), name)
        assert session.version() == "TLSv1.3"
        assert session.cipher()[0] in {
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_AES_128_GCM_SHA256",
        }
    with pytest.raises(ssl.SSLError) as refused:
        handshake(context, client(cert, maximum=T12))
    assert not isinstance(refused.value, ssl.SSLCertVerificationError)
    assert "PROTOCOL" in str(refused.value.reason)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(context, client(cert), "other.example.test")


def test_server_context_names_what_is_wrong(pair, tmp_path):
    cert, key = pair
    other = make_dev_certificate(tmp_path / "other")
    with pytest.raises(TLSError, match="KEY_VALUES_MISMATCH") as mismatch:
        server_context(cert, other.key_path)
    assert str(cert) in str(mismatch.value) and str(other.key_path) in str(mismatch.value)
    with pytest.raises(TLSError, match="No such file"):
        server_context(tmp_path / "missing.crt", key)
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    with pytest.raises(TLSError, match="not a PEM certificate chain and private key") as bad:
        server_context(not_pem, key)
    assert str(not_pem) in str(bad.value)


def test_certificate_expiry_is_read(pair, tmp_path):
    not_after = datetime.datetime.fromisoformat(certificate_not_after(pair[0]))
    remaining = not_after - datetime.datetime.now(datetime.UTC)
    assert (
        datetime.timedelta(days=DEFAULT_DAYS - 1)
        < remaining
        <= datetime.timedelta(days=DEFAULT_DAYS)
    )
    with pytest.raises(TLSError, match="cannot read TLS certificate"):
        certificate_not_after(pair[1])  # a key, not a certificate


# --- gunicorn -> uvicorn-worker -> uvicorn: the internals api.tls relies on -------------


@pytest.fixture
def make_worker():
    """Build ServiceWorkers as gunicorn's master does; restore uvicorn's loggers after."""
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.access")]
    saved = [(lg.handlers, lg.level, lg.propagate) for lg in loggers]

    def make(**settings: object) -> ServiceWorker:
        config = GunicornConfig()
        for name, value in settings.items():
            config.set(name, value)
        return ServiceWorker(0, os.getpid(), [], None, 30, config, Logger(config))

    yield make
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers, lg.propagate = handlers, propagate
        lg.setLevel(level)


async def _app(scope, receive, send) -> None:  # a stand-in ASGI app for Config.load()
    raise AssertionError("never called")


def test_uvicorn_takes_the_context_from_our_factory(make_worker, pair):
    assert "ssl_context_factory" in inspect.signature(uvicorn.Config).parameters
    cert, key = pair
    worker = make_worker(certfile=str(cert), keyfile=str(key))
    # uvicorn-worker copied gunicorn's certificate into uvicorn's Config...
    assert worker.config.ssl_certfile == str(cert) and worker.config.ssl_keyfile == str(key)
    assert worker.config.ssl_context_factory is uvicorn_context_factory
    # ...and uvicorn's Config.load(), run in the worker before serving, uses the factory.
    worker.config.app = _app
    worker.config.load()
    context = worker.config.ssl
    assert isinstance(context, ssl.SSLContext) and context.minimum_version == T13
    assert handshake(context, client(cert)).version() == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        handshake(context, client(cert, maximum=T12))


def test_without_a_certificate_the_worker_speaks_plain_http(make_worker):
    worker = make_worker()
    assert worker.config.ssl_context_factory is None
    worker.config.app = _app
    worker.config.load()
    assert worker.config.ssl is None


def test_gunicorn_client_certificate_settings_are_kept(make_worker, pair):
    cert, key = pair
    worker = make_worker(certfile=str(cert), keyfile=str(key), cert_reqs=2, ca_certs=str(cert))
    worker.config.app = _app
    worker.config.load()
    assert worker.config.ssl.verify_mode == ssl.CERT_REQUIRED
    assert worker.config.ssl.minimum_version == T13


def test_an_uvicorn_without_the_factory_is_refused(make_worker, pair, monkeypatch):
    # What an uvicorn older than 0.47 looks like to the worker: a Config with no
    # ssl_context_factory. TLS 1.2 would then be allowed silently, so the worker refuses.
    import uvicorn_worker._workers as workers

    class OldConfig:
        def __init__(self, **kwargs: object) -> None:
            self.__dict__.update(kwargs)

    monkeypatch.setattr(workers, "Config", OldConfig)
    with pytest.raises(RuntimeError, match=r"uvicorn >= 0\.47"):
        make_worker(certfile=str(pair[0]), keyfile=str(pair[1]))
    assert make_worker().config.__class__ is OldConfig  # plain HTTP needs nothing


def test_the_factory_needs_a_certificate(make_worker):
    worker = make_worker()
    with pytest.raises(TLSError, match="no certificate"):
        uvicorn_context_factory(worker.config, ssl.create_default_context)


def test_the_coalescing_transport_over_a_real_tls_connection(pair):
    """Head and body leave as one TLS write, in order, on uvloop's SSL transport."""
    cert, key = pair
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"

    async def run() -> bytes:
        loop = asyncio.get_running_loop()
        written: list[bytes] = []

        class Recording:
            """uvloop's SSL transport, recording what reaches it."""

            def __init__(self, transport) -> None:
                self.transport = transport

            def write(self, data) -> None:
                written.append(bytes(data))
                self.transport.write(data)

            def __getattr__(self, name: str):
                return getattr(self.transport, name)

        class Server(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                wrapped = CoalescingTransport(Recording(transport))  # type: ignore[arg-type]
                assert wrapped.get_extra_info("sslcontext") is not None
                wrapped.write(head)
                wrapped.write(b"hello")
                wrapped.write(head)
                wrapped.close()

        server = await loop.create_server(Server, "127.0.0.1", 0, ssl=server_context(cert, key))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client(cert), server_hostname="localhost"
        )
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
        received = await reader.read()
        writer.close()
        server.close()
        assert written == [head + b"hello", head]
        return received

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(run()) == head + b"hello" + head


# --- the development certificate --------------------------------------------------------


def test_dev_certificate_files_and_contents(tmp_path):
    directory = tmp_path / "a" / "tls"
    now = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    made = make_dev_certificate(
        directory, ["api.example.test", "10.1.2.3", "fd00::7", "localhost"], days=30, now=now
    )
    assert made.cert_path == directory / "tls.crt" and made.key_path == directory / "tls.key"
    assert stat.S_IMODE(made.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(made.cert_path.stat().st_mode) == 0o644
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert made.names == (
        "localhost",
        "127.0.0.1",
        "::1",
        "api.example.test",
        "10.1.2.3",
        "fd00::7",
    )
    certificate = x509.load_pem_x509_certificate(made.cert_path.read_bytes())
    key = load_pem_private_key(made.key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert certificate.public_key() == key.public_key()
    assert certificate.issuer == certificate.subject
    assert certificate.subject.rfc4514_string() == "O=ml-service development,CN=api.example.test"
    assert certificate.not_valid_after_utc == now + datetime.timedelta(days=30)
    assert certificate.not_valid_before_utc < now
    assert made.not_after == certificate.not_valid_after_utc
    basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    assert certificate.signature_hash_algorithm is not None
    assert certificate.signature_hash_algorithm.name == "sha256"


def test_dev_certificate_serves_its_names(tmp_path):
    made = make_dev_certificate(tmp_path, ["10.1.2.3"])
    context = server_context(made.cert_path, made.key_path)
    for name in ("localhost", "127.0.0.1", "::1", "10.1.2.3"):
        assert handshake(context, client(made.cert_path), name).version() == "TLSv1.3"
    subject = x509.load_pem_x509_certificate(made.cert_path.read_bytes()).subject
    assert subject.rfc4514_string() == "O=ml-service development,CN=localhost"


def test_an_existing_key_is_kept_unless_forced(tmp_path):
    first = make_dev_certificate(tmp_path)
    key_before = first.key_path.read_bytes()
    with pytest.raises(DevCertError, match="refusing to overwrite"):
        make_dev_certificate(tmp_path)
    assert first.key_path.read_bytes() == key_before
    second = make_dev_certificate(tmp_path, force=True)
    assert second.key_path.read_bytes() != key_before
    assert stat.S_IMODE(second.key_path.stat().st_mode) == 0o600
    server_context(second.cert_path, second.key_path)  # the new pair matches
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tls.crt", "tls.key"]  # no temp


@pytest.mark.parametrize(
    "host", ["bad host", "-lead.example", "a..b", "exa_mple.com", "", "x" * 64]
)
def test_bad_hosts_are_refused(host, tmp_path):
    with pytest.raises(DevCertError, match="neither an IP address nor a DNS name"):
        make_dev_certificate(tmp_path, [host])
    assert not any(tmp_path.iterdir())


def test_names_wildcards_and_duplicates():
    names = [str(n.value) for n in subject_alt_names(["*.svc.example", "LOCALHOST", "::1"])]
    assert names == ["localhost", "127.0.0.1", "::1", "*.svc.example"]


@pytest.mark.parametrize("days", [0, MAX_DAYS + 1])
def test_days_out_of_range(days, tmp_path):
    with pytest.raises(DevCertError, match="--days"):
        make_dev_certificate(tmp_path, days=days)


# --- the command line -------------------------------------------------------------------


def test_dev_cert_command(tmp_path, capsys):
    directory = tmp_path / "tls"
    status = cli.main(["tls", "dev-cert", "--dir", str(directory), "--host", "api.example.test"])
    out = capsys.readouterr().out
    assert status == 0
    assert f"TLS_CERT_FILE={directory / 'tls.crt'} TLS_KEY_FILE={directory / 'tls.key'}" in out
    assert "api.example.test" in out
    assert cli.main(["tls", "dev-cert", "--dir", str(directory)]) == 1
    assert "refusing to overwrite a key without --force" in capsys.readouterr().err
    assert cli.main(["tls", "dev-cert", "--dir", str(directory), "--force", "--days", "1"]) == 0
    assert cli.main(["tls", "dev-cert", "--dir", str(tmp_path / "x"), "--host", "a b"]) == 1
    assert "--host 'a b'" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli.main(["tls", "dev-cert", "--dir", str(blocker / "tls")]) == 1
    assert f"cannot write the certificate in {blocker / 'tls'}" in capsys.readouterr().err


@pytest.mark.parametrize("days", ["0", "826", "ten"])
def test_dev_cert_command_refuses_bad_days(days, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["tls", "dev-cert", "--dir", str(tmp_path), "--days", days])
    assert exited.value.code == 2
    assert "--days" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_dev_cert_help_tells_the_truth(capsys):
    with pytest.raises(SystemExit):
        cli.main(["tls", "dev-cert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default {DEFAULT_DIR})" in text
    assert f"1 to {MAX_DAYS} (default {DEFAULT_DAYS})" in text
    assert "mode 0600" in text and "localhost, 127.0.0.1, ::1" in text
    assert "replace an existing tls.key and tls.crt" in text
