"""Archive keys: AES-256 keys in files named by key id, one of them current.

On disk, in the key directory (``LEAD_ARCHIVE_KEYS``, default ``var/keys/archive``,
created with mode 0700)::

    <kid>.key   one key: 64 lowercase hex digits (32 random bytes) and a newline; mode 0600
    CURRENT     the key id new archive segments are written under, and a newline

A key id is ``<UTC creation time YYYYMMDDTHHMMSS.ffffffZ>-<8 hex digits>``: unique,
sorted by age, and says nothing about the key. Rotation (``ml-service archive rotate-key``) writes a
new key file, then replaces ``CURRENT`` atomically (temp file, fsync, ``os.replace``);
old keys stay, so every record written under them still decrypts. A running service
picks up the new current key within ``KEY_CHECK_SECONDS`` (``engine.archive.writer``).

A key file that group or others may read is refused, as ssh refuses such private keys:
the keys are the only thing between the archive and the PII in it.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from pathlib import Path

from engine.archive.errors import ArchiveKeyError
from engine.store.layout import atomic_write, write_file_synced

KEY_BYTES = 32  # AES-256
CURRENT = "CURRENT"
KEY_SUFFIX = ".key"
KEYS_VARIABLE = "LEAD_ARCHIVE_KEYS"
DEFAULT_KEYS_DIR = Path("var/keys/archive")
_KID_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")


def valid_key_id(kid: str) -> bool:
    """Return whether ``kid`` has the form of an archive key id."""
    return bool(_KID_RE.fullmatch(kid))


def new_key_id(now: float | None = None) -> str:
    """Return a fresh key id for a key created at ``now`` (epoch seconds)."""
    now = time.time() if now is None else now
    micros = int(now % 1 * 1_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{micros:06d}Z-{secrets.token_hex(4)}"


def create_key(directory: Path, *, make_current: bool = True) -> str:
    """Write a new random key into ``directory`` and (by default) make it current.

    Args:
        directory: The key directory; created (mode 0700) when absent.
        make_current: Also point ``CURRENT`` at the new key.

    Returns:
        The new key id.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    kid = new_key_id()
    key = secrets.token_bytes(KEY_BYTES).hex().encode() + b"\n"
    write_file_synced(directory / (kid + KEY_SUFFIX), key, mode=0o600)  # never overwrites
    if make_current:
        atomic_write(directory / CURRENT, kid.encode() + b"\n", mode=0o600)
    return kid


