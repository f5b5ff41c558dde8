"""Ed25519 signing of manifests, and the keyring that verifies them.

Files this module owns:

- ``<dir>/model-signing.key``: the private signing key, PKCS#8 PEM, unencrypted, mode
  0600. Only the machine that publishes models needs it.
- ``<dir>/trusted/<key_id>.pub``: a trusted public key, SubjectPublicKeyInfo PEM. The
  service loads a directory of ``*.pub`` files (or one file) as its keyring; the file
  name is for humans, the key id is always computed from the key.
- ``<version dir>/manifest.sig``: the signature document, UTF-8 JSON with exactly these
  keys::

      {"algorithm": "ed25519",
       "key_id": "<16 lowercase hex>",
       "signature": "<standard base64 of the 64-byte Ed25519 signature>"}

  The signature is over the exact bytes of ``manifest.json``. ``key_id`` is the first 16
  hex characters of the SHA-256 of the raw 32-byte public key; it selects the key to
  verify with, and an id that is not in the keyring is rejected (``unknown_key``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from engine.errors import ArtifactRejected, StoreError

ALGORITHM = "ed25519"
PRIVATE_KEY_NAME = "model-signing.key"
TRUSTED_DIR_NAME = "trusted"
SIGNATURE_LENGTH = 64
KEY_ID_RE = re.compile(r"[0-9a-f]{16}")


class _SignatureDoc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    algorithm: str
    key_id: str
    signature: str


_SIG_ENCODER = msgspec.json.Encoder(order="sorted")
_SIG_DECODER = msgspec.json.Decoder(_SignatureDoc)


def key_id(public_key: Ed25519PublicKey) -> str:
    """Return the id of a public key: 16 hex chars of the SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_keypair(directory: Path, private_name: str = PRIVATE_KEY_NAME) -> str:
    """Create a new signing key and trust its public half.

    Writes ``directory/<private_name>`` (PKCS#8 PEM, unencrypted, mode 0600, created
    exclusively) and ``directory/trusted/<key_id>.pub`` (SubjectPublicKeyInfo PEM),
    creating the directories as needed.

    Args:
        directory: Where to put the key files.
        private_name: File name of the private key (``model-signing.key`` by default;
            the API's token keys use ``jwt-signing.key``).

    Returns:
        The new key's id.

    Raises:
        StoreError: A signing key already exists there (it is never overwritten), or the
            files cannot be written.
    """
    private_key = Ed25519PrivateKey.generate()
    public_key = private_key.public_key()
    kid = key_id(public_key)
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path = directory / private_name
    trusted = directory / TRUSTED_DIR_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(key_path, flags, 0o600)
        except FileExistsError:
            raise StoreError(
                f"a signing key already exists at {key_path}; refusing to overwrite it"
            ) from None
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, private_pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        trusted.mkdir(parents=True, exist_ok=True)
        (trusted / f"{kid}.pub").write_bytes(_public_pem(public_key))
    except OSError as exc:
        raise StoreError(f"cannot write the signing key pair in {directory}: {exc}") from exc
    return kid


class SigningKey:
    """A private Ed25519 key that signs manifests.

    Attributes:
        key_id: The id of the matching public key.
    """

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.key_id = key_id(private_key.public_key())

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The matching public key."""
        return self._private_key.public_key()

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The private key itself (for signers other than manifests, e.g. JWTs)."""
        return self._private_key

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Load an unencrypted PKCS#8 PEM Ed25519 private key.

        Args:
            path: The key file, e.g. ``keys/model-signing.key``.

        Raises:
            StoreError: The file is missing, unreadable, or not an unencrypted Ed25519
                private key.
        """
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"signing key {path} not found (create a key pair with "
                "`ml-service keys generate --dir DIR`)"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read signing key {path}: {exc}") from exc
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise StoreError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise StoreError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
        return cls(key)

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` and return the ``manifest.sig`` document bytes.

        Args:
            data: The exact bytes of ``manifest.json``.

        Returns:
            UTF-8 JSON ``{"algorithm", "key_id", "signature"}`` with a trailing newline.
        """
        signature = self._private_key.sign(data)
        doc = _SignatureDoc(
            algorithm=ALGORITHM,
            key_id=self.key_id,
            signature=base64.b64encode(signature).decode("ascii"),
        )
        return _SIG_ENCODER.encode(doc) + b"\n"


def _load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read public key {path}: {exc}") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise StoreError(f"{path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise StoreError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


class Keyring:
    """The trusted public keys, by key id."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id(key): key for key in keys}

    @property
    def key_ids(self) -> frozenset[str]:
        """The ids of the trusted keys."""
        return frozenset(self._keys)

    @property
    def keys(self) -> dict[str, Ed25519PublicKey]:
        """The trusted keys by id (a copy)."""
        return dict(self._keys)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Load trusted keys from a directory of ``*.pub`` PEM files or from one file.

        In a directory, dot-prefixed files are ignored and subdirectories are not read.

        Args:
            path: A directory (e.g. ``keys/trusted``) or a single ``.pub`` file.

        Raises:
            StoreError: The path does not exist, holds no ``*.pub`` file, or a file is
                not an Ed25519 public key in PEM.
        """
        if path.is_dir():
            files = sorted(
                p for p in path.glob("*.pub") if not p.name.startswith(".") and p.is_file()
            )
            if not files:
                raise StoreError(f"no trusted public keys (*.pub) in {path}")
        elif path.is_file():
            files = [path]
        else:
            raise StoreError(f"trusted key path {path} does not exist")
        return cls([_load_public_key(p) for p in files])

    def verify(self, data: bytes, signature_doc: bytes) -> str:
        """Check a ``manifest.sig`` document against ``data``.

        Args:
            data: The exact bytes of ``manifest.json``.
            signature_doc: The bytes of ``manifest.sig``.

        Returns:
            The id of the trusted key that made the signature.

        Raises:
            ArtifactRejected: ``signature`` when the document is malformed, names
                another algorithm, or the signature does not verify; ``unknown_key``
                when its key id is not in the keyring.
        """
        try:
            doc = _SIG_DECODER.decode(signature_doc)
        except msgspec.DecodeError as exc:
            raise ArtifactRejected("signature", f"malformed manifest.sig: {exc}") from None
        if doc.algorithm != ALGORITHM:
            raise ArtifactRejected(
                "signature", f"unsupported algorithm {doc.algorithm!r} (expected {ALGORITHM!r})"
            )
        if KEY_ID_RE.fullmatch(doc.key_id) is None:
            raise ArtifactRejected(
                "signature", f"malformed key_id {doc.key_id!r}: expected 16 lowercase hex"
            )
        try:
            signature = base64.b64decode(doc.signature, validate=True)
        except (binascii.Error, ValueError):
            raise ArtifactRejected("signature", "signature is not valid base64") from None
        if len(signature) != SIGNATURE_LENGTH:
            raise ArtifactRejected(
                "signature",
                f"signature is {len(signature)} bytes, expected {SIGNATURE_LENGTH}",
            )
        key = self._keys.get(doc.key_id)
        if key is None:
            trusted = ", ".join(sorted(self._keys)) or "none"
            raise ArtifactRejected(
                "unknown_key", f"signed by key {doc.key_id}, which is not trusted ({trusted})"
            )
        try:
            key.verify(signature, data)
        except InvalidSignature:
            raise ArtifactRejected(
                "signature", f"signature does not match manifest.json (key {doc.key_id})"
            ) from None
        return doc.key_id
