"""What the HTTP benchmark's modules share: paths, addresses, versions, app names.

Also the progress output on standard error, used by setup, load and measuring alike.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[1]
ROOT = BENCH_DIR.parent
BASELINES = BENCH_DIR / "baselines"
WRK_SCRIPT = BENCH_DIR / "wrk" / "post_json.lua"
LEAD_FILE = ROOT / "examples" / "leads" / "auto.json"
DEFAULT_CONFIG = ROOT / "config" / "models.yaml"
HOST = "127.0.0.1"
SCORE_PATH = "/api/v1/score"
RELOAD_PATH = "/api/v1/models/reload"
VERTICALS = ("auto", "home", "health", "life")
RELOAD_VERSIONS = ("1.0.0", "1.1.0")
SERVED_VERSION = "1.1.0"
RELOAD_INTERVAL_S = 0.5

APP_KEYS = ("ceiling", "seed", "ours")
# Not an --apps choice: it runs right after "ours" unless --no-tls.
TLS_APP = "ours_tls"
APP_LABELS = {
    "ceiling": "ceiling: Starlette, fixed body",
    "seed": "seed: FastAPI+pandas+Booster",
    "ours": "ours: ml-service serve",
    TLS_APP: "ours over TLS 1.3",
}


def progress(message: str) -> None:
    """Print a progress message to standard error."""
    print(message, file=sys.stderr, flush=True)


def stop_servers_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into ``SystemExit`` in the main thread.

    Raising there unwinds through every ``finally``, so the servers a benchmark started
    are stopped (their process groups killed) instead of left running.
    """

    def exit_on_signal(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, exit_on_signal)
