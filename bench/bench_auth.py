"""Per-request cost of authentication, side by side in one run.

Times, per call, interleaved in rounds so that machine noise hits every contender alike:

- baseline: finding the ``Authorization`` header in an ASGI scope (what any route that
  reads a header pays), the floor under every contender.
- cached: ``Authenticator.authenticate`` for a token verified before (every request of a
  caller after its first): header parsing, an LRU hit, the expiry and role checks.
- verify: the same for a token never seen (the first request of a token, or every
  request when the cache is defeated): base64, JSON, an Ed25519 signature check, the
  claims checks.
- refused: a forged token (bad signature), the cost an attacker imposes per request.

Prints microseconds per call and each contender against the baseline, and the cached
cost as a share of the measured per-request time of the service when ``--request-us``
is given (from ``bench/bench_http.py``: 1e6 / (req/s per core)).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from api.auth import Authenticator, AuthError, issue_token
from api.token_keys import rotate
from engine.store.signing import SigningKey, generate_keypair

Timed = Callable[[int], None]


def contenders(workdir: Path) -> dict[str, Timed]:
    """Build the timed functions over a real keyring."""
    rotate(workdir / "jwt")
    key = SigningKey.load(workdir / "jwt" / "jwt-signing.key")
    auth = Authenticator.from_directory(workdir / "jwt" / "trusted", "ml-service", "ml-service")
    token = issue_token(key, "bench", "scorer", 3600)
    header = f"Bearer {token}"
    auth.authenticate(header, "scorer")
    # Fresh tokens for the verify path; the cache is cleared before every round, so
    # each call verifies a signature.
    fresh = [f"Bearer {issue_token(key, f'b{i}', 'scorer', 3600)}" for i in range(2000)]
    generate_keypair(workdir / "other", private_name="other.key")
    other = SigningKey.load(workdir / "other" / "other.key")
    # The trusted key's header and claims with another key's signature: the full
    # signature check runs, then fails.
    trusted_head, claims, _ = token.split(".")
    signature = issue_token(other, "bench", "scorer", 3600).split(".")[2]
    forged_header = f"Bearer {trusted_head}.{claims}.{signature}"
    scope_headers = [
        (b"host", b"localhost:8000"),
        (b"content-type", b"application/json"),
        (b"content-length", b"412"),
        (b"authorization", header.encode()),
    ]

    def baseline(n: int) -> None:
        for _ in range(n):
            for name, value in scope_headers:
                if name == b"authorization":
                    value.decode("latin-1")
                    break

    def cached(n: int) -> None:
        for _ in range(n):
            auth.authenticate(header, "scorer")

    def verify(n: int) -> None:
        auth._cache.clear()
        for i in range(n):
            auth.authenticate(fresh[i % len(fresh)], "scorer")

    def refused(n: int) -> None:
        for _ in range(n):
            with contextlib.suppress(AuthError):
                auth.authenticate(forged_header, "scorer")

    return {"baseline": baseline, "cached": cached, "verify": verify, "refused": refused}


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (default 2000)")
    parser.add_argument(
        "--request-us",
        type=float,
        help="the service's measured time per request per core, to show auth's share",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        timed = contenders(Path(tmp))
        samples: dict[str, list[float]] = {name: [] for name in timed}
        for _ in range(args.rounds):
            for name, run in timed.items():
                started = time.perf_counter()
                run(args.calls)
                samples[name].append((time.perf_counter() - started) / args.calls * 1e6)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["baseline"]
    print(f"{'contender':<10} {'µs/call':>9} {'vs baseline':>12}")
    for name, value in medians.items():
        print(f"{name:<10} {value:>9.2f} {value / base:>11.1f}x")
    if args.request_us:
        share = medians["cached"] / args.request_us
        print(f"cached auth is {share:.1%} of a {args.request_us:.1f} µs request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
