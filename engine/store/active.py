"""What each vertical's ``CURRENT`` names, and whether that version may be served.

Two kinds of caller ask, with different needs:

- A load (worker start, every reload) must verify in full every time and keeps the
  verified bytes to build the model from: ``ActiveInspector.inspect``.
- Reporting (``/ready``, ``GET /api/v1/models``, the unserved gauge, the periodic audit,
  all through ``status_of``) asks often and must stay cheap: ``ActiveInspector.check``
  returns the verdict of the last full verification while the version's files are
  provably unchanged, and verifies in full again otherwise. Its verdicts are for display
  only: nothing is ever loaded on the strength of a cached one.

"Provably unchanged" means the same identity for the version directory and for every
entry in it: name, type, inode, device, size, mtime and ctime (in nanoseconds). Writing
to a file, replacing it, adding or renaming an entry or restoring an mtime by hand all
change at least one of these (ctime cannot be set from user space). A verdict is only
kept when those identities are the same before and after the verification and none of
them is younger than ``RACY_SECONDS``: file-system timestamps advance in coarse ticks,
so a change made within the same tick as the last one could otherwise go unseen (git's
"racily clean" problem).

Refusals fall into a fixed set of reasons (``REASONS``), so metric labels stay bounded:

- ``layout``, ``signature``, ``unknown_key``, ``manifest``, ``mismatch``, ``hash``: the
  ``engine.store.verify`` check of that name failed.
- ``pointer``: ``CURRENT`` is unusable (a symlink, too long, not UTF-8, not ``X.Y.Z``,
  e.g. ``../../etc``) or names a version that is not published.
- ``load``: the version verifies but does not load (the ``model`` check: LightGBM or
  the encoder tables refuse it, or they disagree with the manifest), or an unexpected
  error.

A vertical without ``CURRENT`` has no active version: that is reported but is not a
refusal (nothing was offered to load).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ArtifactRejected, StoreError
from engine.store.layout import list_versions, version_dir
from engine.store.pointer import read_current
from engine.store.signing import Keyring
from engine.store.verify import VerifiedVersion, verify_version

VERIFY_CHECKS = ("layout", "signature", "unknown_key", "manifest", "mismatch", "hash")
REASONS = (*VERIFY_CHECKS, "pointer", "load")
"""Every reason a version can be refused for: the only values of a ``reason`` label."""

NO_ACTIVE_VERSION = "no active version (CURRENT is missing)"
PENDING = "pending"
"""The status reason while ``CURRENT`` names a good version a worker has not loaded yet."""
RACY_SECONDS = 3.0

_Identity = tuple[int, int, int, int, int, int]
_Fingerprint = tuple[_Identity, tuple[tuple[str, _Identity], ...]]


def reason_of(exc: BaseException) -> str:
    """Classify an error raised while reading a pointer or loading a version.

    Returns:
        A member of ``REASONS``: the failed check for a verification refusal, ``pointer``
        for a pointer or name problem, ``load`` for anything else.
    """
    if isinstance(exc, ArtifactRejected):
        return exc.check if exc.check in VERIFY_CHECKS else "load"
    if isinstance(exc, StoreError | ValueError):
        return "pointer"
    return "load"


@dataclass(frozen=True, slots=True)
class ActiveState:
    """What ``CURRENT`` names for one vertical and what became of it.

    Attributes:
        vertical: The vertical.
        version: The version ``CURRENT`` names; None when there is no usable ``CURRENT``.
        digest: SHA-256 of the version's ``manifest.json`` when it verified, else None.
        reason: A member of ``REASONS`` when the version is refused; None otherwise.
        detail: Why, as a sentence without absolute paths; None when all is well.
    """

    vertical: str
    version: str | None
    digest: str | None
    reason: str | None
    detail: str | None

    @property
    def refused(self) -> bool:
        """Whether something was offered (a pointer, a version) and refused."""
        return self.reason is not None

    @property
    def usable(self) -> bool:
        """Whether the active version verified and was not refused since."""
        return self.digest is not None and self.reason is None

    def refuse(self, reason: str, detail: str) -> ActiveState:
        """Return this state refused for ``reason`` (a verified version that did not load)."""
        return ActiveState(self.vertical, self.version, self.digest, reason, detail)


def _identity(st: os.stat_result) -> _Identity:
    return (st.st_mode, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _fingerprint(path: Path) -> _Fingerprint | None:
    """Identity of a directory and of each entry in it; None when it cannot be listed."""
    try:
        top = _identity(os.lstat(path))
        with os.scandir(path) as entries:
            inside = tuple(
                sorted((e.name, _identity(e.stat(follow_symlinks=False))) for e in entries)
            )
    except OSError:
        return None
    return top, inside


def _is_racy(fingerprint: _Fingerprint, now_ns: int) -> bool:
    """Whether any timestamp is too recent for a later change to be sure to show."""
    horizon = now_ns - int(RACY_SECONDS * 1e9)
    identities = (fingerprint[0], *(identity for _, identity in fingerprint[1]))
    return any(identity[4] >= horizon or identity[5] >= horizon for identity in identities)


class ActiveInspector:
    """Verifies the version each vertical's ``CURRENT`` names (see the module docstring).

    Thread-safe: inspections run one at a time, off the event loop.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._verdicts: dict[str, tuple[tuple[str, frozenset[str], _Fingerprint], ActiveState]] = {}

    def inspect(
        self, vertical: str, keyring: Keyring
    ) -> tuple[ActiveState, VerifiedVersion | None]:
        """Read ``CURRENT`` and verify the version it names in full, now.

        Args:
            vertical: A configured vertical.
            keyring: The trusted keys.

        Returns:
            The state, and the verified version (its bytes, ready to load) when it
            verified.
        """
        with self._lock:
            return self._examine(vertical, keyring, use_cache=False)

    def check(self, vertical: str, keyring: Keyring) -> ActiveState:
        """Like ``inspect`` but reusing the last verdict while the files are unchanged.

        For reporting only: a cached verdict never authorises a load.
        """
        with self._lock:
            return self._examine(vertical, keyring, use_cache=True)[0]

    def _examine(
        self, vertical: str, keyring: Keyring, use_cache: bool
    ) -> tuple[ActiveState, VerifiedVersion | None]:
        try:
            version = read_current(self.root, vertical)
        except StoreError as exc:
            self._verdicts.pop(vertical, None)
            return ActiveState(vertical, None, None, "pointer", f"CURRENT is unusable: {exc}"), None
        if version is None:
            self._verdicts.pop(vertical, None)
            return ActiveState(vertical, None, None, None, NO_ACTIVE_VERSION), None
        path = version_dir(self.root, vertical, version)
        if not os.path.lexists(path):
            self._verdicts.pop(vertical, None)
            published = ", ".join(list_versions(self.root, vertical)) or "none"
            detail = f"CURRENT names {version}, which is not published (published: {published})"
            return ActiveState(vertical, version, None, "pointer", detail), None
        before = _fingerprint(path)
        key = (version, keyring.key_ids, before) if before is not None else None
        cached = self._verdicts.get(vertical)
        if use_cache and key is not None and cached is not None and cached[0] == key:
            return cached[1], None
        verified: VerifiedVersion | None = None
        try:
            verified = verify_version(path, keyring)
        except ArtifactRejected as exc:
            state = ActiveState(
                vertical, version, None, reason_of(exc), f"CURRENT names {version}, refused: {exc}"
            )
        else:
            state = ActiveState(vertical, version, verified.manifest_sha256, None, None)
        after = _fingerprint(path)
        if (
            key is not None
            and before is not None
            and after == before
            and not _is_racy(before, time.time_ns())
        ):
            self._verdicts[vertical] = (key, state)
        else:
            self._verdicts.pop(vertical, None)
        return state, verified


