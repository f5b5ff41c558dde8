"""Pre-flight checks of ``ml-service serve``: a start-up mistake is one line, not a traceback.

Before gunicorn starts (``api.cli``) and again in its master before the first fork
(``on_starting`` in ``gunicorn.conf.py``, for a service started with gunicorn directly),
the service checks what would otherwise fail later and louder:

| setting | checked by |
| --- | --- |
| every variable of ``api.settings`` | parsing it (``SettingsError`` names the variable) |
| ``CONFIG_PATH`` | loading the YAML as every worker will (``engine.config``) |
| ``MODEL_PATH`` (or the config's ``model_base_path``) | a readable directory |
| ``MODEL_TRUSTED_KEYS`` | loading the keyring that verifies models |
| ``JWT_PUBLIC_KEYS`` | loading the token keys |
| ``TLS_CERT_FILE`` / ``TLS_KEY_FILE`` | loading the pair into a TLS 1.3 context |
| ``LEAD_ARCHIVE_KEYS`` / ``LEAD_ARCHIVE_DIR`` | loading the keys, creating the directory |
| ``RUN_DIR`` | creating it and writing into it |
| ``BIND`` / ``METRICS_PORT`` | binding and listening on each, then letting go |

Without these, a missing key folder failed every worker in turn with a traceback inside a
JSON log line, a port in use cost gunicorn five seconds of retries (the service port) or a
traceback (``METRICS_PORT``), and a bad YAML printed a chained traceback. Now the first
problem found raises ``PreflightError``, whose message is one line: the setting, its
value, what is wrong and what to do. The CLI prints it as ``error: ...`` and exits 1 (its
convention for a failed command); ``gunicorn.conf.py`` exits 1 with the same line.

An empty model store is not a mistake: the service starts and reports not ready until
models are published and reloaded (``/ready``). A missing one is: it is a typo far more
often than a store yet to be mounted.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

# gunicorn's own address parsing, so that these checks read BIND exactly as gunicorn will.
from gunicorn.util import is_ipv6, parse_address  # type: ignore[import-untyped]

from api.settings import ServiceSettings, SettingsError, load_settings
from engine.config import ModelConfig, load_config
from engine.errors import ConfigError, EngineError

# Where the master serves /metrics: the default address of api.metrics_files.serve_metrics,
# which gunicorn.conf.py calls without one.
METRICS_ADDRESS = "0.0.0.0"
MAX_PORT = 65535


class PreflightError(EngineError):
    """A setting stops the service from starting; the message is one line that says so."""


def one_line(text: str) -> str:
    """Return ``text`` with every run of whitespace (newlines included) as one space."""
    return " ".join(text.split())


def settings_from(environ: Mapping[str, str] = os.environ) -> ServiceSettings:
    """Parse the service settings, turning a bad value into a ``PreflightError``.

    Raises:
        PreflightError: A variable has an unusable value; the message names it.
    """
    try:
        return load_settings(environ)
    except SettingsError as exc:
        raise PreflightError(f"{one_line(str(exc))} (see docs/configuration.md)") from None


def inherits_sockets(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether gunicorn will be handed its listening sockets instead of binding them.

    ``LISTEN_FDS``: systemd socket activation; ``GUNICORN_FD``: a new master after
    gunicorn's USR2 re-exec (whose old master still holds both ports).
    """
    return bool(environ.get("LISTEN_FDS") or environ.get("GUNICORN_FD"))


def check(settings: ServiceSettings, *, ports: bool = True) -> None:
    """Check every setting the service needs at start; raise on the first problem.

    Args:
        settings: The parsed settings.
        ports: Also check that ``BIND`` and ``METRICS_PORT`` can be listened on (off
            when the master inherits its sockets: they are in use, by design).

    Raises:
        PreflightError: The first problem, as one line naming the setting and value.
    """
    config = check_config(settings.config_path)
    check_model_store(settings, config)
    check_model_keys(settings.trusted_keys)
    check_token_keys(settings.jwt_public_keys)
    check_tls(settings)
    check_archive(settings)
    check_run_dir(settings.run_dir)
    if ports:
        check_ports(settings.bind, settings.metrics_port)


