"""A copy of the model store in which every reload really swaps models, for the soak.

A reload with no body only re-reads the ``CURRENT`` pointers: with nothing changed, the
workers keep their models and load nothing, which would leave the load-before-unload
path, the native model's release and the mapped files out of the soak. ``twin_store``
therefore copies the store and publishes, for each vertical, a *twin* of its active
version: the same files under the next free patch version, signed with the local model
signing key. The soak's reloads then alternate ``{every vertical: twin}`` and
``{every vertical: original}``, so each reload loads four models and frees four in
every worker. The copy keeps the real store's pointers untouched.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import msgspec

from engine.store import layout, pointer
from engine.store.manifest import Manifest, decode_manifest
from engine.store.publish import publish
from engine.store.signing import SigningKey


def _next_free(root: Path, vertical: str, version: str) -> str:
    major, minor, patch = layout.parse_version(version)
    taken = set(layout.list_versions(root, vertical))
    while f"{major}.{minor}.{patch}" in taken:
        patch += 1
    return f"{major}.{minor}.{patch}"


def _renamed(manifest: Manifest, version: str) -> Callable[[dict[str, str]], Manifest]:
    """The manifest of the twin: the original's, under its own version and file hashes."""

    def fields(hashes: dict[str, str]) -> Manifest:
        return msgspec.structs.replace(manifest, version=version, files=hashes)

    return fields


def twin_store(source: Path, target: Path, signing_key: Path) -> list[dict[str, str]]:
    """Copy the store ``source`` to ``target`` (replacing it) and publish the twins.

    Args:
        source: The model store (``var/models``).
        target: Where the copy goes; an existing copy is removed first.
        signing_key: The model signing key the store's versions are signed with.

    Returns:
        The two reload targets to alternate: every vertical at its twin, then every
        vertical at its original version.

    Raises:
        FileNotFoundError: No store, or no signing key.
        ValueError: No vertical has an active version.
    """
    if not signing_key.is_file():
        raise FileNotFoundError(f"{signing_key} is missing: run `make models` first")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    key = SigningKey.load(signing_key)
    twins: dict[str, str] = {}
    originals: dict[str, str] = {}
    for vertical in layout.list_verticals(target):
        active = pointer.read_current(target, vertical)
        if active is None:
            continue
        source_dir = layout.version_dir(target, vertical, active)
        manifest = decode_manifest((source_dir / "manifest.json").read_bytes())
        files = {name: (source_dir / name).read_bytes() for name in manifest.files}
        twin = _next_free(target, vertical, active)
        publish(target, vertical, twin, files, _renamed(manifest, twin), key)
        twins[vertical], originals[vertical] = twin, active
    if not twins:
        raise ValueError(f"no vertical of {source} has an active version: run `make models`")
    return [twins, originals]
