"""docs/configuration.md lists exactly what the code reads, with the code's defaults.

- Environment variables: every variable read in ``api/``, ``engine/`` and
  ``gunicorn.conf.py`` (found by walking their syntax trees: ``environ.get``,
  ``environ[...]``, ``environ.setdefault``, ``getenv`` and helpers called as
  ``helper(environ, "NAME", ...)``, names given directly or through a module constant)
  has a row in the page's environment tables, and every row names one of them. Literal
  defaults match what ``load_settings({})`` (or the code constant) gives.
- ``MONITORING_CONFIG`` and ``CACHE_CONFIG``: the keys each parser accepts (as its own
  "unknown key ... (known: ...)" error lists them) are exactly the page's, and each
  documented default, fed back to the parser, gives the parser's default.
- The model config: every key of the msgspec structs of ``engine/config.py`` (walked from
  ``ModelConfig`` with ``msgspec.inspect``) has a row, every row is a key, and each row's
  default is the struct field's.
- Every relative link on the page resolves (``tests/unit/test_runbooks.py``'s check).

Each check returns its problems: a test asserts none on the real page and code, another
feeds a broken input and asserts the problem is found.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from api.cache_config import parse_cache_config
from api.monitoring_config import parse_monitoring_config
from api.settings import DEFAULT_JWT_DIR, JWT_KEY_NAME, ServiceSettings, load_settings
from engine.config import ModelConfig
from engine.settings import DEFAULT_SIGNING_KEY

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
SOURCES = (ROOT / "api", ROOT / "engine", ROOT / "gunicorn.conf.py")

ENV_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|", re.MULTILINE)
KEY_ROW = re.compile(r"^\| `([a-z_<>.\[\]]+)` \| ([^|]*) \|", re.MULTILINE)
LITERAL = re.compile(r"^`([^`]+)`$")
PLACEHOLDER = re.compile(r"<[a-z_]*>")
# ServiceSettings fields not named after their variable.
FIELDS = {"MODEL_TRUSTED_KEYS": "trusted_keys"}


class _Required:
    """The default of a config key that has none."""

    def __repr__(self) -> str:
        return "required"


REQUIRED = _Required()


# --- the page ---------------------------------------------------------------------------


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next(
        (i for i in range(start, len(lines)) if re.match(rf"^#{{1,{level}}} ", lines[i])),
        len(lines),
    )
    return "\n".join(lines[start:end])


def env_rows(text: str) -> dict[str, str]:
    """Variable -> default cell, from the tables of "## Environment variables"."""
    return {
        name: cell.strip()
        for name, cell in ENV_ROW.findall(section(text, "## Environment variables"))
    }


def key_rows(text: str) -> dict[str, str]:
    """Key path (placeholders as ``<>``) -> default cell, from a table of key rows."""
    return {PLACEHOLDER.sub("<>", key): cell.strip() for key, cell in KEY_ROW.findall(text)}


# --- what the code reads ----------------------------------------------------------------


def _module(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def _files(sources: tuple[Path, ...]) -> Iterator[Path]:
    for source in sources:
        yield from sorted(source.rglob("*.py")) if source.is_dir() else [source]


def _is_environ(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "environ") or (
        isinstance(node, ast.Attribute) and node.attr == "environ"
    )


def _constants(trees: dict[Path, ast.Module], root: Path) -> dict[tuple[str, str], str]:
    """Module-level ``NAME = "string"`` assignments, by (module, NAME)."""
    constants = {}
    for path, tree in trees.items():
        for statement in tree.body:
            if not isinstance(statement, ast.Assign):
                continue
            value = statement.value
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                continue
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    constants[(_module(path, root), target.id)] = value.value
    return constants


def _read_argument(node: ast.AST) -> ast.expr | None:
    """The expression naming the variable, if ``node`` reads the environment."""
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
        return node.slice if _is_environ(node.value) else None
    if not isinstance(node, ast.Call):
        return None
    if len(node.args) >= 2 and _is_environ(node.args[0]):
        return node.args[1]  # a helper: _int(environ, "NAME", ...)
    if isinstance(node.func, ast.Attribute) and node.args:
        if node.func.attr in ("get", "setdefault", "pop") and _is_environ(node.func.value):
            return node.args[0]
        if node.func.attr == "getenv":
            return node.args[0]
    return None


def env_reads(sources: tuple[Path, ...], root: Path) -> dict[str, list[str]]:
    """Every environment variable the sources read -> where (``file:line``)."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in _files(sources)}
    constants = _constants(trees, root)
    reads: dict[str, list[str]] = {}
    for path, tree in trees.items():
        module = _module(path, root)
        imported = {
            alias.asname or alias.name: (statement.module, alias.name)
            for statement in ast.walk(tree)
            if isinstance(statement, ast.ImportFrom) and statement.module
            for alias in statement.names
        }
        for node in ast.walk(tree):
            argument = _read_argument(node)
            name = None
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                name = argument.value
            elif isinstance(argument, ast.Name):  # a constant of this module, or imported
                source = imported.get(argument.id)
                name = constants.get((module, argument.id)) or (
                    constants.get(source) if source else None
                )
            if name is not None:
                where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
                reads.setdefault(name, []).append(where)
    return reads