def check_config(path: Path) -> ModelConfig:
    """Load the model config as every worker will; return it.

    Raises:
        PreflightError: Unreadable, not YAML, or breaking a rule of ``engine.config``.
    """
    try:
        return load_config(path)
    except ConfigError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError):
            problem = f"cannot read it ({cause.strerror or cause})"
        elif isinstance(cause, yaml.MarkedYAMLError) and cause.problem_mark is not None:
            mark = cause.problem_mark
            problem = (
                f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: "
                f"{cause.problem or cause.context or 'syntax error'}"
            )
        elif isinstance(cause, yaml.YAMLError):
            problem = "not valid YAML"
        else:
            # engine.config's message is "config <path>: <rule broken>"; keep the rule.
            problem = str(exc).removeprefix(f"config {path}: ")
        raise PreflightError(
            f"CONFIG_PATH={path}: {one_line(problem)}; fix the file or point CONFIG_PATH at "
            "a valid model config (docs/configuration.md)"
        ) from None


def check_model_store(settings: ServiceSettings, config: ModelConfig) -> None:
    """The model store must be a readable directory (it may still be empty).

    Raises:
        PreflightError: It does not exist, is not a directory, or cannot be read.
    """
    if settings.model_path is not None:
        root, label = settings.model_path, f"MODEL_PATH={settings.model_path}"
    else:
        root = Path(config.model_base_path)
        label = (
            f"MODEL_PATH is unset and model_base_path={root} (CONFIG_PATH={settings.config_path})"
        )
    if not root.exists():
        problem = "no such directory"
    elif not root.is_dir():
        problem = "not a directory"
    elif not os.access(root, os.R_OK | os.X_OK):
        problem = "not readable by this user"
    else:
        return
    raise PreflightError(
        f"{label}: {problem}; set MODEL_PATH to the model store that `ml-service train` "
        "publishes to (one folder per vertical)"
    )


def _keys(setting: str, path: Path, load: Callable[[Path], object], fix: str) -> None:
    """Run ``load(path)``; turn a missing path or a ``StoreError`` into a ``PreflightError``."""
    if not path.exists():
        problem = "no such file or directory"
    else:
        try:
            load(path)
        except EngineError as exc:
            problem = one_line(str(exc))
        else:
            return
    raise PreflightError(f"{setting}={path}: {problem}; {fix}")


def check_model_keys(path: Path) -> None:
    """``MODEL_TRUSTED_KEYS`` must hold the public keys that verify models.

    Raises:
        PreflightError: Missing, empty, or a file that is not an Ed25519 public key.
    """
    from engine.store.signing import Keyring

    _keys(
        "MODEL_TRUSTED_KEYS",
        path,
        Keyring.load,
        "point it at the folder of model signing public keys (`ml-service keys generate "
        "--dir DIR` writes DIR/trusted/<key-id>.pub)",
    )


def check_token_keys(path: Path) -> None:
    """``JWT_PUBLIC_KEYS`` must hold at least one usable token key.

    Raises:
        PreflightError: Missing, empty, every key retired, or a malformed file.
    """
    from api.token_keys import load_token_keys

    _keys(
        "JWT_PUBLIC_KEYS",
        path,
        load_token_keys,
        "point it at the token keys' public folder (`ml-service auth keygen --dir DIR` "
        "writes DIR/trusted)",
    )


def check_tls(settings: ServiceSettings) -> None:
    """With TLS on, the certificate and key must load as a pair.

    ``api.settings`` has already checked that both or neither are set, and readable.

    Raises:
        PreflightError: Not PEM, or the key does not match the certificate.
    """
    if settings.tls_cert_file is None:
        return
    from api.tls import TLSError, server_context

    try:
        server_context(settings.tls_cert_file, settings.tls_key_file)
    except TLSError as exc:
        raise PreflightError(
            f"TLS_CERT_FILE / TLS_KEY_FILE: {one_line(str(exc))}; set both to a matching PEM "
            "certificate chain and private key (`ml-service tls dev-cert` makes a pair for "
            "local use)"
        ) from None