class ArchiveKeys:
    """The keys of one key directory, by id, and which one is current.

    Attributes:
        directory: Where the keys live.
        label: How errors name the directory (e.g. ``LEAD_ARCHIVE_KEYS=var/keys/archive``).
    """

    def __init__(self, directory: Path, label: str | None = None) -> None:
        self.directory = directory
        self.label = label or f"{KEYS_VARIABLE}={directory}"
        self._keys: dict[str, bytes] = {}
        self._current: str | None = None

    @classmethod
    def load(
        cls, directory: Path, *, require_current: bool = True, label: str | None = None
    ) -> ArchiveKeys:
        """Read every key of ``directory``.

        Args:
            directory: The key directory.
            require_current: Fail unless ``CURRENT`` names a loaded key (writers need
                one; reading an archive does not).
            label: How errors name the directory.

        Raises:
            ArchiveKeyError: The directory is missing or unreadable, a key file is
                malformed or readable by group or others, or (with ``require_current``)
                there is no usable current key. The message names ``label``.
        """
        keys = cls(directory, label)
        keys.refresh()
        if require_current and keys.current is None:
            raise ArchiveKeyError(
                f"{keys.label}: no current key ({CURRENT} is missing); "
                "create one with 'ml-service archive keygen'"
            )
        return keys

    @property
    def current(self) -> str | None:
        """The id of the current key, or None when there is none."""
        return self._current

    @property
    def current_id(self) -> str:
        """The id of the key new records are written under.

        Raises:
            ArchiveKeyError: There is no current key.
        """
        if self._current is None:
            raise ArchiveKeyError(f"{self.label}: no current key")
        return self._current

    def ids(self) -> list[str]:
        """Every loaded key id, oldest first."""
        return sorted(self._keys)

    def key(self, kid: str) -> bytes:
        """Return the key ``kid``.

        Raises:
            ArchiveKeyError: No such key in the directory.
        """
        try:
            return self._keys[kid]
        except KeyError:
            raise ArchiveKeyError(f"{self.label}: no key {kid!r}") from None

    def refresh(self) -> str | None:
        """Re-read the directory: load new key files and the ``CURRENT`` pointer.

        Keys already loaded stay loaded (a deleted key file does not make records
        written under it undecryptable in a running process).

        Returns:
            The current key id, or None when ``CURRENT`` is absent.

        Raises:
            ArchiveKeyError: As for ``load``; nothing changes on error.
        """
        try:
            names = sorted(p.name for p in self.directory.iterdir())
        except FileNotFoundError:
            raise ArchiveKeyError(
                f"{self.label}: the key directory does not exist; "
                "create a key with 'ml-service archive keygen'"
            ) from None
        except OSError as exc:
            raise ArchiveKeyError(f"{self.label}: cannot list keys: {exc.strerror}") from None
        loaded = dict(self._keys)
        for name in names:
            kid = name.removesuffix(KEY_SUFFIX)
            if name.endswith(KEY_SUFFIX) and valid_key_id(kid) and kid not in loaded:
                loaded[kid] = self._read_key(self.directory / name)
        current = None
        if CURRENT in names:
            current = self._read_current(loaded)
        self._keys, self._current = loaded, current
        return current

    def _read_key(self, path: Path) -> bytes:
        try:
            with path.open("rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                text = handle.read(200)
        except OSError as exc:
            raise ArchiveKeyError(
                f"{self.label}: cannot read {path.name}: {exc.strerror}"
            ) from None
        if mode & 0o077:
            raise ArchiveKeyError(
                f"{self.label}: {path.name} may be read by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run 'chmod 600 {path}'"
            )
        hex_key = text.strip().decode("ascii", errors="replace")
        if not _HEX_RE.fullmatch(hex_key):
            raise ArchiveKeyError(
                f"{self.label}: {path.name} is not an archive key (64 hex digits expected)"
            )
        return bytes.fromhex(hex_key)

    def _read_current(self, loaded: dict[str, bytes]) -> str:
        path = self.directory / CURRENT
        try:
            kid = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError as exc:
            raise ArchiveKeyError(f"{self.label}: cannot read {CURRENT}: {exc.strerror}") from None
        if kid not in loaded:
            raise ArchiveKeyError(
                f"{self.label}: {CURRENT} names key {kid[:80]!r}, which is not in the directory"
            )
        return kid


def service_keys(directory: Path) -> ArchiveKeys:
    """Load the keys of a service whose archive is on (``LEAD_ARCHIVE_DIR`` set).

    Raises:
        ArchiveKeyError: No usable current key; the message names ``LEAD_ARCHIVE_KEYS``.
    """
    label = f"LEAD_ARCHIVE_DIR is set, but {KEYS_VARIABLE}={directory}"
    return ArchiveKeys.load(directory, label=label)


def rotate(directory: Path, label: str | None = None) -> tuple[str | None, str]:
    """Create a new current key; keep the old ones for reading.

    Args:
        directory: The key directory.
        label: How errors name the directory.

    Returns:
        The previous current key id (None if there was none) and the new one.

    Raises:
        ArchiveKeyError: The existing keys are unusable (fix them first: a rotation
            must not hide a broken key directory).
    """
    previous = None
    if directory.exists():
        previous = ArchiveKeys(directory, label).refresh()
    return previous, create_key(directory)