@dataclass(frozen=True, slots=True)
class VerticalStatus:
    """One vertical as a worker sees it: what it serves against what ``CURRENT`` names.

    Attributes:
        served: The version the worker scores with (None: none, requests get 503).
        active: The version ``CURRENT`` names (None: missing or unusable).
        reason: None when ``active`` is served and verifies; else a member of
            ``REASONS`` or ``PENDING``.
        problem: The sentence that says why, naming versions, never absolute paths.
    """

    served: str | None
    active: str | None
    reason: str | None
    problem: str | None


def status_of(
    state: ActiveState,
    served: str | None,
    served_digest: str | None,
    load_failure: tuple[str, str] | None,
) -> VerticalStatus:
    """Compare what a worker serves with the state of the vertical's ``CURRENT``.

    Args:
        state: What ``CURRENT`` names and whether it verifies.
        served: The version the worker serves, if any.
        served_digest: The manifest digest of the served version, if any.
        load_failure: ``(manifest digest, why)`` of the last version that verified here
            but did not load, if any.

    Returns:
        The status; ``problem`` ends with what is served meanwhile.
    """
    if state.usable and served is not None and served_digest == state.digest:
        return VerticalStatus(served, state.version, None, None)
    if state.usable:
        if load_failure is not None and load_failure[0] == state.digest:
            reason, detail = "load", load_failure[1]
        else:
            reason = PENDING
            detail = f"CURRENT names {state.version}, not loaded here yet (reload to switch)"
    else:
        reason = state.reason or "pointer"  # no reason: there is no CURRENT at all
        detail = state.detail or "CURRENT is unusable"
    if served is None:
        tail = "nothing is served"
    elif served == state.version and reason not in ("load", PENDING):
        # Tampered in place: the bytes in memory are the ones verified at load.
        tail = f"serving {served} as verified when it was loaded"
    else:
        tail = f"still serving {served}"
    return VerticalStatus(served, state.version, reason, f"{detail}; {tail}")
