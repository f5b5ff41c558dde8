"""The pure parts of the HTTP benchmark (bench/bench_http.py and bench/httpbench/)."""

from __future__ import annotations

import dataclasses
import math
import socket
from pathlib import Path

import bench_http
import pytest
from httpbench.common import BASELINES, WRK_SCRIPT
from httpbench.goals import Goal, evaluate_goals
from httpbench.load import build_request
from httpbench.parsing import (
    LoadResult,
    parse_response_head,
    parse_wrk,
    parse_wrk_time,
    percentile,
)
from httpbench.procfs import (
    CpuSample,
    Memory,
    other_cpu_share,
    parse_pid_cpu_ticks,
    parse_proc_stat_cpu,
    parse_vmrss_kib,
)
from httpbench.report import table_row
from httpbench.runs import AppRun, pick_median
from httpbench.servers import free_port

from .wrk_samples import MICROSECONDS, MILLISECONDS, NON_2XX, SECONDS, TIMEOUTS


def result(rps: float, p99_ms: float = 1.0, non_2xx: int = 0, **socket_errors: int) -> LoadResult:
    return LoadResult(
        requests=int(rps * 10),
        seconds=10.0,
        rps=rps,
        p50_ms=p99_ms / 2,
        p99_ms=p99_ms,
        non_2xx=non_2xx,
        socket_errors=socket_errors,
    )


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("118.00us", 0.118),
        ("1.41ms", 1.41),
        ("59.52ms", 59.52),
        ("2.23s", 2230.0),
        ("3.42s ", 3420.0),
        ("1.50m", 90_000.0),
        ("2.00h", 7_200_000.0),
        ("0.00us", 0.0),
        ("7s", 7000.0),
    ],
)
def test_wrk_time_units_convert_to_milliseconds(text, ms):
    assert parse_wrk_time(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["", "12", "1.2 ms", "ms", "1.2ns", "-1ms", "1.2k"])
def test_wrk_time_rejects_what_wrk_does_not_print(text):
    with pytest.raises(ValueError, match="not a wrk time"):
        parse_wrk_time(text)


def test_parse_microseconds_sample():
    parsed = parse_wrk(MICROSECONDS)
    assert parsed.requests == 49919
    assert parsed.seconds == pytest.approx(3.10)
    assert parsed.rps == pytest.approx(16105.10)
    assert parsed.p50_ms == pytest.approx(0.118)
    assert parsed.p99_ms == pytest.approx(0.192)
    assert parsed.non_2xx == 0
    assert parsed.socket_errors == {}
    assert parsed.errors == 0
    assert parsed.generator == "wrk"


def test_parse_milliseconds_sample():
    parsed = parse_wrk(MILLISECONDS)
    assert parsed.requests == 4927
    assert parsed.rps == pytest.approx(984.17)
    assert parsed.p50_ms == pytest.approx(32.41)
    assert parsed.p99_ms == pytest.approx(59.52)
    assert parsed.seconds == pytest.approx(5.01)


def test_parse_seconds_sample_with_padded_units():
    parsed = parse_wrk(SECONDS)
    assert parsed.p50_ms == pytest.approx(2230.0)
    assert parsed.p99_ms == pytest.approx(3420.0)
    assert parsed.requests == 7511


def test_the_thread_stats_max_is_not_taken_for_a_percentile():
    # The "Latency ... Max" line holds 250.00ms; p99 is 59.52ms.
    assert parse_wrk(MILLISECONDS).p99_ms < 100


def test_parse_non_2xx_sample():
    parsed = parse_wrk(NON_2XX)
    assert parsed.non_2xx == 39862 == parsed.requests
    assert parsed.errors == 39862


def test_parse_socket_errors_sample():
    parsed = parse_wrk(TIMEOUTS)
    assert parsed.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 19}
    assert parsed.non_2xx == 0
    assert parsed.errors == 19


@pytest.mark.parametrize(
    "output",
    [
        "",
        "unable to connect to 127.0.0.1:18099 Connection refused\n",
        # Without --latency there is no distribution.
        MILLISECONDS.replace("  Latency Distribution\n", "").replace("     99%   59.52ms\n", ""),
    ],
)
def test_parse_rejects_incomplete_output(output):
    with pytest.raises(ValueError, match="wrk --latency"):
        parse_wrk(output)


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
    assert math.isnan(percentile([], 50))


def test_parse_response_head():
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 42\r\n\r\n"
    assert parse_response_head(head) == (200, 42)
    assert parse_response_head(b"HTTP/1.1 401 Unauthorized\r\n\r\n") == (401, -1)
    with pytest.raises(ValueError, match="bad status line"):
        parse_response_head(b"garbage\r\n\r\n")


