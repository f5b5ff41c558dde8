"""Scrape cost of ``/metrics`` as the service runs: fresh, after traffic, after deaths.

Starts the real service (``ml-service serve``, 2 workers) and times scrapes of the
master's ``/metrics`` (median of ``--scrapes``, each on a fresh connection, as
Prometheus does) at three moments:

1. fresh, after a warm-up request per vertical;
2. after ``--requests`` scoring requests (10,000 by default);
3. after ``--replacements`` worker replacements (30 by default): each a SIGKILL to a
   worker, waiting until gunicorn's replacement has loaded its models.

Then it prints the ratios against the fresh scrape (flat is 1.0x) and the number of
metrics files. As the baseline of the same run it times the collection (in process,
the way the master does it) over two copies of the metrics directory as it ended: as
our master keeps it (dead workers' files retired, ``api.metrics_files``), and as
prometheus_client alone would have left it (one counter and one histogram file per
dead worker, made from a live worker's files under the dead workers' pids).

Usage: ``python bench/bench_scrape.py [--requests N] [--replacements N] [--scrapes N]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from httpbench.common import HOST, LEAD_FILE, progress
from httpbench.servers import ours_spec, running
from httpbench.workspace import Workspace, mint_tokens, prepare_models

from api.reload_state import ReloadState

VERTICALS = ("auto", "home", "health", "life")
WORKERS = 2


def scrape_once(port: int) -> tuple[float, int]:
    """Return (seconds, bytes) of one scrape on a fresh connection."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    connection.request("GET", "/metrics")
    body = connection.getresponse().read()
    connection.close()
    return time.perf_counter() - started, len(body)


def scrape_cost(port: int, scrapes: int) -> tuple[float, int]:
    """Median milliseconds of ``scrapes`` scrapes, and the size of the last."""
    times = []
    size = 0
    for _ in range(scrapes):
        seconds, size = scrape_once(port)
        times.append(seconds)
    return statistics.median(times) * 1000, size


def collect_cost(directory: Path, rounds: int) -> float:
    """Median milliseconds of the master's collection over ``directory``, in process."""
    from prometheus_client import generate_latest

    from api.metrics_files import metrics_registry

    registry = metrics_registry(directory)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        generate_latest(registry)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def send_requests(port: int, token: str, total: int, connections: int = 4) -> int:
    """Send ``total`` scoring requests over ``connections`` keep-alive connections."""
    lead = json.loads(LEAD_FILE.read_text(encoding="utf-8"))
    body = json.dumps({"vertical": "auto", "lead_data": lead}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    ok = [0] * connections

    def run(index: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        for _ in range(total // connections):
            connection.request("POST", "/api/v1/score", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            ok[index] += response.status == 200
        connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(ok)


def live_workers(run_dir: Path) -> dict[int, int]:
    """Slot -> pid of the workers that have loaded their models."""
    state = ReloadState(run_dir / "reload.state")
    try:
        return {w.slot: w.pid for w in state.workers()}
    finally:
        state.close()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it holds, or raise naming ``what``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def replace_workers(run_dir: Path, count: int) -> None:
    """SIGKILL a worker ``count`` times (alternating slots), waiting for each replacement."""
    for number in range(count):
        slot = number % WORKERS
        victim = live_workers(run_dir)[slot]
        os.kill(victim, signal.SIGKILL)

        def replaced(slot: int = slot, victim: int = victim) -> bool:
            now = live_workers(run_dir)
            return now.get(slot) not in (None, victim) and len(now) == WORKERS

        wait_until(replaced, 60, f"slot {slot} to be replaced")


def unretired_copy(metrics_dir: Path, target: Path, dead: int) -> None:
    """Copy ``metrics_dir`` as prometheus_client alone would have left it.

    That is: after ``dead`` worker deaths, a counter and a histogram file per dead
    worker (copies of the largest live worker's) instead of the two retired files.
    """
    shutil.copytree(metrics_dir, target)
    for retired in target.glob("*_retired.db"):
        retired.unlink()
    live = sorted(target.glob("counter_*.db"), key=lambda p: p.stat().st_size)[-1]
    pid = live.stem.split("_", 1)[1]
    for number in range(dead):
        fake = 4_000_000 + number
        for kind in ("counter", "histogram"):
            source = target / f"{kind}_{pid}.db"
            if source.exists():
                shutil.copy(source, target / f"{kind}_{fake}.db")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="scoring requests sent")
    parser.add_argument("--replacements", type=int, default=30, help="worker replacements")
    parser.add_argument("--scrapes", type=int, default=30, help="scrapes timed per moment")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as tmp:
        root = Path(tmp)
        space = Workspace(root)
        prepare_models(space, VERTICALS)
        scorer, _admin = mint_tokens(space)
        spec = ours_spec(space, WORKERS, scorer)
        metrics_port = int(spec.env["METRICS_PORT"])
        run_dir = Path(spec.env["RUN_DIR"])
        metrics_dir = run_dir / "metrics"
        moments: list[tuple[str, float, int, int]] = []

        def measure(label: str) -> None:
            time.sleep(0.2)  # a watcher tick: buffered values reach the files
            cost, size = scrape_cost(metrics_port, args.scrapes)
            files = len(list(metrics_dir.glob("*.db")))
            moments.append((label, cost, size, files))
            progress(f"{label}: {cost:.2f} ms, {size} bytes, {files} files")

        with running(spec, root, WORKERS):
            send_requests(spec.port, scorer, 8, connections=1)
            measure("fresh")
            progress(f"sending {args.requests} scoring requests")
            ok = send_requests(spec.port, scorer, args.requests)
            measure(f"after {ok} requests")
            progress(f"replacing workers {args.replacements} times")
            replace_workers(run_dir, args.replacements)
            measure(f"after {args.replacements} worker replacements")
            kept = root / "kept"
            shutil.copytree(metrics_dir, kept)
        unretired = root / "unretired"
        unretired_copy(kept, unretired, args.replacements)
        ours_ms = collect_cost(kept, args.scrapes)
        alone_ms = collect_cost(unretired, args.scrapes)

    fresh = moments[0][1]
    print(f"\nScrape of /metrics (median of {args.scrapes}, fresh connection each), 2 workers:")
    print(f"  {'moment':<34}{'ms':>8}{'x fresh':>9}{'bytes':>9}{'files':>7}")
    for label, cost, size, files in moments:
        print(f"  {label:<34}{cost:>8.2f}{cost / fresh:>8.2f}x{size:>9}{files:>7}")
    print(
        f"\nCollection in process over the final directory (median of {args.scrapes}):\n"
        f"  dead workers retired (ours):             {ours_ms:.2f} ms\n"
        f"  dead workers' files kept (client alone): {alone_ms:.2f} ms "
        f"({alone_ms / ours_ms:.2f}x ours)"
    )


if __name__ == "__main__":
    main()
