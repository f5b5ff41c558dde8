"""The Kubernetes manifests (deploy/k8s): rendered, validated, held to the service, run.

Every kustomization (the base, both overlays, prod with the managed-Redis component) is
rendered by the real kustomize (``tests.deploy.k8s``), then:

- every object is validated against the Kubernetes schemas of the oldest and newest
  version we support (``kubernetes-validate``, strict). The Prometheus operator's
  ServiceMonitor and PrometheusRule are custom resources those schemas do not hold, so
  they get a structural check here (apiVersion, kind, the fields the operator needs);
- the committed PrometheusRule must be what ``deploy/k8s/generate_prometheusrule.py``
  writes from ``deploy/prometheus/alerts.yml``, the rules' one source;
- the objects must fit together (selectors select, ports resolve, the autoscaler's
  range holds the starting count, the ServiceMonitor's job is the one the alerts read)
  and fit the service: the probes hit public routes on the service's port, every
  environment variable is one the service's own settings parser asks for, the
  variables a pod needs are set, every path lies on a volume (writable only where the
  service writes), and every Secret the manifests read is one the README creates;
- the prod pod is laid out on this machine (its Secrets as files made by the README's
  commands, its volumes as directories), its init container's command runs, and the real
  service starts with the pod's environment (only the listen ports differ) and a real
  Redis; it must answer the probes and the ServiceMonitor's scrape, and the publish Job's
  two commands must activate a new version and switch the service to it.

Each contract check returns its problems, and a test feeds it a broken input to show the
problem is found: a check that cannot fail proves nothing.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import math
import os
import re
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from api.fleet_reload import STAMP_KEY
from engine.monitoring.redis_store import DEFAULT_PREFIX as MONITORING_PREFIX
from tests.deploy.k8s import (
    BASE_DIR,
    COMPONENTS_DIR,
    EXAMPLES_DIR,
    K8S_DIR,
    OVERLAYS,
    Manifest,
    PodSandbox,
    SecretRef,
    container,
    container_env,
    cpu_cores,
    find,
    load_file,
    of_kind,
    overlay_with_components,
    pod_spec,
    render,
    secret_references,
    service_address,
)
from tests.deploy.k8s_checks import (
    CUSTOM_KINDS,
    LIBRARY_VARIABLES,
    REDIS,
    SERVICE,
    custom_resource_problems,
    gunicorn_setting,
    object_name,
    path_problems,
    probe_problems,
    schema_problems,
    secret_problems,
    unread_variables,
    wiring_problems,
)
from tests.deploy.k8s_pod import (
    Credentials,
    RunningPod,
    local_url,
    pod_environment,
    run_init_containers,
    sample,
    scrape,
)
from tests.deploy.rules import RULES_FILE, load_rules
from tests.integration.service import ServiceProcess, metric_value
from tests.redis_server import RedisServer

# The oldest Kubernetes the manifests need (the kubelet's preStop sleep is on by default
# from 1.30) and the newest kubernetes-validate ships schemas for.
KUBERNETES_VERSIONS = ("1.30", "1.37")
RENDERINGS = ("base", *OVERLAYS, "prod+managed-redis")
DEPLOYED = (*OVERLAYS, "prod+managed-redis")  # what a cluster gets (the base sets no tag)
MODELS_CLAIM = "ml-service-models"
PUBLISH_JOB = EXAMPLES_DIR / "publish-models-job.yaml"
README = K8S_DIR / "README.md"
GENERATOR = K8S_DIR / "generate_prometheusrule.py"
IMAGE_USER = 10001  # the image's user (deploy/docker/Dockerfile)

# What a pod must set, and why the service's default does not do there.
REQUIRED = {
    "ENVIRONMENT": "the environment label of every metric: the rules and dashboard group by it",
    "WORKERS": "the default counts the node's cores, not the pod's CPU",
    "PIN_WORKERS": "pinning would stack every pod's workers on the node's first cores",
    "RUN_DIR": "the default is relative to the working directory, on a read-only root",
    "MODEL_PATH": "the models are on their own volume",
    "MODEL_TRUSTED_KEYS": "the trusted keys come from a Secret",
    "JWT_PUBLIC_KEYS": "the token keyring comes from a Secret",
    "TLS_CERT_FILE": "the service is reached over TLS",
    "TLS_KEY_FILE": "the service is reached over TLS",
    "REDIS_URL": "several pods share reloads, demand and the monitoring store",
    "CACHE_CONFIG": "the cache key must be the same in every pod",
    "MONITORING_CONFIG": "an outcome may reach any pod: the store must be shared",
    "MONITORING_KEY": "a shared store needs one lead-id key in every pod",
}


# --- fixtures ----------------------------------------------------------------------------


def _import_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_prometheusrule", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return _import_generator()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Manifest]]:
    """Every kustomization, rendered once."""
    overlays = K8S_DIR / "overlays"
    with_component = overlay_with_components(
        tmp_path_factory.mktemp("kustomize") / "prod-managed-redis",
        overlays / "prod",
        [COMPONENTS_DIR / "managed-redis"],
    )
    result = {"base": render(BASE_DIR), "prod+managed-redis": render(with_component)}
    result.update({name: render(overlays / name) for name in OVERLAYS})
    return result


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    # The in-cluster Redis stands in for a managed one's URL: nothing connects to it
    # outside the live tests, which start a real one.
    return Credentials(tmp_path_factory.mktemp("credentials"), "redis://127.0.0.1:6379/0")


# --- the PrometheusRule: one source of truth ----------------------------------------------


def test_prometheusrule_is_what_the_generator_writes(generator: ModuleType) -> None:
    committed = (BASE_DIR / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == generator.render(RULES_FILE.read_text(encoding="utf-8")), (
        "deploy/k8s/base/prometheusrule.yaml is stale: run "
        "python deploy/k8s/generate_prometheusrule.py"
    )
    assert generator.main(["--check"]) == 0


def test_generator_check_finds_a_stale_file(
    generator: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy whose last alert was dropped, as if alerts.yml had changed since.
    document = yaml.safe_load((BASE_DIR / "prometheusrule.yaml").read_text(encoding="utf-8"))
    document["spec"]["groups"][-1]["rules"].pop()
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text(generator.HEADER + yaml.safe_dump(document, sort_keys=False))
    monkeypatch.setattr(generator, "OUTPUT_FILE", stale)
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0


def test_generator_refuses_a_file_without_rule_groups(generator: ModuleType) -> None:
    for text in ("groups: []\n", "rules: []\n", "groups:\n  - name: x\n"):
        with pytest.raises(ValueError, match="group"):
            generator.render(text)


def test_prometheusrule_holds_every_rule_after_kustomize(rendered: dict[str, list[Manifest]]):
    # What the operator receives (after kustomize) is alerts.yml's groups, untouched:
    # templates ({{ $value }}), block scalars and quotes included.
    source = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    for name in RENDERINGS:
        rule = find(rendered[name], "PrometheusRule", SERVICE)
        assert rule["spec"]["groups"] == source, name
    assert len(load_rules()) == sum(len(group["rules"]) for group in source)


# --- schemas --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", RENDERINGS)
def test_objects_match_the_kubernetes_schemas(
    rendered: dict[str, list[Manifest]], name: str, version: str
) -> None:
    assert schema_problems(rendered[name], version) == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_publish_job_matches_the_kubernetes_schemas(version: str) -> None:
    assert schema_problems(load_file(PUBLISH_JOB), version) == []


def test_schema_check_finds_broken_objects(rendered: dict[str, list[Manifest]]) -> None:
    deployment = copy.deepcopy(find(rendered["prod"], "Deployment", SERVICE))
    deployment["spec"]["replicas"] = "three"
    typo = copy.deepcopy(find(rendered["prod"], "Deployment", SERVICE))
    pod_spec(typo)["containers"][0]["livenesProbe"] = {"httpGet": {"path": "/health"}}
    unknown = {"apiVersion": "v1", "kind": "Sevrice", "metadata": {"name": "x"}}
    problems = schema_problems([deployment, typo, unknown], KUBERNETES_VERSIONS[0])
    assert len(problems) == 3, problems
    assert "replicas" in problems[0]
    assert "livenesProbe" in problems[1]


@pytest.mark.parametrize("name", RENDERINGS)
def test_custom_resources_are_well_formed(rendered: dict[str, list[Manifest]], name: str) -> None:
    custom = [item for item in rendered[name] if item["kind"] in CUSTOM_KINDS]
    assert sorted(item["kind"] for item in custom) == sorted(CUSTOM_KINDS)
    assert [p for item in custom for p in custom_resource_problems(item)] == []


def test_custom_resource_check_finds_broken_objects(rendered: dict[str, list[Manifest]]) -> None:
    monitor = copy.deepcopy(find(rendered["prod"], "ServiceMonitor", SERVICE))
    monitor["spec"]["endpoints"][0].update(port=9090, interval="15 seconds", pathh="/x")
    rule = copy.deepcopy(find(rendered["prod"], "PrometheusRule", SERVICE))
    rule["spec"]["groups"][1]["rules"][0]["record"] = "both"
    rule["spec"]["groups"][1]["rules"][1]["labels"] = {"severity": 1}
    problems = custom_resource_problems(monitor) + custom_resource_problems(rule)
    for expected in ("port must name", "interval is not", "unknown field pathh",
                     "exactly one of alert and record", "labels are not strings"):  # fmt: skip
        assert any(expected in problem for problem in problems), (expected, problems)
    wrong_api = {**rule, "apiVersion": "monitoring.coreos.com/v1beta1"}
    assert custom_resource_problems(wrong_api) != []


# --- the objects fit together --------------------------------------------------------------


@pytest.mark.parametrize("name", RENDERINGS)
def test_objects_fit_together(rendered: dict[str, list[Manifest]], name: str) -> None:
    assert wiring_problems(rendered[name]) == []


def test_wiring_check_finds_broken_wiring(rendered: dict[str, list[Manifest]]) -> None:
    objects = copy.deepcopy(rendered["prod"])
    find(objects, "Service", SERVICE)["spec"]["selector"]["app.kubernetes.io/component"] = "web"
    find(objects, "HorizontalPodAutoscaler", SERVICE)["spec"]["minReplicas"] = 5
    monitor = find(objects, "ServiceMonitor", SERVICE)["spec"]
    monitor["jobLabel"] = "app.kubernetes.io/component"
    monitor["targetLabels"] = ["environment"]
    find(objects, "NetworkPolicy", REDIS)["spec"]["ingress"][0]["from"].append(
        {"ipBlock": {"cidr": "0.0.0.0/0"}}
    )
    problems = wiring_problems(objects)
    for expected in ("does not select the service's pods", "outside the autoscaler's range",
                     "the rules read", "shadow", "admits more"):  # fmt: skip
        assert any(expected in problem for problem in problems), (expected, problems)


def test_redis_is_in_cluster_or_managed(rendered: dict[str, list[Manifest]]) -> None:
    for name in RENDERINGS:
        redis_objects = [o for o in rendered[name] if o["metadata"]["name"] == REDIS]
        env = container_env(rendered[name], container(find(rendered[name], "Deployment",
                                                            SERVICE), SERVICE))  # fmt: skip
        if name.endswith("managed-redis"):
            assert redis_objects == [], name
            assert env["REDIS_URL"] == SecretRef("ml-service-redis-url", "url")
        else:
            assert sorted(o["kind"] for o in redis_objects) == [
                "Deployment", "NetworkPolicy", "Service"]  # fmt: skip
            url = env["REDIS_URL"]
            assert isinstance(url, str)
            redis_service, _ = service_address(rendered[name], url)  # names the Service
            assert redis_service["metadata"]["name"] == REDIS


# --- each overlay is its environment ----------------------------------------------------


@pytest.mark.parametrize("name", DEPLOYED)
def test_overlay_labels_everything_with_its_environment(
    rendered: dict[str, list[Manifest]], name: str
) -> None:
    objects = rendered[name]
    deployment = find(objects, "Deployment", SERVICE)
    environment = container_env(objects, container(deployment, SERVICE))["ENVIRONMENT"]
    assert environment == name.split("+", maxsplit=1)[0]
    for item in objects:
        labels = item["metadata"].get("labels", {})
        assert labels.get("environment") == environment, item["metadata"]["name"]
        assert item["metadata"]["namespace"] == f"ml-service-{environment}"
    assert deployment["spec"]["template"]["metadata"]["labels"]["environment"] == environment
    # Selectors stay environment-free: they cannot change on a live Deployment.
    assert "environment" not in deployment["spec"]["selector"]["matchLabels"]


def test_overlays_differ_in_environment_image_and_size(rendered: dict[str, list[Manifest]]):
    seen: dict[str, tuple[Any, ...]] = {}
    for name in OVERLAYS:
        deployment = find(rendered[name], "Deployment", SERVICE)
        images = {c["image"] for c in [*pod_spec(deployment)["initContainers"],
                                        *pod_spec(deployment)["containers"]]}  # fmt: skip
        assert len(images) == 1, images  # the init container runs the same image
        image = images.pop()
        assert re.fullmatch(r"ml-service:[\w][\w.-]*", image), image
        hpa = find(rendered[name], "HorizontalPodAutoscaler", SERVICE)["spec"]
        resources = container(deployment, SERVICE)["resources"]
        seen[name] = (image, deployment["spec"]["replicas"], hpa["minReplicas"],
                      hpa["maxReplicas"], json.dumps(resources, sort_keys=True))  # fmt: skip
    staging, prod = seen["staging"], seen["prod"]
    assert all(a != b for a, b in zip(staging, prod, strict=True)), seen
    base = find(rendered["base"], "Deployment", SERVICE)
    assert container(base, SERVICE)["image"] == "ml-service"  # the overlays tag it


# --- the pods fit the service ----------------------------------------------------------------


@pytest.mark.parametrize("name", DEPLOYED)
def test_probes_hit_public_routes_on_the_service_port(
    rendered: dict[str, list[Manifest]], name: str
) -> None:
    assert probe_problems(rendered[name]) == []


def test_probe_check_finds_wrong_probes(rendered: dict[str, list[Manifest]]) -> None:
    objects = copy.deepcopy(rendered["prod"])
    main = pod_spec(find(objects, "Deployment", SERVICE))["containers"][0]
    main["livenessProbe"]["httpGet"].update(path="/healthz", scheme="HTTP")
    main["readinessProbe"]["httpGet"].update(path="/api/v1/models", port="metrics")
    problems = probe_problems(objects)
    for expected in ("asks /healthz", "GET /healthz is not a route", "scheme HTTP but TLS",
                     "needs a token", "probes port metrics"):  # fmt: skip
        assert any(expected in problem for problem in problems), (expected, problems)


@pytest.mark.parametrize("name", DEPLOYED)
def test_shutdown_lets_gunicorn_drain(rendered: dict[str, list[Manifest]], name: str) -> None:
    deployment = find(rendered[name], "Deployment", SERVICE)
    spec = pod_spec(deployment)
    drain = container(deployment, SERVICE)["lifecycle"]["preStop"]["sleep"]["seconds"]
    graceful = gunicorn_setting("graceful_timeout")
    # The endpoint removal propagates during the sleep; then gunicorn's graceful
    # shutdown must end before the kubelet's SIGKILL.
    assert drain > 0
    assert spec["terminationGracePeriodSeconds"] > drain + graceful


@pytest.mark.parametrize("name", RENDERINGS)
def test_every_container_runs_unprivileged(rendered: dict[str, list[Manifest]], name: str):
    for workload in [*of_kind(rendered[name], "Deployment"), *load_file(PUBLISH_JOB)]:
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        if object_name(workload) != REDIS:
            assert spec["securityContext"]["runAsUser"] == IMAGE_USER
        for item in [*spec.get("initContainers", []), *spec["containers"]]:
            context = item["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, item["name"]
            assert context["allowPrivilegeEscalation"] is False, item["name"]
            assert context["capabilities"] == {"drop": ["ALL"]}, item["name"]
            assert {"requests", "limits"} <= set(item["resources"]), item["name"]


@pytest.mark.parametrize("name", DEPLOYED)
def test_workers_follow_the_requested_cpu(rendered: dict[str, list[Manifest]], name: str):
    main = container(find(rendered[name], "Deployment", SERVICE), SERVICE)
    env = container_env(rendered[name], main)
    requested = cpu_cores(str(main["resources"]["requests"]["cpu"]))
    assert env["WORKERS"] == str(math.ceil(requested))
    assert env["PIN_WORKERS"] == "0"


# --- environment variables and files --------------------------------------------------------


def _all_references(rendered: dict[str, list[Manifest]]) -> set[tuple[str, str | None]]:
    references: set[tuple[str, str | None]] = set()
    for objects in [*rendered.values(), load_file(PUBLISH_JOB)]:
        for workload in [*of_kind(objects, "Deployment"), *of_kind(objects, "Job")]:
            spec = pod_spec(workload)
            for item in [*spec.get("initContainers", []), *spec["containers"]]:
                references |= secret_references(spec, container_env(objects, item).values())
    return references


def test_readme_creates_every_secret_the_manifests_read(rendered: dict[str, list[Manifest]]):
    references = _all_references(rendered)
    assert {name for name, _ in references} >= {"ml-service-tls", "ml-service-redis-url"}
    assert secret_problems(references, README.read_text(encoding="utf-8")) == []


def test_secret_check_finds_missing_secrets() -> None:
    readme = "kubectl create secret generic a --from-file=x.key=x\n"
    references = {("a", "x.key"), ("a", "y.key"), ("b", None)}
    assert secret_problems(references, readme) == [
        "README.md's a has no key y.key (name it: --from-file=KEY=)",
        "README.md creates no Secret b",
    ]


@pytest.mark.parametrize("name", DEPLOYED)
def test_every_variable_is_one_the_service_reads(
    rendered: dict[str, list[Manifest]], name: str, credentials: Credentials, tmp_path: Path
) -> None:
    objects = rendered[name]
    deployment = find(objects, "Deployment", SERVICE)
    spec = pod_spec(deployment)
    models = tmp_path / "claim"
    models.mkdir()
    sandbox = PodSandbox.create(tmp_path / "pod", spec, credentials.secrets, {MODELS_CLAIM: models})
    run_init_containers(spec, sandbox)
    env = pod_environment(objects, deployment, SERVICE, sandbox, credentials)
    # The service's own parser runs on the pod's values: a bad one stops it here as it
    # would stop the pod.
    unread, settings = unread_variables(env)
    assert unread == set()
    for variable, module in LIBRARY_VARIABLES.items():
        assert variable in env
        assert variable in inspect.getsource(module), f"{module.__name__} reads no {variable}"
    missing = {variable: why for variable, why in REQUIRED.items() if not env.get(variable)}
    assert missing == {}
    assert settings.environment == name.split("+", maxsplit=1)[0]
    assert settings.workers == math.ceil(
        cpu_cores(str(container(deployment, SERVICE)["resources"]["requests"]["cpu"]))
    )
    assert settings.tls_cert_file is not None and settings.cache.secret_file is not None
    assert settings.monitoring.store == "redis" and settings.redis_url


def test_variable_check_finds_unread_variables(tmp_path: Path) -> None:
    unread, _ = unread_variables({"RUN_DIR": str(tmp_path), "REDIS_TIMEOUT": "50", "WORKER": "2"})
    assert unread == {"REDIS_TIMEOUT", "WORKER"}


@pytest.mark.parametrize("name", DEPLOYED)
def test_every_path_lies_on_a_volume(
    rendered: dict[str, list[Manifest]], name: str, credentials: Credentials, tmp_path: Path
) -> None:
    spec = pod_spec(find(rendered[name], "Deployment", SERVICE))
    sandbox = PodSandbox.create(tmp_path, spec, credentials.secrets, {MODELS_CLAIM: tmp_path})
    assert path_problems(rendered[name], sandbox) == []


def test_path_check_finds_misplaced_paths(
    rendered: dict[str, list[Manifest]], credentials: Credentials, tmp_path: Path
) -> None:
    objects = copy.deepcopy(rendered["prod"])
    config = find(objects, "ConfigMap", "ml-service-config")["data"]
    config.update(RUN_DIR="/var/lib/ml-service", MODEL_PATH="/run/ml-service/models")
    config["MONITORING_KEY"] = "/etc/ml-service/monitoring-key/lead-id.key"
    spec = pod_spec(find(objects, "Deployment", SERVICE))
    sandbox = PodSandbox.create(tmp_path, spec, credentials.secrets, {MODELS_CLAIM: tmp_path})
    problems = path_problems(objects, sandbox)
    for expected in (
        "RUN_DIR=/var/lib/ml-service is on the read-only root",
        "pods must mount the store read-only",
        "MONITORING_KEY is not the copy",
    ):
        assert any(expected in problem for problem in problems), (expected, problems)


# --- the prod pod, run -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_store(
    tmp_path_factory: pytest.TempPathFactory, demo_config: Any, synth_csv: Any,
    credentials: Credentials,
) -> Path:  # fmt: skip
    """The model volume: every demo vertical active, plus the version the Job activates."""
    from engine.training.pipeline import train_vertical

    root = tmp_path_factory.mktemp("model-volume")
    for vertical in demo_config.verticals:
        train_vertical(demo_config, vertical, synth_csv(vertical, 2500), "1.0.0", root,
                       credentials.model_key, activate_with=credentials.model_keyring)  # fmt: skip
    vertical, version = _job_activation()
    train_vertical(demo_config, vertical, synth_csv(vertical, 2500, seed=5), version, root,
                   credentials.model_key)  # fmt: skip
    return root


def _job_activation() -> tuple[str, str]:
    """The vertical and version the publish Job's activate command names."""
    job = load_file(PUBLISH_JOB)[0]
    command = container(job, "activate")["command"]
    assert command[:3] == ["ml-service", "models", "activate"], command
    return command[command.index("--vertical") + 1], command[command.index("--version") + 1]


