"""A pod of ``deploy/k8s`` run on this machine, for ``tests/deploy/test_k8s.py``.

- ``Credentials``: the Secrets' contents, made by the commands ``deploy/k8s/README.md``
  gives (the ``ml-service`` CLI, run in process; random bytes for the 32-byte keys).
- ``run_init_containers``: an init container's command, run here with its paths
  translated into the pod's sandbox (``tests.deploy.k8s.PodSandbox``).
- ``pod_environment``: a container's environment as Kubernetes gives it, Secret values
  filled in and paths translated.
- ``RunningPod``: the service started with that environment, and the Redis it uses;
  ``local_url`` turns a Service's address in the cluster into the service's here, and
  ``scrape`` / ``sample`` read its metrics as the ServiceMonitor's scrape would.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from api.auth import issue_token
from api.cli import main as cli_main
from engine.store.signing import Keyring, SigningKey
from tests.deploy.k8s import (
    Manifest,
    PodSandbox,
    SecretRef,
    container,
    container_env,
    service_address,
)
from tests.deploy.k8s_checks import SERVICE
from tests.integration.service import ServiceProcess, metric_value


class Credentials:
    """The Secrets' contents, made by the commands README.md gives (in process)."""

    def __init__(self, directory: Path, redis_url: str) -> None:
        jwt_dir, keys_dir, tls_dir = directory / "jwt", directory / "keys", directory / "tls"
        for command in (
            ["auth", "keygen", "--dir", str(jwt_dir)],
            ["keys", "generate", "--dir", str(keys_dir)],
            ["tls", "dev-cert", "--dir", str(tls_dir), "--host", SERVICE],
        ):
            assert cli_main(command) == 0, command
        self.model_key = SigningKey.load(keys_dir / "model-signing.key")
        self.model_keyring = Keyring.load(keys_dir / "trusted")
        self.jwt_key = SigningKey.load(jwt_dir / "jwt-signing.key")
        self.ca_file = tls_dir / "tls.crt"
        admin = issue_token(self.jwt_key, "publish-job", "admin", 3600)
        self.secrets: dict[str, dict[str, bytes]] = {
            "ml-service-jwt-keys": _directory_secret(jwt_dir / "trusted"),
            "ml-service-model-keys": _directory_secret(keys_dir / "trusted"),
            "ml-service-tls": _directory_secret(tls_dir),
            "ml-service-cache-key": {"cache.key": secrets.token_bytes(32)},
            "ml-service-monitoring-key": {"lead-id.key": secrets.token_bytes(32)},
            "ml-service-admin-token": {"token": admin.encode()},
            "ml-service-redis-url": {"url": redis_url.encode()},
        }

    def value(self, reference: SecretRef) -> str:
        """The content of a Secret's key, as an environment variable holds it."""
        return self.secrets[reference.name][reference.key].decode()


def _directory_secret(directory: Path) -> dict[str, bytes]:
    """``kubectl create secret generic --from-file=DIR/``: one key per file."""
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}


def run_init_containers(spec: Manifest, sandbox: PodSandbox) -> None:
    """Run each init container's command here, its paths translated into the sandbox."""
    for item in spec.get("initContainers", []):
        command = [sandbox.local(part) for part in item["command"] + item.get("args", [])]
        assert command[0] == "python", f"{item['name']}: only python init containers run here"
        result = subprocess.run(
            [sys.executable, *command[1:]], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"init container {item['name']}: {result.stderr}"


def pod_environment(
    objects: list[Manifest], workload: Manifest, name: str, sandbox: PodSandbox, creds: Credentials
) -> dict[str, str]:
    """The container's environment with Secret values filled in and paths translated."""
    env: dict[str, str] = {}
    for key, value in container_env(objects, container(workload, name)).items():
        env[key] = creds.value(value) if isinstance(value, SecretRef) else sandbox.local(value)
    return env


class RunningPod:
    """The prod pod's service, started here (see the module docstring)."""

    def __init__(
        self, objects: list[Manifest], service: ServiceProcess, sandbox: PodSandbox, redis_url: str
    ) -> None:
        self.objects = objects
        self.service = service
        self.sandbox = sandbox
        # What the pods keep in Redis, read back (the fleet tier REDIS_URL points at).
        self.redis = redis.Redis.from_url(redis_url)


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples with ``labels`` (0 when there is none)."""
    try:
        return metric_value(text, name, **labels)
    except KeyError:
        return 0.0


def scrape(port: int, path: str) -> str:
    """``GET path`` on the metrics port, as the ServiceMonitor's scrape does."""
    conn = HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def local_url(pod: RunningPod, url: str) -> str:
    """``url`` (a Service's address in the cluster) as this machine's address of it."""
    service, _ = service_address(pod.objects, url)
    assert service["metadata"]["name"] == SERVICE
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{pod.service.port}"))
