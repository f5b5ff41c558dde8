import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from api.auth import CACHE_SIZE, MAX_TOKEN_BYTES, REASONS, Authenticator, AuthError, issue_token
from api.token_keys import DEFAULT_GRACE_DAYS, revoke, rotate
from engine.store.signing import SigningKey, generate_keypair

DAY = 86400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keydir(tmp_path):
    rotate(tmp_path / "jwt")
    return tmp_path / "jwt"


def signing_key(keydir):
    return SigningKey.load(keydir / "jwt-signing.key")


def authenticator(keydir, clock=None):
    auth = Authenticator.from_directory(keydir / "trusted", "ml-service", "ml-service")
    if clock is not None:
        auth._clock = clock
    return auth


def refused(auth, token, role="scorer"):
    try:
        principal = auth.authenticate(f"Bearer {token}", role)
    except AuthError as exc:
        return exc
    raise AssertionError(f"accepted: {jwt.get_unverified_header(token)} {principal.role}")


def claims(**extra):
    base = {
        "sub": "x",
        "role": "scorer",
        "iss": "ml-service",
        "aud": "ml-service",
        "exp": int(time.time()) + 600,
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def signed(key, payload, headers=None):
    return jwt.encode(
        payload,
        key.private_key,
        algorithm="EdDSA",
        headers={"kid": key.key_id} if headers is None else headers,
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_roles_are_granted_by_the_table(keydir):
    key = signing_key(keydir)
    auth = authenticator(keydir)
    scorer = issue_token(key, "buyer-1", "scorer", 600)
    viewer = issue_token(key, "dash", "viewer", 600)
    admin = issue_token(key, "ops", "admin", 600)
    assert auth.authenticate(f"Bearer {scorer}", "scorer").subject == "buyer-1"
    assert auth.authenticate(f"bearer {viewer}", "viewer").role == "viewer"
    for role in ("scorer", "viewer", "admin"):
        assert auth.authenticate(f"Bearer {admin}", role).role == "admin"
    for token, role in ((scorer, "viewer"), (scorer, "admin"), (viewer, "scorer")):
        error = refused(auth, token, role)
        assert (error.status, error.reason) == (403, "forbidden")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Bearer", "scheme"),
        ("Basic abc", "scheme"),
        ("Bearer not-a-jwt", "malformed"),
        ("Bearer " + "a" * (MAX_TOKEN_BYTES + 1), "too_large"),
    ],
)
def test_malformed_headers_are_401(keydir, header, reason):
    with pytest.raises(AuthError) as info:
        authenticator(keydir).authenticate(header, "scorer")
    assert (info.value.status, info.value.reason) == (401, reason)
    assert info.value.message == REASONS[reason][1]