def check_archive(settings: ServiceSettings) -> None:
    """With ``LEAD_ARCHIVE_DIR`` set: a usable key first, then the directory (created).

    Raises:
        PreflightError: No usable key (the directory is then left uncreated), or the
            directory cannot be created or written; the message names the variable.
    """
    if settings.lead_archive_dir is None:
        return
    from engine.archive.errors import ArchiveError
    from engine.archive.keys import service_keys
    from engine.archive.segments import prepare_directory

    try:
        service_keys(settings.lead_archive_keys)
        prepare_directory(settings.lead_archive_dir)
    except ArchiveError as exc:
        raise PreflightError(one_line(str(exc))) from None


def check_run_dir(run_dir: Path) -> None:
    """``RUN_DIR`` (reload state, metrics files) must be a directory this user can write.

    Raises:
        PreflightError: It cannot be created, or is not writable.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = f"cannot create it ({exc.strerror or exc})"
    else:
        if os.access(run_dir, os.W_OK | os.X_OK):
            return
        problem = "not writable by this user"
    raise PreflightError(
        f"RUN_DIR={run_dir}: {problem}; set RUN_DIR to a directory the service can write"
    )


def check_ports(bind: str, metrics_port: int) -> None:
    """Listen on the service address and the metrics port, then let go of both.

    Only a TCP ``BIND`` is checked (``unix:PATH`` and ``fd://N`` are not ports).

    Raises:
        PreflightError: An address is malformed, in use, not of this machine, or needs
            privileges; or ``METRICS_PORT`` is the service's own port.
    """
    try:
        address: object = parse_address(bind)
    except RuntimeError as exc:  # gunicorn's message for a port that is not a number
        raise PreflightError(
            f"BIND={bind}: {one_line(str(exc)).rstrip('.')}; use HOST:PORT, e.g. 0.0.0.0:8000"
        ) from None
    if isinstance(address, tuple):
        host, port = str(address[0]), int(address[1])
        if not 0 <= port <= MAX_PORT:
            raise PreflightError(f"BIND={bind}: port {port} is not 0-{MAX_PORT}; use HOST:PORT")
        if port == metrics_port and port != 0:
            raise PreflightError(
                f"METRICS_PORT={metrics_port}: the same port as BIND={bind}; give /metrics "
                "a port of its own (default 9090)"
            )
        _try_listen("BIND", bind, host, port)
    _try_listen("METRICS_PORT", str(metrics_port), METRICS_ADDRESS, metrics_port)


def _try_listen(setting: str, value: str, host: str, port: int) -> None:
    # The family gunicorn picks for a host (a name is resolved as IPv4, as gunicorn does).
    family = socket.AF_INET6 if is_ipv6(host) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            # SO_REUSEADDR, as gunicorn and the metrics server set it: a port left in
            # TIME_WAIT by the last run is free to them, so it must be free to this check
            # too (without it, a quick restart would be refused); a listener is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1)
    except socket.gaierror as exc:
        problem, fix = f"cannot resolve host {host!r} ({exc.strerror})", "use an IP address"
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            problem = f"port {port} is already in use on {host}"
            fix = (
                f"stop the process listening there (`ss -ltnp 'sport = :{port}'` shows it) "
                f"or set {setting} to a free port"
            )
        elif exc.errno == errno.EACCES:
            problem = f"port {port} needs privileges to listen on"
            fix = "use a port above 1023 or grant the service CAP_NET_BIND_SERVICE"
        elif exc.errno == errno.EADDRNOTAVAIL:
            problem = f"{host} is not an address of this machine"
            fix = "use 0.0.0.0 (every interface) or one of this machine's addresses"
        else:
            problem = f"cannot listen on {host}:{port} ({exc.strerror or exc})"
            fix = f"set {setting} to another address"
    else:
        return
    raise PreflightError(f"{setting}={value}: {problem}; {fix}")
