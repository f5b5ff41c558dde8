"""Contract checks of the rendered Kubernetes manifests, for ``tests/deploy/test_k8s.py``.

Each check takes rendered objects (``tests.deploy.k8s``) and returns its problems as
sentences, empty when all is well, so a test asserts none and another test feeds it a
broken input to show the problem is found.

- ``schema_problems``: the Kubernetes schemas (``kubernetes-validate``, strict); the
  Prometheus operator's custom resources are skipped there and checked by
  ``custom_resource_problems`` (apiVersion, kind, the fields the operator needs).
- ``wiring_problems``: selectors select, ports resolve, the autoscaler's range holds the
  starting count, the ServiceMonitor's job is the one the alert rules read.
- ``probe_problems``: probes on public routes of the service, on its port, over TLS when
  it serves TLS; the ServiceMonitor on its metrics port.
- ``unread_variables``: names of an environment the service's settings parser never asks
  for (it runs the parser on the values, so a bad value raises as the pod would fail).
- ``path_problems``: paths on no volume, or written on a read-only one.
- ``secret_problems``: Secrets (or keys) the README's commands do not create.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import matplotlib
from kubernetes_validate.utils import ValidationError

from api.access import PUBLIC, ROUTE_ROLES
from api.settings import ServiceSettings, load_settings
from tests.deploy.k8s import (
    ROOT,
    Manifest,
    PodSandbox,
    RecordingEnviron,
    container,
    container_env,
    find,
    of_kind,
)
from tests.deploy.rules import load_rules

SERVICE = "ml-service"  # the Deployment, its Service, its container
REDIS = "ml-service-redis"
OPERATOR_API = "monitoring.coreos.com/v1"
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
GUNICORN_CONF = ROOT / "gunicorn.conf.py"

# Variables a pod's environment may hold that a library reads rather than the service,
# with the module whose source must name them.
LIBRARY_VARIABLES: dict[str, ModuleType] = {"MPLCONFIGDIR": matplotlib}


def unread_variables(environ: Mapping[str, str]) -> tuple[set[str], ServiceSettings]:
    """Names of ``environ`` the service's settings parser never asks for, and the settings.

    Raises:
        SettingsError: A value is unusable (the service would not start).
    """
    recording = RecordingEnviron({k: v for k, v in environ.items() if k not in LIBRARY_VARIABLES})
    settings = load_settings(recording)
    return set(environ) - recording.looked_up - set(LIBRARY_VARIABLES), settings


def object_name(item: Manifest) -> str:
    """An object's name, or its ``generateName`` prefix (a Job made with create)."""
    metadata = item["metadata"]
    return str(metadata.get("name") or metadata["generateName"])


def schema_problems(objects: list[Manifest], version: str) -> list[str]:
    """Every built-in object that the Kubernetes ``version`` schema (strict) refuses."""
    problems = []
    for item in objects:
        if item["kind"] in CUSTOM_KINDS:
            continue
        where = f"{item['kind']}/{object_name(item)}"
        try:
            kubernetes_validate.validate(item, version, strict=True)
        except ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            problems.append(f"{where}: {path}: {exc.message}")
        except kubernetes_validate.utils.SchemaNotFoundError as exc:
            problems.append(f"{where}: {exc.message}")
    return problems


DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SERVICE_MONITOR_SPEC = {"jobLabel", "targetLabels", "podTargetLabels", "endpoints", "selector",
                        "namespaceSelector", "sampleLimit"}  # fmt: skip
ENDPOINT_FIELDS = {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout",
                   "honorLabels", "relabelings", "metricRelabelings", "tlsConfig"}  # fmt: skip