def test_every_forged_or_invalid_token_is_refused_by_category(keydir, tmp_path):
    key = signing_key(keydir)
    auth = authenticator(keydir)
    generate_keypair(tmp_path / "other", private_name="other.key")
    other = SigningKey.load(tmp_path / "other" / "other.key")
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Algorithm confusion: an HS256 token whose HMAC secret is the public key's PEM.
    header = b64(json.dumps({"alg": "HS256", "kid": key.key_id, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims(role="admin")).encode())
    mac = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    confused = f"{header}.{body}.{b64(mac)}"
    unsigned = f"{b64(json.dumps({'alg': 'none', 'kid': key.key_id}).encode())}.{body}."
    cases = {
        "algorithm": [confused, unsigned],
        "unknown_key": [
            signed(other, claims()),
            signed(key, claims(), headers={"kid": "0123456789abcdef"}),
            signed(key, claims(), headers={}),
        ],
        "bad_signature": [signed(other, claims(), headers={"kid": key.key_id})],
        "expired": [signed(key, claims(exp=int(time.time()) - 5))],
        "not_yet_valid": [signed(key, claims(nbf=int(time.time()) + 600))],
        "audience": [issue_token(key, "x", "scorer", 60, audience="someone-else")],
        "issuer": [issue_token(key, "x", "scorer", 60, issuer="someone-else")],
        "missing_claim": [signed(key, claims(sub=None)), signed(key, claims(role=None))],
        "unknown_role": [signed(key, claims(role="root")), signed(key, claims(role=["admin"]))],
        "invalid_claim": [signed(key, claims(sub=42))],
    }
    for reason, tokens in cases.items():
        for token in tokens:
            error = refused(auth, token)
            assert (error.status, error.reason) == (401, reason), reason
            # The body names the category in a fixed sentence, never library internals.
            assert error.message == REASONS[reason][1]


def test_revoked_token_ids_and_subjects_are_refused_after_reload(keydir):
    key = signing_key(keydir)
    auth = authenticator(keydir)
    by_id = issue_token(key, "alice", "scorer", 600, token_id="t-1")
    by_subject = issue_token(key, "mallory", "scorer", 600)
    kept = issue_token(key, "bob", "scorer", 600)
    for token in (by_id, by_subject, kept):
        auth.authenticate(f"Bearer {token}", "scorer")  # now cached
    revoke(keydir / "trusted", ["t-1"], ["mallory"])
    auth.reload()
    assert refused(auth, by_id).reason == "revoked"
    assert refused(auth, by_subject).reason == "revoked"
    assert auth.authenticate(f"Bearer {kept}", "scorer").subject == "bob"


def test_rotation_keeps_old_tokens_for_the_grace_then_refuses_them(keydir):
    clock = Clock(time.time())
    old_key = signing_key(keydir)
    old = issue_token(old_key, "x", "scorer", int(30 * DAY), now=clock.now)
    auth = authenticator(keydir, clock)
    auth.authenticate(f"Bearer {old}", "scorer")
    rotate(keydir, now=clock.now)
    auth.reload()
    new_key = signing_key(keydir)
    assert new_key.key_id != old_key.key_id
    fresh = issue_token(new_key, "x", "scorer", int(30 * DAY), now=clock.now)
    assert auth.authenticate(f"Bearer {old}", "scorer").subject == "x"  # grace period
    assert auth.authenticate(f"Bearer {fresh}", "scorer").subject == "x"
    # The grace ends: the cached token of the old key is refused at that instant.
    clock.now += DEFAULT_GRACE_DAYS * DAY + 1
    assert refused(auth, old).reason == "retired_key"
    assert auth.authenticate(f"Bearer {fresh}", "scorer").subject == "x"


def test_retired_key_is_refused_at_once_even_when_cached(keydir):
    start = time.time()
    first = signing_key(keydir)
    token = issue_token(first, "x", "scorer", int(90 * DAY), now=start)
    clock = Clock(start)
    auth = authenticator(keydir, clock)
    auth.authenticate(f"Bearer {token}", "scorer")
    # Two rotations later and past the maximum age, the first key is retired.
    rotate(keydir, grace_days=60, now=start + DAY)
    rotate(keydir, grace_days=60, now=start + 31 * DAY)
    assert not (keydir / "trusted" / f"{first.key_id}.pub").exists()
    clock.now = start + 31 * DAY + 1
    assert auth.authenticate(f"Bearer {token}", "scorer")  # cached, before the reload
    auth.reload()
    assert refused(auth, token).reason == "retired_key"


def test_cached_token_still_expires(keydir):
    key = signing_key(keydir)
    clock = Clock(time.time())
    token = issue_token(key, "x", "scorer", 60, now=clock.now)
    auth = authenticator(keydir, clock)
    auth.authenticate(f"Bearer {token}", "scorer")
    assert token in auth._cache
    clock.now += 120
    assert refused(auth, token).reason == "expired"


def test_a_bad_keyring_on_reload_keeps_the_previous_one(keydir):
    key = signing_key(keydir)
    auth = authenticator(keydir)
    token = issue_token(key, "x", "scorer", 600)
    (keydir / "trusted" / "keyring.json").write_text("{not json")
    from engine.errors import StoreError

    with pytest.raises(StoreError):
        auth.reload()
    assert auth.authenticate(f"Bearer {token}", "scorer").subject == "x"


def test_cache_is_bounded_and_evicts_least_recent(keydir):
    key = signing_key(keydir)
    auth = authenticator(keydir)
    first = issue_token(key, "first", "scorer", 600)
    auth.authenticate(f"Bearer {first}", "scorer")
    for i in range(CACHE_SIZE - 1):
        auth._cache[f"filler{i}"] = auth._cache[first]
    assert len(auth._cache) == CACHE_SIZE
    auth.authenticate(f"Bearer {first}", "scorer")  # a hit makes it the most recent
    auth.authenticate(f"Bearer {issue_token(key, 'new', 'scorer', 601)}", "scorer")
    assert len(auth._cache) == CACHE_SIZE
    assert first in auth._cache and "filler0" not in auth._cache


def test_issue_token_rejects_bad_input(keydir):
    key = signing_key(keydir)
    with pytest.raises(ValueError):
        issue_token(key, "x", "owner", 60)
    with pytest.raises(ValueError):
        issue_token(key, "x", "scorer", 0)
    payload = jwt.decode(issue_token(key, "x", "viewer", 60), options={"verify_signature": False})
    assert payload["role"] == "viewer" and len(payload["jti"]) == 24
