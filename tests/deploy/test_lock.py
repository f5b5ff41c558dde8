"""The dependency locks agree with pyproject.toml (deploy/lock.py writes and checks them).

``requirements-dev.lock`` is what ``make install`` installs and so what every test runs
against; ``requirements.lock`` is what the image installs; ``requirements-bench.lock`` is
for ``make bench``. The check is static, with no network: each lock pins every direct
requirement of pyproject.toml at a version its specifier allows, with hashes; it was
compiled from the current dependency sections (its ``pyproject-sha256`` header); and the
locks agree with each other. Each way a lock can go wrong is also fed to the check, so a
check that cannot fail would show.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK_SCRIPT = ROOT / "deploy" / "lock.py"


def _load_lock_module() -> ModuleType:
    # deploy/ is not a package: load the script by path, as `python deploy/lock.py` runs.
    spec = importlib.util.spec_from_file_location("deploy_lock", LOCK_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


lock = _load_lock_module()
LOCK_NAMES = [spec.name for spec in lock.LOCKS]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """pyproject.toml and the locks, copied where a test may break them."""
    for name in ["pyproject.toml", *LOCK_NAMES]:
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}: the test no longer breaks anything"
    path.write_text(text.replace(old, new, count))


def test_locks_agree_with_pyproject():
    assert lock.problems(ROOT) == []


def test_every_lock_pins_the_direct_requirements_it_serves():
    # The same facts as the check, read independently of its parser: the names each
    # lock must hold, and the test tools the image must not get.
    project = lock.read_pyproject(ROOT / "pyproject.toml")["project"]
    runtime = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    dev = {canonicalize_name(Requirement(r).name) for r in extras["dev"]}
    bench = {canonicalize_name(Requirement(r).name) for r in extras["bench"]}
    pinned = {
        name: {
            canonicalize_name(p)
            for p in re.findall(r"^([A-Za-z0-9._-]+)==", (ROOT / name).read_text(), re.M)
        }
        for name in LOCK_NAMES
    }
    assert runtime <= pinned["requirements.lock"]
    assert runtime | dev <= pinned["requirements-dev.lock"]
    assert runtime | dev | bench <= pinned["requirements-bench.lock"]
    assert not {"pytest", "mypy", "ruff", "hypothesis", "uv"} & pinned["requirements.lock"]


def test_uvicorn_is_pinned_and_bounded():
    # api/http_protocol.py and api/deadlines.py build on uvicorn's internals, so a new
    # uvicorn must be a deliberate step: bounded in pyproject.toml, pinned in every lock.
    pyproject = lock.read_pyproject(ROOT / "pyproject.toml")
    uvicorn = next(
        Requirement(r)
        for r in pyproject["project"]["dependencies"]
        if Requirement(r).name == "uvicorn"
    )
    assert any(s.operator in ("<", "<=", "==", "~=") for s in uvicorn.specifier), uvicorn
    for name in LOCK_NAMES:
        assert re.search(r"^uvicorn==\d", (ROOT / name).read_text(), re.M), name


def test_digest_ignores_order_and_spelling_but_not_content():
    pyproject = lock.read_pyproject(ROOT / "pyproject.toml")
    digest = lock.pyproject_digest(pyproject)
    reordered = {"project": dict(pyproject["project"])}
    reordered["project"]["dependencies"] = [
        r.replace(">=", " >= ") for r in reversed(pyproject["project"]["dependencies"])
    ]
    assert lock.pyproject_digest(reordered) == digest
    reordered["project"]["dependencies"] = [*reordered["project"]["dependencies"], "six"]
    assert lock.pyproject_digest(reordered) != digest


def test_a_new_dependency_needs_a_new_lock(copy: Path):
    edit(copy / "pyproject.toml", '"tzdata",', '"tzdata",\n    "sortedcontainers>=2",')
    found = "\n".join(lock.problems(copy))
    for name in LOCK_NAMES:
        assert f"{name} was not compiled from the dependencies of this pyproject.toml" in found
    assert "requirements.lock does not pin sortedcontainers" in found


def test_a_raised_lower_bound_is_caught(copy: Path):
    edit(copy / "pyproject.toml", '"orjson>=3.9"', '"orjson>=999"')
    found = lock.problems(copy)
    assert any(
        p.startswith("requirements.lock pins orjson==") and "orjson>=999" in p for p in found
    )


def test_a_hand_edited_pin_is_caught(copy: Path):
    # The header still matches: only the pins tell.
    edit(copy / "requirements.lock", "\nuvicorn==", "\nuvicorn==0.1.0\nnotuvicorn==")
    found = "\n".join(lock.problems(copy))
    assert "requirements.lock pins uvicorn==0.1.0, outside uvicorn[standard]" in found
    assert "requirements.lock pins uvicorn==0.1.0 but requirements-dev.lock pins" in found
    assert "was not compiled" not in found


def test_an_unpinned_or_unhashed_line_is_caught(copy: Path):
    text = (copy / "requirements-dev.lock").read_text()
    (copy / "requirements-dev.lock").write_text(text + "starlette>=0.37\nsix==1.16.0\n")
    found = "\n".join(lock.problems(copy))
    assert "requirements-dev.lock: starlette>=0.37 is not pinned to one version" in found
    assert "requirements-dev.lock: six==1.16.0 has no sha256 hash" in found


def test_a_missing_lock_is_caught(copy: Path):
    (copy / "requirements-bench.lock").unlink()
    assert "requirements-bench.lock is missing: run python deploy/lock.py" in lock.problems(copy)


def test_check_command_exits_nonzero_on_a_stale_lock(copy: Path, capsys):
    # `python deploy/lock.py --check` is what a person runs: offline, status and reasons.
    assert lock.main(["--check", "--root", str(copy)]) == 0
    assert "locks agree with pyproject.toml" in capsys.readouterr().out
    edit(copy / "pyproject.toml", '"orjson>=3.9"', '"orjson>=999"')
    assert lock.main(["--check", "--root", str(copy)]) == 1
    assert "orjson>=999" in capsys.readouterr().err
