"""``ml-service auth``: keygen, rotate, keys, revoke and token, on real key files."""

import jwt
import pytest

from api.auth import Authenticator
from api.cli import main
from api.token_keys import load_token_keys, read_metadata


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_key_life_cycle_through_the_cli(tmp_path, capsys):
    keys = str(tmp_path / "jwt")
    code, out, _ = run(capsys, "auth", "keygen", "--dir", keys)
    assert code == 0 and "keep it secret" in out
    first = next(iter(read_metadata(tmp_path / "jwt" / "trusted").keys))
    code, _, err = run(capsys, "auth", "keygen", "--dir", keys)
    assert code == 1 and "auth rotate" in err  # never replaces a key

    signing = str(tmp_path / "jwt" / "jwt-signing.key")
    code, token, _ = run(
        capsys, "auth", "token", "--role", "viewer", "--key", signing, "--id", "t1"
    )
    claims = jwt.decode(token.strip(), options={"verify_signature": False})
    assert code == 0 and claims["role"] == "viewer" and claims["jti"] == "t1"

    code, out, _ = run(capsys, "auth", "rotate", "--dir", keys, "--grace-days", "2")
    assert code == 0 and "verify-only until" in out and first in out and "reload" in out
    code, out, _ = run(capsys, "auth", "keys", "--dir", keys)
    states = dict(line.split()[:2] for line in out.splitlines())
    assert states[first] == "verify_only" and sorted(states.values()) == ["active", "verify_only"]

    auth = Authenticator.from_directory(tmp_path / "jwt" / "trusted", "ml-service", "ml-service")
    assert auth.authenticate(f"Bearer {token.strip()}", "viewer").subject == "cli"
    code, out, _ = run(capsys, "auth", "revoke", "--dir", keys, "--jti", "t1")
    assert code == 0 and "1 token id(s)" in out
    assert load_token_keys(tmp_path / "jwt" / "trusted").revoked_ids == {"t1"}


def test_revoke_needs_something_to_revoke(tmp_path, capsys):
    run(capsys, "auth", "keygen", "--dir", str(tmp_path))
    code, _, err = run(capsys, "auth", "revoke", "--dir", str(tmp_path))
    assert code == 1 and "--jti or --subject" in err


@pytest.mark.parametrize("argv", [["--grace-days", "0"], ["--max-age-days", "-1"]])
def test_rotate_refuses_non_positive_periods(tmp_path, capsys, argv):
    code, _, err = run(capsys, "auth", "rotate", "--dir", str(tmp_path), *argv)
    assert code == 1 and "positive" in err