@pytest.fixture(scope="module")
def prod_pod(
    rendered: dict[str, list[Manifest]],
    credentials: Credentials,
    trained_store: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningPod]:
    objects = rendered["prod"]
    deployment = find(objects, "Deployment", SERVICE)
    spec = pod_spec(deployment)
    workdir = tmp_path_factory.mktemp("prod-pod")
    sandbox = PodSandbox.create(
        workdir / "volumes", spec, credentials.secrets, {MODELS_CLAIM: trained_store}
    )
    run_init_containers(spec, sandbox)
    env = pod_environment(objects, deployment, SERVICE, sandbox, credentials)
    redis_server = RedisServer(workdir).start()
    # The in-cluster Redis Service is this machine's redis-server.
    service_address(objects, env["REDIS_URL"])
    env["REDIS_URL"] = redis_server.url
    context = ssl.create_default_context(cafile=str(credentials.ca_file))
    server = ServiceProcess({}, workdir, workers=int(env["WORKERS"]), ssl_context=context)
    # The pod's environment, whole, but for the listen ports (free ones here).
    server.env.update({k: v for k, v in env.items() if k not in ("BIND", "METRICS_PORT")})
    server.run_dir = Path(env["RUN_DIR"])
    try:
        server.start()
        pod = RunningPod(objects, server, sandbox, redis_server.url)
        yield pod
        pod.redis.close()
    finally:
        server.stop()
        redis_server.stop()


