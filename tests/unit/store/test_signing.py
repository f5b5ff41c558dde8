from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.errors import ArtifactRejected, StoreError
from engine.store.signing import Keyring, SigningKey, generate_keypair, key_id

DATA = b'{"version": "1.0.0"}\n'


def test_key_id_is_sha256_prefix_of_raw_public_key() -> None:
    public = Ed25519PrivateKey.generate().public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(public) == hashlib.sha256(raw).hexdigest()[:16]
    assert len(key_id(public)) == 16


def test_generate_keypair_writes_private_0600_and_trusted_pub(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "keys"
    kid = generate_keypair(directory)
    private = directory / "model-signing.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    public = directory / "trusted" / f"{kid}.pub"
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert SigningKey.load(private).key_id == kid
    assert Keyring.load(public).key_ids == frozenset({kid})


def test_generate_keypair_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_keypair(tmp_path)
    before = (tmp_path / "model-signing.key").read_bytes()
    with pytest.raises(StoreError, match="already exists"):
        generate_keypair(tmp_path)
    assert (tmp_path / "model-signing.key").read_bytes() == before
    assert len(list((tmp_path / "trusted").glob("*.pub"))) == 1


def test_sign_produces_the_documented_json(key: SigningKey, keyring: Keyring) -> None:
    doc = json.loads(key.sign(DATA))
    assert set(doc) == {"algorithm", "key_id", "signature"}
    assert doc["algorithm"] == "ed25519"
    assert doc["key_id"] == key.key_id
    assert len(base64.b64decode(doc["signature"], validate=True)) == 64
    key.public_key.verify(base64.b64decode(doc["signature"]), DATA)
    assert keyring.verify(DATA, key.sign(DATA)) == key.key_id


def test_signing_key_load_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not found"):
        SigningKey.load(tmp_path / "missing.key")
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key")
    with pytest.raises(StoreError, match="not an unencrypted PEM private key"):
        SigningKey.load(garbage)
    ec_key = tmp_path / "ec.key"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(StoreError, match="not an Ed25519 private key"):
        SigningKey.load(ec_key)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(StoreError, match="not an unencrypted PEM private key"):
        SigningKey.load(encrypted)


def test_keyring_load_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Keyring.load(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README").write_text("keys go here")
    with pytest.raises(StoreError, match=r"no trusted public keys"):
        Keyring.load(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.pub").write_text("ssh-ed25519 AAAA not pem")
    with pytest.raises(StoreError, match="not a PEM public key"):
        Keyring.load(bad)
    ec_dir = tmp_path / "ec"
    ec_dir.mkdir()
    (ec_dir / "ec.pub").write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(StoreError, match="not an Ed25519 public key"):
        Keyring.load(ec_dir)


def test_keyring_loads_directory_and_ignores_dotfiles(tmp_path: Path) -> None:
    first = generate_keypair(tmp_path / "one")
    second = generate_keypair(tmp_path / "two")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    for kid, src in ((first, "one"), (second, "two")):
        (trusted / f"{kid}.pub").write_bytes(
            (tmp_path / src / "trusted" / f"{kid}.pub").read_bytes()
        )
    (trusted / ".hidden.pub").write_text("junk that would fail to parse")
    assert Keyring.load(trusted).key_ids == frozenset({first, second})


def _doc(key: SigningKey, **changes: object) -> bytes:
    doc = json.loads(key.sign(DATA))
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "doc",
    [
        b"",
        b"not json",
        b"[]",
        b'{"algorithm": "ed25519"}',
    ],
)
def test_verify_rejects_malformed_documents(keyring: Keyring, doc: bytes) -> None:
    with pytest.raises(ArtifactRejected, match=r"malformed manifest\.sig") as info:
        keyring.verify(DATA, doc)
    assert info.value.check == "signature"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"algorithm": "rsa"}, "unsupported algorithm"),
        ({"key_id": "XYZ"}, "malformed key_id"),
        ({"signature": "!!!not base64!!!"}, "not valid base64"),
        ({"signature": base64.b64encode(b"short").decode()}, "5 bytes, expected 64"),
        ({"extra": 1}, "malformed manifest.sig"),
        ({"signature": 12}, "malformed manifest.sig"),
    ],
)
def test_verify_rejects_bad_fields(
    key: SigningKey, keyring: Keyring, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ArtifactRejected, match=message) as info:
        keyring.verify(DATA, _doc(key, **changes))
    assert info.value.check == "signature"


def test_verify_rejects_changed_data(key: SigningKey, keyring: Keyring) -> None:
    with pytest.raises(ArtifactRejected, match="does not match") as info:
        keyring.verify(DATA + b" ", key.sign(DATA))
    assert info.value.check == "signature"


def test_verify_unknown_key(tmp_path: Path, keyring: Keyring) -> None:
    generate_keypair(tmp_path / "other")
    other = SigningKey.load(tmp_path / "other" / "model-signing.key")
    with pytest.raises(ArtifactRejected, match="not trusted") as info:
        keyring.verify(DATA, other.sign(DATA))
    assert info.value.check == "unknown_key"


def test_verify_claiming_a_trusted_key_id_with_another_key(
    tmp_path: Path, key: SigningKey, keyring: Keyring
) -> None:
    generate_keypair(tmp_path / "other")
    other = SigningKey.load(tmp_path / "other" / "model-signing.key")
    forged = json.loads(other.sign(DATA))
    forged["key_id"] = key.key_id
    with pytest.raises(ArtifactRejected) as info:
        keyring.verify(DATA, json.dumps(forged).encode())
    assert info.value.check == "signature"