def literal_defaults(sources: tuple[Path, ...]) -> dict[str, str]:
    """``environ.get("NAME", "x")`` and ``environ.setdefault("NAME", "x")`` defaults."""
    found = {}
    for path in _files(sources):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "setdefault")
                and _is_environ(node.func.value)
                and len(node.args) == 2
            ):
                name, value = node.args
                if isinstance(name, ast.Constant) and isinstance(value, ast.Constant):
                    found[str(name.value)] = str(value.value)
    return found


def code_env_defaults(names: set[str]) -> dict[str, object]:
    """The default of each variable where the code has one value for it."""
    settings = load_settings({})
    defaults: dict[str, object] = dict(literal_defaults(SOURCES))
    for name in names:
        field = FIELDS.get(name, name.lower())
        if field in ServiceSettings.__struct_fields__:
            defaults[name] = getattr(settings, field)
    defaults["MODEL_SIGNING_KEY"] = DEFAULT_SIGNING_KEY
    defaults["JWT_SIGNING_KEY"] = DEFAULT_JWT_DIR / JWT_KEY_NAME
    return defaults


# --- the checks -------------------------------------------------------------------------


def same(literal: str, value: object) -> bool:
    if isinstance(value, bool):
        return literal.lower() in (("1", "true") if value else ("0", "false"))
    if isinstance(value, int | float):
        try:
            return float(literal) == float(value)
        except ValueError:
            return False
    return literal == str(value)


def env_problems(
    rows: dict[str, str], reads: dict[str, list[str]], defaults: dict[str, object]
) -> list[str]:
    problems = [
        f"{name} is read ({', '.join(reads[name])}) but not documented"
        for name in sorted(set(reads) - set(rows))
    ]
    problems += [
        f"{name} is documented but the code does not read it"
        for name in sorted(set(rows) - set(reads))
    ]
    for name, cell in sorted(rows.items()):
        literal = LITERAL.match(cell)
        if literal:
            if name not in defaults:
                problems.append(f"{name}: default {cell} but the test knows no code default")
            elif not same(literal.group(1), defaults[name]):
                problems.append(
                    f"{name}: documented default {cell}, code default {defaults[name]!r}"
                )
        elif cell.startswith("unset"):
            value = defaults.get(name)
            if value is not None and not isinstance(value, msgspec.Struct):
                problems.append(f"{name}: documented unset, code default {value!r}")
    return problems


def json_keys(parse: Callable[[str], object], nested: str = "") -> list[str]:
    """The keys a JSON setting's parser accepts, as its unknown-key error lists them."""
    probe = {"__probe__": 1}
    document = {nested: probe} if nested else probe
    with pytest.raises(ValueError, match=r"\(known: ") as refused:
        parse(json.dumps(document))
    known = re.search(r"\(known: ([^)]*)\)", str(refused.value))
    assert known is not None
    prefix = f"{nested}." if nested else ""
    return [f"{prefix}{key}" for key in known.group(1).split(", ")]