@pytest.mark.slow
def test_the_pod_answers_its_probes_and_itsscrape(prod_pod: RunningPod) -> None:
    objects, server = prod_pod.objects, prod_pod.service
    main = container(find(objects, "Deployment", SERVICE), SERVICE)
    client = server.client()  # HTTPS, trusting the certificate of the tls Secret
    try:
        for probe in ("livenessProbe", "readinessProbe"):
            reply = client.request("GET", main[probe]["httpGet"]["path"])
            assert reply.status == 200, (probe, reply)
        assert (
            client.request("GET", main["readinessProbe"]["httpGet"]["path"]).json["status"]
            == "ready"
        )
    finally:
        client.close()
    endpoint = find(objects, "ServiceMonitor", SERVICE)["spec"]["endpoints"][0]
    text = scrape(server.metrics_port, endpoint["path"])
    env = container_env(objects, main)
    workers = float(str(env["WORKERS"]))
    assert metric_value(text, "ml_workers_configured", environment="prod") == workers
    assert metric_value(text, "ml_redis_up", environment="prod") == 1
    # Every worker opened the Redis monitoring store with the init container's key copy.
    # A worker takes its reload slot (which the start waits for) before it opens the
    # store: wait for every worker's open, however long the machine takes.
    opens = "ml_monitoring_store_opens_total"
    deadline = time.monotonic() + 60
    while sample(text, opens, environment="prod") < workers and time.monotonic() < deadline:
        time.sleep(0.1)
        text = scrape(server.metrics_port, endpoint["path"])
    assert sample(text, opens, environment="prod") == workers
    assert sample(text, opens, environment="prod", outcome="failed") == 0
    key = Path(prod_pod.sandbox.local(str(env["MONITORING_KEY"])))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # ... in the Redis that REDIS_URL names.
    assert prod_pod.redis.exists(f"{MONITORING_PREFIX}layout")


