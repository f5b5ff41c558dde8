"""The keyring that verifies API tokens, its rotation, and the revocation list.

Files this module owns, in the token key directory (``var/keys/jwt`` by default; the
service reads only ``trusted/``, set by ``JWT_PUBLIC_KEYS``):

- ``jwt-signing.key``: the current signing key, PKCS#8 PEM, unencrypted, mode 0600. Only
  the machine that issues tokens needs it; rotation replaces it atomically, so the
  previous private key is gone (its tokens still verify during the grace period).
- ``trusted/<kid>.pub``: a public key that verifies tokens whose header ``kid`` is its
  key id (see ``engine.store.signing.key_id``). A retired key's file is removed.
- ``trusted/keyring.json`` (optional): the life cycle of each key, UTF-8 JSON::

      {"keys": {"<kid>": {"state": "active" | "verify_only" | "retired",
                          "created_at": "<ISO 8601 UTC>",
                          "verify_until": "<ISO 8601 UTC>" | null}}}

  ``active`` keys sign and verify; ``verify_only`` keys verify until ``verify_until``
  (the grace period after a rotation) and are refused from that instant on, cached
  tokens included; ``retired`` keys are refused, and named as retired in the error. A
  ``*.pub`` without an entry (a keyring that was never rotated) is active with no
  expiry, so a plain directory of public keys keeps working.
- ``trusted/revoked.json`` (optional): ``{"jti": [...], "sub": [...]}``, tokens refused
  by id or by subject.

The service reads the directory at start and again on every reload (API or SIGHUP), so
a rotation or a revocation takes effect in every worker without a restart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from engine.errors import StoreError
from engine.store.layout import atomic_write
from engine.store.signing import Keyring, SigningKey, key_id

KeyState = Literal["active", "verify_only", "retired"]
_Doc = TypeVar("_Doc")
METADATA_NAME = "keyring.json"
REVOKED_NAME = "revoked.json"
SIGNING_KEY_NAME = "jwt-signing.key"
TRUSTED_DIR_NAME = "trusted"
DEFAULT_MAX_AGE_DAYS = 30
DEFAULT_GRACE_DAYS = 7


class KeyRecord(msgspec.Struct, forbid_unknown_fields=True):
    """The life cycle of one key (an entry of ``keyring.json``)."""

    state: KeyState
    created_at: str
    verify_until: str | None = None


class KeyringMetadata(msgspec.Struct, forbid_unknown_fields=True):
    """The whole ``keyring.json``."""

    keys: dict[str, KeyRecord] = {}


class Revocations(msgspec.Struct, forbid_unknown_fields=True):
    """The whole ``revoked.json``."""

    jti: list[str] = []
    sub: list[str] = []


_METADATA_DECODER = msgspec.json.Decoder(KeyringMetadata)
_REVOKED_DECODER = msgspec.json.Decoder(Revocations)
_ENCODER = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A public key the service accepts tokens from, and until when (epoch seconds)."""

    public_key: Ed25519PublicKey
    valid_until: float


@dataclass(frozen=True, slots=True)
class TokenKeys:
    """What the authenticator needs: usable keys, retired key ids and revocations.

    Attributes:
        keys: Verifying keys by key id.
        retired: Ids of keys that must be refused as retired.
        revoked_ids: Revoked token ids (``jti``).
        revoked_subjects: Revoked subjects (``sub``).
    """

    keys: dict[str, VerifyingKey]
    retired: frozenset[str]
    revoked_ids: frozenset[str]
    revoked_subjects: frozenset[str]