def nest(path: str, value: object) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    return {head: nest(rest, value) if rest else value}


def json_problems(
    rows: dict[str, str], keys: set[str], parse: Callable[[str | None], object]
) -> list[str]:
    problems = [f"key {k} is accepted but not documented" for k in sorted(keys - set(rows))]
    problems += [f"key {k} is documented but not accepted" for k in sorted(set(rows) - keys)]
    for key, cell in sorted(rows.items()):
        literal = LITERAL.match(cell)
        if literal and key in keys:
            given = parse(json.dumps(nest(key, yaml.safe_load(literal.group(1)))))
            if given != parse(None):
                problems.append(f"key {key}: documented default {cell} is not the parser's default")
    return problems


def config_keys(struct: type[msgspec.Struct]) -> dict[str, object]:
    """Every key path of the model config -> its default (``REQUIRED`` when none)."""
    found: dict[str, object] = {}

    def walk(info: msgspec.inspect.Type, prefix: str) -> None:
        kinds = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
        for kind in kinds:
            if isinstance(kind, msgspec.inspect.StructType):
                for field in kind.fields:
                    path = f"{prefix}{field.encode_name}"
                    if field.default is not msgspec.NODEFAULT:
                        found[path] = field.default
                    elif field.default_factory is not msgspec.NODEFAULT:
                        found[path] = field.default_factory()
                    else:
                        found[path] = REQUIRED
                    walk(field.type, f"{path}.")
            elif isinstance(kind, msgspec.inspect.DictType):
                walk(kind.value_type, f"{prefix}<>.")
            elif isinstance(kind, msgspec.inspect.ListType):
                walk(kind.item_type, f"{prefix.removesuffix('.')}[].")

    walk(msgspec.inspect.type_info(struct), "")
    return found


def config_problems(rows: dict[str, str], keys: dict[str, object]) -> list[str]:
    problems = [f"config key {k} is not documented" for k in sorted(set(keys) - set(rows))]
    problems += [
        f"config key {k} is documented but not a key" for k in sorted(set(rows) - set(keys))
    ]
    for key, cell in sorted(rows.items()):
        if key not in keys:
            continue
        default = keys[key]
        literal = LITERAL.match(cell)
        if default is REQUIRED:
            ok = cell == "required"
        elif default is None:
            ok = cell.startswith("unset")
        elif literal is None:
            ok = False
        elif isinstance(default, msgspec.Struct):
            # A block whose every key has a default: `{}` means exactly that.
            ok = (
                yaml.safe_load(literal.group(1)) == {}
                and msgspec.convert({}, type(default)) == default
            )
        else:
            ok = yaml.safe_load(literal.group(1)) == msgspec.to_builtins(default)
        if not ok:
            problems.append(
                f"config key {key}: documented default {cell}, code default {default!r}"
            )
    return problems


# --- on the real page and code ----------------------------------------------------------


@pytest.fixture(scope="module")
def page() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def reads() -> dict[str, list[str]]:
    return env_reads(SOURCES, ROOT)


def test_the_scan_finds_every_way_of_reading(reads: dict[str, list[str]]) -> None:
    # Directly, through a helper, through a module constant, through an imported one.
    assert {"BIND", "METRICS_PORT", "MONITORING_CONFIG", "LEAD_ARCHIVE_KEYS"} <= set(reads)
    assert any(where.startswith("engine/cli/archive.py") for where in reads["LEAD_ARCHIVE_KEYS"])
    assert any(where.startswith("gunicorn.conf.py") for where in reads["OMP_NUM_THREADS"])


def test_every_variable_read_is_documented_with_its_default(
    page: str, reads: dict[str, list[str]]
) -> None:
    rows = env_rows(page)
    defaults = code_env_defaults(set(reads))
    assert env_problems(rows, reads, defaults) == []
    compared = [name for name, cell in rows.items() if LITERAL.match(cell)]
    assert len(compared) >= 15  # most defaults are literals, checked against the code