@pytest.mark.slow
def test_the_publish_job_switches_the_fleet(
    prod_pod: RunningPod, credentials: Credentials, trained_store: Path, tmp_path: Path
) -> None:
    job = load_file(PUBLISH_JOB)[0]
    spec = pod_spec(job)
    sandbox = PodSandbox.create(tmp_path, spec, credentials.secrets, {MODELS_CLAIM: trained_store})
    assert "/models" in sandbox.writable  # the Job, unlike the pods, writes the store
    vertical, version = _job_activation()
    client = prod_pod.service.client()
    try:
        assert client.request("GET", "/ready").json["versions"][vertical] != version
        for name, program in (("activate", "ml-service"), ("reload", "python")):
            item = container(job, name)
            env = pod_environment([job], job, name, sandbox, credentials)
            if "RELOAD_URL" in env:
                env["RELOAD_URL"] = local_url(prod_pod, env["RELOAD_URL"])
            assert item["command"][0] == program
            executable = Path(sys.executable)
            binary = executable.parent / "ml-service" if program == "ml-service" else executable
            result = subprocess.run(
                [str(binary), *item["command"][1:]],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, (name, result.stdout, result.stderr)
        assert '"status":"success"' in result.stdout
        assert client.request("GET", "/ready").json["versions"][vertical] == version
        # The reload went out to the fleet through Redis (every other pod would follow).
        assert int(prod_pod.redis.get(STAMP_KEY) or 0) >= 1
    finally:
        client.close()
