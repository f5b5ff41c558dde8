import time

import pytest

from api.auth import CACHE_SIZE, Authenticator, AuthError, issue_token
from engine.store.signing import Keyring, SigningKey, generate_keypair


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("jwt")
    generate_keypair(directory, private_name="jwt.key")
    return SigningKey.load(directory / "jwt.key"), directory / "trusted"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def authenticator(trusted, clock=None):
    auth = Authenticator.from_directory(trusted, "ml-service", "ml-service")
    if clock is not None:
        auth._clock = clock
    return auth


def test_roles(keys):
    key, trusted = keys
    auth = authenticator(trusted)
    scorer = issue_token(key, "buyer-1", "scorer", 600)
    admin = issue_token(key, "ops", "admin", 600)
    assert auth.authenticate(f"Bearer {scorer}", "scorer").subject == "buyer-1"
    assert auth.authenticate(f"bearer {admin}", "admin").role == "admin"
    assert auth.authenticate(f"Bearer {admin}", "scorer").role == "admin"
    with pytest.raises(AuthError) as info:
        auth.authenticate(f"Bearer {scorer}", "admin")
    assert info.value.status == 403


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer not-a-jwt"])
def test_malformed_headers_are_401(keys, header):
    with pytest.raises(AuthError) as info:
        authenticator(keys[1]).authenticate(header, "scorer")
    assert info.value.status == 401


def test_cached_token_still_expires(keys):
    key, trusted = keys
    clock = Clock(time.time())
    token = issue_token(key, "x", "scorer", 60, now=clock.now)
    auth = authenticator(trusted, clock)
    auth.authenticate(f"Bearer {token}", "scorer")
    assert token in auth._cache
    clock.now += 120
    with pytest.raises(AuthError, match="expired"):
        auth.authenticate(f"Bearer {token}", "scorer")


def test_wrong_audience_issuer_and_claims(keys, tmp_path):
    key, trusted = keys
    auth = authenticator(trusted)
    for token in (
        issue_token(key, "x", "scorer", 60, audience="someone-else"),
        issue_token(key, "x", "scorer", 60, issuer="someone-else"),
    ):
        with pytest.raises(AuthError) as info:
            auth.authenticate(f"Bearer {token}", "scorer")
        assert info.value.status == 401
    import jwt

    no_role = jwt.encode(
        {
            "sub": "x",
            "exp": 4_000_000_000,
            "iss": "ml-service",
            "aud": "ml-service",
            "role": "root",
        },
        key.private_key,
        algorithm="EdDSA",
        headers={"kid": key.key_id},
    )
    with pytest.raises(AuthError, match="role must be one of"):
        auth.authenticate(f"Bearer {no_role}", "scorer")
    generate_keypair(tmp_path, private_name="other.key")
    other = SigningKey.load(tmp_path / "other.key")
    forged = jwt.encode(
        {
            "sub": "x",
            "exp": 4_000_000_000,
            "iss": "ml-service",
            "aud": "ml-service",
            "role": "admin",
        },
        other.private_key,
        algorithm="EdDSA",
        headers={"kid": key.key_id},
    )
    with pytest.raises(AuthError, match="invalid token"):
        auth.authenticate(f"Bearer {forged}", "scorer")


def test_cache_is_bounded_and_evicts_least_recent(keys):
    key, trusted = keys
    auth = authenticator(trusted)
    first = issue_token(key, "first", "scorer", 600)
    auth.authenticate(f"Bearer {first}", "scorer")
    for i in range(CACHE_SIZE - 1):
        auth._cache[f"filler{i}"] = auth._cache[first]
    assert len(auth._cache) == CACHE_SIZE
    auth.authenticate(f"Bearer {first}", "scorer")  # a hit makes it the most recent
    auth.authenticate(f"Bearer {issue_token(key, 'new', 'scorer', 601)}", "scorer")
    assert len(auth._cache) == CACHE_SIZE
    assert first in auth._cache and "filler0" not in auth._cache


def test_issue_token_rejects_bad_input(keys):
    with pytest.raises(ValueError):
        issue_token(keys[0], "x", "owner", 60)
    with pytest.raises(ValueError):
        issue_token(keys[0], "x", "scorer", 0)
    assert Keyring.load(keys[1]).key_ids == {keys[0].key_id}