def _string_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def custom_resource_problems(item: Manifest) -> list[str]:
    """Structural problems of a ServiceMonitor or PrometheusRule (operator v1 CRDs)."""
    where = f"{item.get('kind')}/{item.get('metadata', {}).get('name')}"
    problems = []
    if item.get("apiVersion") != OPERATOR_API or item.get("kind") not in CUSTOM_KINDS:
        return [f"{where}: not a {OPERATOR_API} ServiceMonitor or PrometheusRule"]
    metadata = item.get("metadata", {})
    if not DNS_NAME.match(str(metadata.get("name", ""))):
        problems.append(f"{where}: metadata.name is not a DNS label")
    if not _string_map(metadata.get("labels", {})):
        problems.append(f"{where}: labels are not strings")
    spec = item.get("spec")
    if not isinstance(spec, dict):
        return [*problems, f"{where}: no spec"]
    if item["kind"] == "ServiceMonitor":
        problems += [f"{where}: unknown spec.{key}" for key in set(spec) - SERVICE_MONITOR_SPEC]
        if not _string_map(spec.get("selector", {}).get("matchLabels")):
            problems.append(f"{where}: spec.selector.matchLabels is not a label map")
        endpoints = spec.get("endpoints")
        if not isinstance(endpoints, list) or not endpoints:
            problems.append(f"{where}: no endpoints")
        for index, endpoint in enumerate(endpoints or []):
            at = f"{where}: endpoints[{index}]"
            problems += [f"{at}: unknown field {key}" for key in set(endpoint) - ENDPOINT_FIELDS]
            if not isinstance(endpoint.get("port"), str):
                problems.append(f"{at}: port must name a Service port")
            if not str(endpoint.get("path", "/metrics")).startswith("/"):
                problems.append(f"{at}: path must start with /")
            if endpoint.get("scheme", "http") not in ("http", "https"):
                problems.append(f"{at}: scheme must be http or https")
            if "interval" in endpoint and not DURATION.match(str(endpoint["interval"])):
                problems.append(f"{at}: interval is not a duration")
        return problems
    groups = spec.get("groups")
    if set(spec) != {"groups"} or not isinstance(groups, list) or not groups:
        return [*problems, f"{where}: spec must be exactly a non-empty groups list"]
    names = [group.get("name") for group in groups]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        problems.append(f"{where}: group names must be unique strings")
    for group in groups:
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            problems.append(f"{where}: group {group.get('name')}: no rules")
            continue
        for index, rule in enumerate(rules):
            at = f"{where}: {group.get('name')}[{index}]"
            if ("alert" in rule) == ("record" in rule):
                problems.append(f"{at}: exactly one of alert and record")
            if not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
                problems.append(f"{at}: no expr")
            if "for" in rule and not DURATION.match(str(rule["for"])):
                problems.append(f"{at}: for is not a duration")
            for key in ("labels", "annotations"):
                if not _string_map(rule.get(key, {})):
                    problems.append(f"{at}: {key} are not strings")
    return problems


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _target_job() -> str:
    """The job name the rules expect of the service's scrape target."""
    jobs: set[str] = {
        match
        for rule in load_rules()
        for match in re.findall(r'job="([^"]+)"', rule.expr)  # e.g. up{job="ml-service"}
    }
    assert len(jobs) == 1, jobs
    return jobs.pop()


