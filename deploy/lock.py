"""Pin the dependencies of pyproject.toml into hash-checked lock files, or check the locks.

Three locks at the repository root, all for CPython 3.11 on Linux x86-64 (manylinux 2.28,
glibc 2.28 or newer: the python:3.11-slim image and every machine of this project):

| file | what | installed by |
| --- | --- | --- |
| ``requirements-dev.lock`` | runtime + ``dev`` extra | ``make install``: what ``make test`` tests |
| ``requirements.lock`` | runtime only | the Docker image (``deploy/docker/Dockerfile``) |
| ``requirements-bench.lock`` | runtime + ``dev`` + ``bench`` extras | ``make bench`` |

The dev lock is resolved first; the other two are resolved with it as a constraint, so a
package they share has the same version in all three: the image runs exactly what the
tests ran against. Every pin carries the sha256 of each file of that release, so pip
installs in hash-checking mode (a lock with hashes turns it on by itself).

Each lock starts with ``# pyproject-sha256: <hex>``, the digest of what the locks are
compiled from (``requires-python``, the dependencies, the locked extras, the target
platform; each list sorted, so reordering or reformatting pyproject.toml does not count).
``problems`` compares locks and pyproject.toml offline; ``tests/deploy/test_lock.py``
fails on any problem, so a dependency change in pyproject.toml needs a new lock.

Usage (uv comes with the ``dev`` extra; resolving needs the package index, ``--check``
does not)::

    python deploy/lock.py                       # re-resolve, keeping current pins if allowed
    python deploy/lock.py --upgrade             # newest versions pyproject.toml allows
    python deploy/lock.py --upgrade-package uvicorn
    python deploy/lock.py --check               # exit 1 if a lock disagrees with pyproject

The resolver is uv (``uv pip compile``) rather than pip-tools: uv resolves for a stated
target (``--python-version``, ``--python-platform``) whatever machine runs it, where
pip-compile resolves for the interpreter that runs it; and it takes seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.11"
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
DIGEST_PREFIX = "# pyproject-sha256: "
# Marker values of the target, for requirements of pyproject.toml that carry a marker.
TARGET_ENVIRONMENT = {
    "implementation_name": "cpython",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": f"{PYTHON_VERSION}.0",
    "python_version": PYTHON_VERSION,
    "sys_platform": "linux",
}


@dataclass(frozen=True)
class LockSpec:
    """One lock file: the extras it adds to the runtime dependencies, and its constraint."""

    name: str
    extras: tuple[str, ...]
    constrained_by: str | None
    purpose: str


DEV = LockSpec("requirements-dev.lock", ("dev",), None, "runtime + dev dependencies")
LOCKS = (
    DEV,
    LockSpec("requirements.lock", (), DEV.name, "runtime dependencies"),
    LockSpec("requirements-bench.lock", ("dev", "bench"), DEV.name, "runtime + dev + bench"),
)
LOCKED_EXTRAS = sorted({extra for spec in LOCKS for extra in spec.extras})


@dataclass
class Lock:
    """What a lock file holds."""

    digest: str | None = None
    pins: dict[str, Version] = field(default_factory=dict)  # canonical name -> version
    problems: list[str] = field(default_factory=list)  # lines that are not hashed pins


def read_pyproject(path: Path) -> dict[str, Any]:
    """Return the parsed pyproject.toml at ``path``."""
    with path.open("rb") as file:
        return tomllib.load(file)


def _canonical(requirements: Sequence[str]) -> list[str]:
    return sorted(str(Requirement(text)) for text in requirements)


def pyproject_digest(pyproject: Mapping[str, Any]) -> str:
    """Return the sha256 of everything the locks are compiled from (see the module doc)."""
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    source = {
        "requires-python": project.get("requires-python"),
        "dependencies": _canonical(project.get("dependencies", [])),
        "optional-dependencies": {e: _canonical(optional.get(e, [])) for e in LOCKED_EXTRAS},
        "target": [PYTHON_VERSION, PYTHON_PLATFORM],
    }
    return hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()


def requirements(pyproject: Mapping[str, Any], extras: Sequence[str]) -> list[Requirement]:
    """The direct requirements of the runtime and ``extras`` that apply to the target."""
    project = pyproject["project"]
    texts = list(project.get("dependencies", []))
    for extra in extras:
        texts += project.get("optional-dependencies", {}).get(extra, [])
    environment = {name: str(value) for name, value in default_environment().items()}
    environment.update(TARGET_ENVIRONMENT)
    found = [Requirement(text) for text in texts]
    return [r for r in found if r.marker is None or r.marker.evaluate(environment)]


def parse_lock(text: str) -> Lock:
    """Parse a lock written by this script (``name==version`` plus ``--hash`` options)."""
    lock = Lock()
    entries: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.startswith(DIGEST_PREFIX):
            lock.digest = line.removeprefix(DIGEST_PREFIX).strip()
        content = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if content.endswith("\\"):
            pending += content[:-1] + " "
            continue
        entry = (pending + content).strip()
        pending = ""
        if entry:
            entries.append(entry)
    for entry in entries:
        first, *options = entry.split()
        hashes = [o for o in options if o.startswith("--hash=sha256:")]
        try:
            requirement = Requirement(first)
        except InvalidRequirement:
            lock.problems.append(f"not a pinned requirement: {entry[:80]!r}")
            continue
        pinned = [s for s in requirement.specifier if s.operator == "=="]
        if len(pinned) != 1 or len(requirement.specifier) != 1 or "*" in pinned[0].version:
            lock.problems.append(f"{first} is not pinned to one version (name==version)")
            continue
        if not hashes or len(hashes) != len(options):
            lock.problems.append(f"{first} has no sha256 hash (or an option other than --hash)")
        lock.pins[canonicalize_name(requirement.name)] = Version(pinned[0].version)
    return lock


def problems(root: Path = ROOT) -> list[str]:
    """Every way the locks in ``root`` disagree with its pyproject.toml, or with each other."""
    pyproject = read_pyproject(root / "pyproject.toml")
    digest = pyproject_digest(pyproject)
    found: list[str] = []
    locks: dict[str, Lock] = {}
    for spec in LOCKS:
        path = root / spec.name
        if not path.is_file():
            found.append(f"{spec.name} is missing: run python deploy/lock.py")
            continue
        lock = locks[spec.name] = parse_lock(path.read_text())
        found += [f"{spec.name}: {problem}" for problem in lock.problems]
        if lock.digest != digest:
            found.append(
                f"{spec.name} was not compiled from the dependencies of this pyproject.toml "
                f"(pyproject-sha256 {lock.digest} != {digest}): run python deploy/lock.py"
            )
        for requirement in requirements(pyproject, spec.extras):
            name = canonicalize_name(requirement.name)
            version = lock.pins.get(name)
            if version is None:
                found.append(f"{spec.name} does not pin {requirement.name} ({requirement})")
            elif not requirement.specifier.contains(version, prereleases=True):
                found.append(
                    f"{spec.name} pins {requirement.name}=={version}, outside {requirement}"
                )
    for spec in LOCKS:
        base = spec.constrained_by
        if base is None or spec.name not in locks or base not in locks:
            continue
        pins, base_pins = locks[spec.name].pins, locks[base].pins
        for package in sorted(pins.keys() & base_pins.keys()):
            if pins[package] != base_pins[package]:
                found.append(
                    f"{spec.name} pins {package}=={pins[package]} "
                    f"but {base} pins {base_pins[package]}"
                )
    if DEV.name in locks and "requirements-bench.lock" in locks:
        missing = locks[DEV.name].pins.keys() - locks["requirements-bench.lock"].pins.keys()
        found += [f"requirements-bench.lock lacks {name} of {DEV.name}" for name in missing]
    return found


def header(spec: LockSpec, digest: str) -> str:
    """The comment lines a lock starts with."""
    target = f"CPython {PYTHON_VERSION} on Linux x86-64 ({PYTHON_PLATFORM})"
    lines = [
        f"# {spec.name}: {spec.purpose} of pyproject.toml, pinned with hashes",
        f"# for {target}.",
        "# Generated by `python deploy/lock.py` (uv pip compile); do not edit by hand.",
    ]
    if spec.constrained_by:
        lines.append(f"# Resolved with {spec.constrained_by} as constraints: shared pins agree.")
    lines.append(f"{DIGEST_PREFIX}{digest}")
    return "\n".join(lines) + "\n"


def compile_lock(spec: LockSpec, root: Path, upgrade: Sequence[str]) -> None:
    """Resolve one lock with ``uv pip compile`` and write it with its header.

    Raises:
        subprocess.CalledProcessError: uv failed (its message is on stderr).
    """
    command = [sys.executable, "-m", "uv", "pip", "compile", "pyproject.toml", "--quiet"]
    command += [f"--extra={extra}" for extra in spec.extras]
    if spec.constrained_by:
        command.append(f"--constraints={spec.constrained_by}")
    command += [
        f"--python-version={PYTHON_VERSION}",
        f"--python-platform={PYTHON_PLATFORM}",
        "--generate-hashes",
        "--no-header",
        f"--output-file={spec.name}",
        *upgrade,
    ]
    # uv reads the existing lock for its preferences: pins stay unless they must move.
    subprocess.run(command, cwd=root, check=True)
    path = root / spec.name
    body = path.read_text()
    digest = pyproject_digest(read_pyproject(root / "pyproject.toml"))
    path.write_text(header(spec, digest) + body)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the locks (offline)")
    parser.add_argument("--upgrade", action="store_true", help="newest allowed versions")
    parser.add_argument(
        "--upgrade-package", action="append", default=[], metavar="NAME", help="upgrade one"
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the repository (default: this script's)"
    )
    args = parser.parse_args(argv)
    if not args.check:
        try:
            import uv  # noqa: F401
        except ModuleNotFoundError:
            print("uv is not installed: pip install uv (the dev extra has it)", file=sys.stderr)
            return 2
        upgrade = ["--upgrade"] if args.upgrade else []
        upgrade += [f"--upgrade-package={name}" for name in args.upgrade_package]
        try:
            for spec in LOCKS:  # the dev lock first: the others are constrained by it
                compile_lock(spec, args.root, upgrade)
        except subprocess.CalledProcessError as exc:
            print(f"uv pip compile failed (exit {exc.returncode})", file=sys.stderr)
            return 1
    found = problems(args.root)
    for problem in found:
        print(problem, file=sys.stderr)
    if not found:
        print("locks agree with pyproject.toml: " + ", ".join(s.name for s in LOCKS))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
