"""Coverage-guided fuzzing of the scoring request path with atheris (libFuzzer).

Run as a module from the repository root::

    python -m tests.fuzz.fuzz_scoring --route=score [--store=DIR] [libFuzzer flags] [corpus dirs]

``--route`` picks the handler (``score`` or ``batch``); ``--store`` reuses a model store
made by ``tests.fuzz.harness.build_store`` (else one is trained first, in a temporary
directory: a few seconds). Each input is one raw request
body, checked by ``tests.fuzz.harness.Harness.check`` (2xx that decodes, or a counted 4xx
error; anything else is a crash). The ``api`` and ``engine`` packages are instrumented
for coverage feedback; msgspec, the JSON decoder, is C and is exercised, not measured.
libFuzzer adds inputs that reach new coverage to the first corpus directory and writes a
crashing input to ``-artifact_prefix``. ``make fuzz`` and ``tests/fuzz/test_fuzz.py`` run
this; docs: /work/notes/security-input.md ("Fuzzing").
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris


def _option(argv: list[str], name: str) -> str | None:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return values[-1] if values else None


def main(argv: list[str]) -> None:
    """Parse ``--route`` and ``--store``, build the harness, fuzz until libFuzzer stops."""
    route = _option(argv, "route") or "score"
    store = _option(argv, "store")
    args = [a for a in argv if not a.startswith(("--route=", "--store="))]
    with atheris.instrument_imports(include=["api", "engine"]):
        from tests.fuzz.harness import ROUTES, Harness, build_store

    if route not in ROUTES:
        raise SystemExit(f"--route must be one of {', '.join(ROUTES)}, not {route!r}")
    directory = Path(store) if store else build_store(Path(tempfile.mkdtemp(prefix="fuzz-")))
    harness = Harness(directory)

    def one_input(data: bytes) -> None:
        harness.check(route, data)

    # libFuzzer re-runs argv[0] (through the shell) for -merge, -fork and -jobs: make it
    # this very command, on the same route and store, not the module's file path.
    args[0] = f"{sys.executable} -m tests.fuzz.fuzz_scoring --route={route} --store={directory}"
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