def test_request_bytes_carry_body_and_headers():
    request = build_request(8000, "/api/v1/score", b'{"a":1}', "Bearer t")
    head, _, body = request.partition(b"\r\n\r\n")
    assert body == b'{"a":1}'
    assert head.startswith(b"POST /api/v1/score HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 7" in head
    assert b"\r\nAuthorization: Bearer t" in head
    assert b"Authorization" not in build_request(8000, "/", b"", "")


def test_vmrss_parsing_of_a_real_status_file():
    status = Path("/proc/self/status").read_text()
    assert parse_vmrss_kib(status) > 1000
    assert parse_vmrss_kib("Name:\tpython\nVmRSS:\t  65432 kB\n") == 65432
    assert parse_vmrss_kib("Name:\tkthreadd\n") == 0


def test_proc_stat_cpu_line():
    stat = "cpu  100 5 50 1000 20 3 2 10 0 0\ncpu0 50 2 25 500 10 1 1 5 0 0\n"
    # busy: user nice system irq softirq steal; idle and iowait are not busy.
    assert parse_proc_stat_cpu(stat) == (170, 1190)
    busy, total = parse_proc_stat_cpu(Path("/proc/stat").read_text())
    assert 0 < busy < total


def test_pid_cpu_ticks_of_a_real_stat_file():
    assert parse_pid_cpu_ticks(Path("/proc/self/stat").read_text()) >= 0
    # A command with spaces and parentheses does not shift the fields.
    stat = "42 (gunicorn: worker (x)) S 1 42 42 0 -1 4194560 9 0 0 0 70 30 0 0 20 0 3 0"
    assert parse_pid_cpu_ticks(stat) == 100
    assert parse_pid_cpu_ticks("") == 0


def test_other_cpu_share():
    before = CpuSample(busy=100.0, total=1000.0, ours=50.0)
    # 20 s of 2 cores elapsed = 40 s total; 30 s busy of which 27 s ours: 3 s others.
    after = CpuSample(busy=130.0, total=1040.0, ours=77.0)
    assert other_cpu_share(before, after) == pytest.approx(3 / 40)
    # Accounting noise never goes below zero or above one.
    assert other_cpu_share(before, CpuSample(130.0, 1040.0, 90.0)) == 0.0
    assert math.isnan(other_cpu_share(before, before))


def test_table_row_shows_other_cpu():
    row = table_row("app", result(12000.0, p99_ms=4.5))
    assert row.split()[-1] == "?"
    row = table_row("app", dataclasses.replace(result(12000.0), other_cpu=0.123))
    assert row.split()[1:] == ["12000", "0.50", "1.00", "0", "0", "12%"]


def test_goals_all_met():
    goals = evaluate_goals(result(20000), result(1000), result(15000, p99_ms=4.0), result(14000))
    assert [g.met for g in goals] == [True] * 5
    assert goals[0].value == pytest.approx(0.75)
    assert goals[1].value == pytest.approx(15.0)
    assert goals[2].value == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("ours", "missed"),
    [
        (result(11000, p99_ms=4.0), "ours / ceiling throughput"),  # 0.55 of the ceiling
        (result(13000, p99_ms=5.01), "our p99"),
        (result(13000, p99_ms=4.0, non_2xx=1), "our failed requests"),
        (result(13000, p99_ms=4.0, timeout=2), "our failed requests"),
    ],
)
def test_each_goal_can_be_missed(ours, missed):
    goals = evaluate_goals(result(20000), result(1000), ours)
    assert [g.label for g in goals if not g.met] == [missed]


def test_seed_ratio_goal():
    goals = evaluate_goals(result(20000), result(2000), result(15000))
    assert [g.label for g in goals if not g.met] == ["ours / seed throughput"]
    assert goals[1].value == pytest.approx(7.5)


def test_boundaries_are_inclusive():
    goals = evaluate_goals(result(10000), result(750), result(6000, p99_ms=5.0))
    assert all(g.met for g in goals)


def test_errors_in_the_reload_window_miss_a_goal():
    goals = evaluate_goals(result(20000), result(1000), result(15000), result(15000, read=3))
    assert [g.label for g in goals if not g.met] == ["our failed requests, reload window"]


def test_missing_measurements_never_pass():
    goals = evaluate_goals(result(20000), result(1000), None)
    assert not any(g.met for g in goals)
    assert "n/a" in goals[0].line()
    assert not evaluate_goals(None, None, result(15000))[0].met
    assert not evaluate_goals(result(0), result(0), result(15000))[1].met


def test_goal_lines():
    line = Goal("ours / ceiling throughput", 0.75, 0.6, at_least=True).line()
    assert line.split()[-5:] == ["0.750x", "goal", ">=", "0.6x", "ok"]
    assert "0.598x" in Goal("r", 0.598, 0.6, at_least=True).line()
    line = Goal("our p99", 6.5, 5.0, at_least=False, unit=" ms").line()
    assert "6.50 ms" in line
    assert "<= 5 ms" in line
    assert line.endswith("MISSED")
    assert Goal("our failed requests", 0, 0, at_least=False, unit="").line().endswith("ok")


def test_free_port_is_bindable_on_loopback():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_median_round_is_picked_by_throughput():
    memory = Memory(1, (2,))
    runs = [AppRun(result(rps), memory) for rps in (900.0, 1100.0, 1000.0)]
    assert pick_median(runs).result.rps == 1000.0
    assert pick_median(runs[:2]).result.rps == 900.0


def test_memory_line_in_mebibytes():
    line = Memory(30 * 1024, (64 * 1024, 65 * 1024)).line()
    assert line == "master 30 MiB, workers 64, 65 MiB, total 159 MiB"


def test_command_line_defaults_and_options():
    args = bench_http.parse_args([])
    assert (args.duration, args.connections, args.warmup, args.rounds) == (10, 32, 2, 1)
    assert args.apps == ["ceiling", "seed", "ours"]
    assert not args.check
    assert not args.skip_reload
    args = bench_http.parse_args(
        ["--workers", "3", "--duration", "4", "--check", "--skip-reload", "--apps", "seed,ours"]
    )
    assert (args.workers, args.duration, args.check, args.skip_reload) == (3, 4, True, True)
    assert args.apps == ["seed", "ours"]
    with pytest.raises(SystemExit):
        bench_http.parse_args(["--apps", "nginx"])
    with pytest.raises(SystemExit):
        bench_http.parse_args(["--duration", "0"])


def test_the_wrk_script_and_baselines_exist():
    assert WRK_SCRIPT.is_file()
    assert "WRK_BODY_FILE" in WRK_SCRIPT.read_text()
    assert (BASELINES / "ceiling_app.py").is_file()
    assert (BASELINES / "seed_app.py").is_file()