def wiring_problems(objects: list[Manifest]) -> list[str]:
    """Selectors that select nothing, ports that resolve nowhere, ranges that do not hold."""
    problems = []
    deployment = find(objects, "Deployment", SERVICE)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    main = container(deployment, SERVICE)
    port_numbers = {p["name"]: p["containerPort"] for p in main["ports"]}
    if not _selects(deployment["spec"]["selector"]["matchLabels"], pod_labels):
        problems.append("the Deployment's selector does not select its own pods")
    service = find(objects, "Service", SERVICE)
    if not _selects(service["spec"]["selector"], pod_labels):
        problems.append("Service ml-service does not select the service's pods")
    for port in service["spec"]["ports"]:
        if port["targetPort"] not in port_numbers:
            problems.append(f"Service port {port['name']}: no container port {port['targetPort']}")
    pdb = find(objects, "PodDisruptionBudget", SERVICE)
    if not _selects(pdb["spec"]["selector"]["matchLabels"], pod_labels):
        problems.append("the PodDisruptionBudget does not select the service's pods")
    hpa = find(objects, "HorizontalPodAutoscaler", SERVICE)["spec"]
    if hpa["scaleTargetRef"] != {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVICE}:
        problems.append("the autoscaler does not scale the Deployment")
    if not hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]:
        problems.append("the starting replicas are outside the autoscaler's range")
    cpu_target = {"type": "Utilization", "averageUtilization": 70}
    if hpa["metrics"] != [{"type": "Resource", "resource": {"name": "cpu", "target": cpu_target}}]:
        problems.append("the autoscaler does not target 70% CPU")
    monitor = find(objects, "ServiceMonitor", SERVICE)["spec"]
    monitored = [
        s for s in of_kind(objects, "Service") if _selects(monitor["selector"]["matchLabels"],
                                                            s["metadata"].get("labels", {}))
    ]  # fmt: skip
    if [s["metadata"]["name"] for s in monitored] != [SERVICE]:
        problems.append(f"the ServiceMonitor selects {[s['metadata']['name'] for s in monitored]}")
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    for endpoint in monitor["endpoints"]:
        target = service_ports.get(endpoint["port"], {}).get("targetPort")
        if target != "metrics":
            problems.append(f"the ServiceMonitor scrapes port {endpoint['port']}, not metrics")
    job = service["metadata"].get("labels", {}).get(monitor.get("jobLabel", ""), SERVICE)
    if job != _target_job():
        problems.append(f"the scrape job would be {job!r}, the rules read {_target_job()!r}")
    for key in ("targetLabels", "podTargetLabels"):
        if "environment" in monitor.get(key, []):
            problems.append(f"the ServiceMonitor's {key} would shadow the metrics' environment")
    if any(r.get("targetLabel") == "environment" for e in monitor["endpoints"]
           for r in e.get("relabelings", [])):  # fmt: skip
        problems.append("a relabeling writes the environment label")
    for redis in of_kind(objects, "Deployment"):
        if redis["metadata"]["name"] != REDIS:
            continue
        redis_pods = redis["spec"]["template"]["metadata"]["labels"]
        if not _selects(find(objects, "Service", REDIS)["spec"]["selector"], redis_pods):
            problems.append("Service ml-service-redis does not select the Redis pod")
        policy = find(objects, "NetworkPolicy", REDIS)["spec"]
        if not _selects(policy["podSelector"]["matchLabels"], redis_pods):
            problems.append("the NetworkPolicy does not guard the Redis pod")
        # Every peer: exactly a selector of the service's pods. No peer at all would
        # admit every source, and so would an empty selector or an ipBlock.
        peers = [peer for rule in policy.get("ingress", []) for peer in rule.get("from", [])]
        if not peers:
            problems.append("the NetworkPolicy admits every source")
        for peer in peers:
            labels = peer.get("podSelector", {}).get("matchLabels", {})
            if set(peer) != {"podSelector"} or not _selects(labels, pod_labels):
                problems.append("the NetworkPolicy admits more than the service's pods")
    return problems


def gunicorn_setting(name: str) -> Any:
    """A module-level constant of gunicorn.conf.py, read without running it."""
    tree = ast.parse(GUNICORN_CONF.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            name
        ]:
            return ast.literal_eval(node.value)
    raise KeyError(name)


