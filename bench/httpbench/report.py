"""The printed report: the results table, the reload window, TLS cost, answers, memory."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from httpbench.common import (
    APP_LABELS,
    LEAD_FILE,
    RELOAD_INTERVAL_S,
    ROOT,
    SERVED_VERSION,
    TLS_APP,
)
from httpbench.goals import ratio
from httpbench.parsing import LoadResult, percentile
from httpbench.runs import AppRun


def table_row(label: str, result: LoadResult) -> str:
    """One row of the results table."""
    other = f"{result.other_cpu:.0%}" if result.other_cpu == result.other_cpu else "?"
    return (
        f"{label:<32}{result.rps:>9.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
        f"{result.non_2xx:>9}{sum(result.socket_errors.values()):>9}{other:>11}"
    )


def tls_cost_lines(plain: LoadResult, tls: LoadResult, cores: int) -> list[str]:
    """Lines comparing our service over TLS 1.3 with plain HTTP, measured in the same run.

    Besides throughput and latency: the server's CPU time per request (its processes'
    user + system time over the run, divided by the requests), which a busy neighbour
    hardly distorts; and the machine time per request, ``cores / rps`` (server and load
    generator share the cores, so both sides' encryption is in it), which one does.
    """
    per_request_us = [cores / r.rps * 1e6 if r.rps > 0 else float("nan") for r in (plain, tls)]
    cpu_us = [r.server_cpu_us_per_request for r in (plain, tls)]
    return [
        "TLS 1.3 cost (ours over TLS against plain HTTP, same run, keep-alive connections):",
        f"  throughput {ratio(tls.rps, plain.rps):.3f}x ({tls.rps:.0f} vs {plain.rps:.0f} req/s); "
        f"p50 {tls.p50_ms:.2f} vs {plain.p50_ms:.2f} ms ({tls.p50_ms - plain.p50_ms:+.2f}); "
        f"p99 {tls.p99_ms:.2f} vs {plain.p99_ms:.2f} ms ({tls.p99_ms - plain.p99_ms:+.2f})",
        f"  server CPU per request: {cpu_us[1]:.0f} vs {cpu_us[0]:.0f} us "
        f"({cpu_us[1] - cpu_us[0]:+.0f} us, {ratio(cpu_us[1], cpu_us[0]):.2f}x)",
        f"  machine time per request ({cores} cores / req/s): {per_request_us[1]:.0f} vs "
        f"{per_request_us[0]:.0f} us ({per_request_us[1] - per_request_us[0]:+.0f} us)",
    ]


def print_report(
    runs: Mapping[str, AppRun],
    reload_run: AppRun | None,
    args: argparse.Namespace,
    generator: str,
) -> None:
    """Print the results table, the reload window, answers and memory."""
    if generator == "wrk":
        how = f"wrk -t{min(2, args.connections)} -c{args.connections} -d{args.duration}s --latency"
    else:
        how = f"built-in asyncio generator, {args.connections} connections, {args.duration} s"
    print(
        f"\n{args.workers} gunicorn workers per app, {how}, {args.warmup} s warm-up; "
        f"auto v{SERVED_VERSION}, lead {LEAD_FILE.relative_to(ROOT)}\n"
    )
    print(
        f"{'app':<32}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'sock err':>9}"
        f"{'other CPU':>11}"
    )
    for key, run in runs.items():
        print(table_row(APP_LABELS[key], run.result))
    if reload_run is not None and reload_run.reload_window and reload_run.reload_log:
        log = reload_run.reload_log
        print(table_row(f"ours, reloads every {RELOAD_INTERVAL_S:g} s", reload_run.reload_window))
        statuses = ", ".join(f"{n}x {s or 'no answer'}" for s, n in sorted(log.statuses.items()))
        slowest = max(log.seconds, default=0.0) * 1e3
        median = percentile(sorted(log.seconds), 50) * 1e3
        print(
            f"\nreload window: reload statuses {statuses or 'none'} "
            f"(median {median:.0f} ms, slowest {slowest:.0f} ms); versions scored right after "
            f"a reload: {dict(sorted(log.versions_seen.items())) or 'none'}"
        )
        for failure in log.failures[:5]:
            print(f"  reload failed: {failure}")
    if "ours" in runs and TLS_APP in runs:
        print()
        cores = len(os.sched_getaffinity(0))
        for line in tls_cost_lines(runs["ours"].result, runs[TLS_APP].result, cores):
            print(line)
    print(
        "\nother CPU: share of the machine's CPU time used outside this benchmark's processes "
        "during the run\n(other processes, interrupts, hypervisor steal); above ~10% a neighbour "
        "distorted that row."
    )
    print("\nfirst answer of each app (the same lead, the same auto model):")
    for key, run in runs.items():
        print(f"  {APP_LABELS[key]:<32}{run.answer[:160]}")
    ours = runs.get("ours")
    if ours is not None:
        print(f"\nours, GET /ready at start: {ours.ready}")
    print("\nresident memory (VmRSS) after the measured run:")
    for key, run in runs.items():
        print(f"  {APP_LABELS[key]:<32}{run.memory.line()}")
    if reload_run is not None and reload_run.memory_after_reloads is not None:
        print(f"  {'ours, after the reload window':<32}{reload_run.memory_after_reloads.line()}")
