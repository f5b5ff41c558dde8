"""A bounded atheris run over both scoring routes, as part of every test run.

Each route is fuzzed for ``FUZZ_TEST_SECONDS`` (default 3) in a subprocess, seeded from
the repository corpus (read only: new inputs go to a temporary directory) with a fixed
seed. A crash (an input that breaks the harness's invariant) fails the test and is
left in the temporary artifact directory named in the message; ``make fuzz`` runs the
same target longer and grows the corpus.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.harness import CORPUS, HERE

ROOT = HERE.parents[1]
SECONDS = int(os.environ.get("FUZZ_TEST_SECONDS", "3"))
_DONE = re.compile(r"Done (?P<runs>\d+) runs in (?P<seconds>\d+) second")


def fuzz(route: str, store: Path, workdir: Path, seconds: int) -> subprocess.CompletedProcess[str]:
    found = workdir / "new"
    found.mkdir()
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.fuzz_scoring",
            f"--route={route}",
            f"--store={store}",
            f"-max_total_time={seconds}",
            "-seed=1",
            "-timeout=20",
            f"-dict={HERE / 'scoring.dict'}",
            f"-artifact_prefix={workdir}/",
            str(found),
            str(CORPUS / route),
        ],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.slow
@pytest.mark.parametrize("route", ["score", "batch"])
def test_fuzzing_finds_no_crash(route, fuzz_store, tmp_path):
    result = fuzz(route, fuzz_store, tmp_path, SECONDS)
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert result.returncode == 0 and not crashes, (
        f"fuzzing {route} crashed ({crashes}, in {tmp_path}):\n{result.stderr[-4000:]}"
    )
    done = _DONE.search(result.stderr)
    assert done is not None, result.stderr[-2000:]
    assert int(done["runs"]) > 100, result.stderr[-2000:]