def probe_problems(objects: list[Manifest]) -> list[str]:
    """Probes on routes the service has, public, on its port, over TLS when it serves TLS."""
    problems = []
    deployment = find(objects, "Deployment", SERVICE)
    main = container(deployment, SERVICE)
    env = container_env(objects, main)
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    bind_port = int(str(env.get("BIND", "0.0.0.0:8000")).rsplit(":", 1)[1])
    metrics_port = int(str(env.get("METRICS_PORT", "9090")))
    if sorted(ports.values()) != sorted({bind_port, metrics_port}):
        problems.append(f"container ports {ports} are not BIND's {bind_port} and {metrics_port}")
    tls = bool(env.get("TLS_CERT_FILE"))
    # Liveness must not depend on models (a bad artifact would restart pods in a loop);
    # readiness must (a pod without models must get no traffic): api/routes/health.py.
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        check = main.get(probe, {}).get("httpGet")
        if check is None:
            problems.append(f"no {probe} over HTTP")
            continue
        if check["path"] != path:
            problems.append(f"{probe} asks {check['path']}, not {path}")
        if ("GET", check["path"]) not in ROUTE_ROLES:
            problems.append(f"{probe}: GET {check['path']} is not a route of the service")
        elif ROUTE_ROLES[("GET", check["path"])] is not PUBLIC:
            problems.append(f"{probe}: GET {check['path']} needs a token the kubelet lacks")
        if ports.get(check["port"], check["port"]) != bind_port:
            problems.append(f"{probe} probes port {check['port']}, the service listens on BIND")
        if (check.get("scheme", "HTTP") == "HTTPS") != tls:
            problems.append(f"{probe} scheme {check.get('scheme', 'HTTP')} but TLS is {tls}")
        timing = main[probe]
        if timing.get("timeoutSeconds", 1) >= timing.get("periodSeconds", 10):
            problems.append(f"{probe}: the timeout is not shorter than the period")
    monitor = find(objects, "ServiceMonitor", SERVICE)
    for endpoint in monitor["spec"]["endpoints"]:
        service = find(objects, "Service", SERVICE)
        port = next(p for p in service["spec"]["ports"] if p["name"] == endpoint["port"])
        if ports.get(port["targetPort"]) != metrics_port:
            problems.append("the ServiceMonitor does not scrape METRICS_PORT")
        if endpoint.get("scheme", "http") != "http":
            problems.append("the master serves /metrics over plain HTTP")
    return problems


def readme_secrets(text: str) -> dict[str, set[str]]:
    """Secrets README.md's commands create: name -> the keys they name.

    A ``--from-file=DIR/`` names no key (one per file of the directory): enough for a
    Secret mounted whole, not for a reference to one of its keys.
    """
    text = re.sub(r"\\\n\s*", " ", text)  # shell line continuations
    created: dict[str, set[str]] = {}
    for kind, name, rest in re.findall(r"create secret (generic|tls) ([a-z0-9-]+)(.*)", text):
        keys = {"tls.crt", "tls.key"} if kind == "tls" else set()
        for flag, value in re.findall(r"--(from-file|from-literal)=(\S+)", rest):
            if flag == "from-literal" or "=" in value:
                keys.add(value.split("=", 1)[0])
            elif not value.endswith("/"):
                keys.add(Path(value).name)
        created[name] = keys
    return created


def secret_problems(references: set[tuple[str, str | None]], readme: str) -> list[str]:
    """References to Secrets (or keys) that README.md's commands do not create."""
    created = readme_secrets(readme)
    problems = []
    for name, key in sorted(references, key=str):
        if name not in created:
            problems.append(f"README.md creates no Secret {name}")
        elif key is not None and key not in created[name]:
            problems.append(f"README.md's {name} has no key {key} (name it: --from-file=KEY=)")
    return problems


def path_problems(objects: list[Manifest], sandbox: PodSandbox) -> list[str]:
    """Paths the service reads that lie on no volume, or writes on a read-only one."""
    main = container(find(objects, "Deployment", SERVICE), SERVICE)
    env = container_env(objects, main)
    problems = []
    # Where the service writes: its run state (the lead-id key's copy too), matplotlib's cache.
    written = {"RUN_DIR", "MPLCONFIGDIR"}
    paths: dict[str, str] = {k: v for k, v in env.items() if isinstance(v, str)
                             and v.startswith("/")}  # fmt: skip
    cache = json.loads(str(env.get("CACHE_CONFIG") or "{}"))
    if cache.get("secret_file"):
        paths["CACHE_CONFIG secret_file"] = cache["secret_file"]
    for variable, path in sorted(paths.items()):
        mount = sandbox.mount_of(path)
        if mount is None:
            problems.append(f"{variable}={path} is on the read-only root filesystem")
        elif variable in written and mount not in sandbox.writable:
            problems.append(f"{variable}={path} must be writable, {mount} is not")
        elif variable == "MODEL_PATH" and mount in sandbox.writable:
            problems.append(f"MODEL_PATH={path}: the pods must mount the store read-only")
    key = str(env.get("MONITORING_KEY", ""))
    if not key.startswith(str(env.get("RUN_DIR", "/")) + "/"):
        problems.append("MONITORING_KEY is not the copy in RUN_DIR (it must be 0600, ours)")
    return problems