def _timestamp(text: str, where: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise StoreError(f"{where}: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from exc


def _read_document(path: Path, decoder: msgspec.json.Decoder[_Doc], absent: _Doc) -> _Doc:
    """Decode an optional JSON document; ``absent`` when there is none."""
    raw = _read_optional(path) if path.parent.is_dir() else None
    if raw is None:
        return absent
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise StoreError(f"{path}: {exc}") from None


def read_metadata(trusted: Path) -> KeyringMetadata:
    """Read ``keyring.json`` of a trusted-key directory (empty when absent).

    Raises:
        StoreError: The file is unreadable or malformed.
    """
    path = trusted / METADATA_NAME
    metadata = _read_document(path, _METADATA_DECODER, KeyringMetadata())
    for kid, record in metadata.keys.items():
        _timestamp(record.created_at, f"{path} key {kid} created_at")
        if record.verify_until is not None:
            _timestamp(record.verify_until, f"{path} key {kid} verify_until")
    return metadata


def read_revocations(trusted: Path) -> Revocations:
    """Read ``revoked.json`` of a trusted-key directory (nothing revoked when absent).

    Raises:
        StoreError: The file is unreadable or malformed.
    """
    return _read_document(trusted / REVOKED_NAME, _REVOKED_DECODER, Revocations())


def load_token_keys(trusted: Path) -> TokenKeys:
    """Load the keys that verify tokens, with their life cycle and the revocations.

    Args:
        trusted: A directory of ``*.pub`` files (with optional ``keyring.json`` and
            ``revoked.json``), or a single ``.pub`` file.

    Raises:
        StoreError: No usable key, or a file is unreadable or malformed.
    """
    keyring = Keyring.load(trusted).keys
    metadata = read_metadata(trusted)
    retired = {kid for kid, r in metadata.keys.items() if r.state == "retired"}
    keys: dict[str, VerifyingKey] = {}
    for kid, public_key in keyring.items():
        record = metadata.keys.get(kid)
        if kid in retired:
            continue
        until = float("inf")
        if record is not None and record.state == "verify_only":
            if record.verify_until is None:
                raise StoreError(f"{trusted / METADATA_NAME}: verify_only key {kid} has no end")
            until = _timestamp(record.verify_until, kid)
        keys[kid] = VerifyingKey(public_key, until)
    if not keys:
        raise StoreError(f"no usable token key in {trusted} (every key is retired)")
    revocations = read_revocations(trusted)
    return TokenKeys(
        keys, frozenset(retired), frozenset(revocations.jti), frozenset(revocations.sub)
    )


@dataclass(frozen=True, slots=True)
class Rotation:
    """What ``rotate`` did.

    Attributes:
        new_key: The id of the new signing key.
        verify_only: Ids of keys kept for verification, with the end of their grace.
        retired: Ids of keys retired now.
    """

    new_key: str
    verify_only: dict[str, str]
    retired: list[str]


def _private_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rotate(
    directory: Path,
    grace_days: float = DEFAULT_GRACE_DAYS,
    max_age_days: float = DEFAULT_MAX_AGE_DAYS,
    now: float | None = None,
) -> Rotation:
    """Create a new signing key, demote the previous one, retire keys over the age limit.

    The key being replaced always keeps its grace period (so a late rotation never cuts
    live tokens off at once); any other key older than ``max_age_days``, or past its
    grace, is retired: its public key file is removed and ``keyring.json`` names it
    retired, so its tokens are refused (with that reason) after the next reload.

    Args:
        directory: The token key directory (``jwt-signing.key`` and ``trusted/``).
        grace_days: How long tokens signed by the replaced key still verify.
        max_age_days: Age past which a key is retired.
        now: The current time (epoch seconds); for tests.

    Returns:
        What changed.

    Raises:
        StoreError: The directory's files are unreadable or malformed, or the new files
            cannot be written.
        ValueError: A non-positive grace or age.
    """
    if grace_days <= 0 or max_age_days <= 0:
        raise ValueError("grace and maximum age must be positive")
    moment = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    trusted = directory / TRUSTED_DIR_NAME
    metadata = read_metadata(trusted)
    present = Keyring.load(trusted).keys if any(trusted.glob("*.pub")) else {}
    previous: str | None = None
    signing_path = directory / SIGNING_KEY_NAME
    if signing_path.exists():
        previous = SigningKey.load(signing_path).key_id
    private_key = Ed25519PrivateKey.generate()
    new_kid = key_id(private_key.public_key())
    verify_only: dict[str, str] = {}
    retired: list[str] = []
    records = dict(metadata.keys)
    for kid in sorted(set(present) | set(records)):
        record = records.get(kid) or KeyRecord("active", _iso(moment))
        if record.state == "retired":
            continue
        age = moment - _timestamp(record.created_at, kid)
        ended = record.verify_until is not None and _timestamp(record.verify_until, kid) <= moment
        if kid != previous and (age > max_age_days * 86400 or ended):
            records[kid] = KeyRecord("retired", record.created_at)
            retired.append(kid)
            continue
        if record.state == "active":
            until = _iso(moment + grace_days * 86400)
            records[kid] = KeyRecord("verify_only", record.created_at, until)
        verify_only[kid] = records[kid].verify_until or ""
    records[new_kid] = KeyRecord("active", _iso(moment))
    try:
        trusted.mkdir(parents=True, exist_ok=True)
        (trusted / f"{new_kid}.pub").write_bytes(_public_pem(private_key.public_key()))
        atomic_write(trusted / METADATA_NAME, _ENCODER.encode(KeyringMetadata(records)) + b"\n")
        atomic_write(signing_path, _private_pem(private_key), mode=0o600)
        for kid in retired:
            (trusted / f"{kid}.pub").unlink(missing_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot write the token keys in {directory}: {exc}") from exc
    return Rotation(new_kid, verify_only, retired)


def revoke(trusted: Path, token_ids: list[str], subjects: list[str]) -> Revocations:
    """Add token ids and subjects to ``revoked.json`` (takes effect on the next reload).

    Raises:
        StoreError: The file is malformed or cannot be written.
    """
    current = read_revocations(trusted)
    updated = Revocations(
        sorted(set(current.jti) | set(token_ids)), sorted(set(current.sub) | set(subjects))
    )
    try:
        atomic_write(trusted / REVOKED_NAME, _ENCODER.encode(updated) + b"\n")
    except OSError as exc:
        raise StoreError(f"cannot write {trusted / REVOKED_NAME}: {exc}") from exc
    return updated