@pytest.mark.parametrize(
    ("heading", "parse", "nested"),
    [
        ("### MONITORING_CONFIG", parse_monitoring_config, ("", "thresholds", "windows")),
        ("### CACHE_CONFIG", parse_cache_config, ("",)),
    ],
)
def test_json_settings_document_every_key(
    page: str, heading: str, parse: Callable[[str | None], object], nested: tuple[str, ...]
) -> None:
    keys = {key for prefix in nested for key in json_keys(parse, prefix)} - set(nested)
    rows = key_rows(section(page, heading))
    assert len(rows) >= 5
    assert json_problems(rows, keys, parse) == []


def test_every_config_key_is_documented_with_its_default(page: str) -> None:
    keys = config_keys(ModelConfig)
    assert len(keys) > 50
    rows = key_rows(section(page, "### Keys"))
    assert config_problems(rows, keys) == []


# --- the checks find what they look for -------------------------------------------------


def test_env_check_reports_missing_extra_and_wrong_defaults(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "names.py").write_text('NAME = "FROM_CONSTANT"\n')
    (package / "mod.py").write_text(
        "import os\n"
        "from pkg.names import NAME\n"
        'A = os.environ.get("DIRECT")\n'
        'B = os.getenv("VIA_GETENV")\n'
        'C = os.environ["SUBSCRIPT"]\n'
        'D = _int(os.environ, "VIA_HELPER", 3)\n'
        "E = os.environ.get(NAME)\n"
        'os.environ["ONLY_WRITTEN"] = "1"\n'
    )
    reads = env_reads((package,), tmp_path)
    assert set(reads) == {"DIRECT", "VIA_GETENV", "SUBSCRIPT", "VIA_HELPER", "FROM_CONSTANT"}
    rows = {
        "DIRECT": "unset",
        "VIA_GETENV": "`2`",
        "SUBSCRIPT": "`x`",
        "VIA_HELPER": "`3`",
        "GONE": "x",
    }
    defaults: dict[str, object] = {"VIA_GETENV": 2, "SUBSCRIPT": "y", "VIA_HELPER": 3, "DIRECT": 5}
    assert env_problems(rows, reads, defaults) == [
        "FROM_CONSTANT is read (pkg/mod.py:7) but not documented",
        "GONE is documented but the code does not read it",
        "DIRECT: documented unset, code default 5",
        "SUBSCRIPT: documented default `x`, code default 'y'",
    ]


def test_json_check_reports_missing_extra_and_wrong_defaults() -> None:
    keys = set(json_keys(parse_cache_config))
    rows = {
        "enable": "`true`",
        "ttl": "`3600`",
        "max_size": "`10000`",
        "backend": "`memory`",
        "colour": "x",
    }
    assert json_problems(rows, keys, parse_cache_config) == [
        "key secret_file is accepted but not documented",
        "key colour is documented but not accepted",
        "key enable: documented default `true` is not the parser's default",
    ]


def test_config_check_reports_missing_extra_and_wrong_defaults(page: str) -> None:
    keys = config_keys(ModelConfig)
    rows = key_rows(section(page, "### Keys"))
    rows.pop("verticals.<>.pricing.demand.sensitivity")
    rows["verticals.<>.pricing.surge"] = "`1.0`"
    rows["default_scoring_threshold"] = "`0.7`"
    rows["verticals.<>.pricing.base_price"] = "`30`"
    rows["verticals.<>.training"] = "`{}`"  # right: TrainingConfig() is all defaults
    assert config_problems(rows, keys) == [
        "config key verticals.<>.pricing.demand.sensitivity is not documented",
        "config key verticals.<>.pricing.surge is documented but not a key",
        "config key default_scoring_threshold: documented default `0.7`, code default 0.65",
        "config key verticals.<>.pricing.base_price: documented default `30`, "
        "code default required",
    ]
    assert "verticals.<>.pricing.peak_hours[].days" in keys
    assert keys["verticals.<>.feature_config.text.<>.smoothing"] == 20.0


def test_every_link_resolves(page: str) -> None:
    from tests.unit.test_runbooks import link_problems

    assert link_problems(DOC, page) == []
