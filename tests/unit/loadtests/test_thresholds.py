"""Reading locust's CSV reports back, and the verdict over them.

The reports are written here in the exact layout locust 2.x writes (header lines copied
from a real run); the integration test reads reports of a real locust run.
"""

from __future__ import annotations

import csv

import pytest

from loadtests import mix
from loadtests.thresholds import Thresholds, judge, read_results, summary

STATS_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
FAILURES_HEADER = "Method,Name,Error,Occurrences,First Seen,Last Seen"
EXCEPTIONS_HEADER = "Count,Message,Traceback,Nodes"
ALL = (*mix.TASK_KINDS, mix.RELOAD)


def stats_line(method, name, requests, failures, p50, p99, rps=10.0):
    cells = [method, name, requests, failures, p50, p50 + 0.5, 0.3, p99 + 5, 100, rps, 0.0]
    cells += [p50, p50, p50, p50, p99, p99, p99, p99, p99 + 5, p99 + 5, p99 + 5]
    return ",".join(str(c) for c in cells)


def write_reports(tmp_path, rows, failures=(), exceptions=(), total_p99=None):
    """Write <tmp>/run_stats.csv, _failures.csv, _exceptions.csv; return the prefix.

    The aggregate's p99 is ``total_p99``, or the worst p99 of the rows but the reload's
    (a few reloads among hundreds of requests do not move the aggregate's p99).
    """
    prefix = tmp_path / "run"
    total = sum(r[2] for r in rows)
    failed = sum(r[3] for r in rows)
    worst = max((r[5] for r in rows if r[1] != mix.RELOAD_PATH), default=0)
    worst = worst if total_p99 is None else total_p99
    lines = [STATS_HEADER, *(stats_line(*r) for r in rows)]
    lines.append(stats_line("", "Aggregated", total, failed, 2, worst, rps=100.0))
    (tmp_path / "run_stats.csv").write_text("\n".join(lines) + "\n")
    with (tmp_path / "run_failures.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FAILURES_HEADER.split(","))
        for method, name, error, count in failures:
            writer.writerow([method, name, error, count, "2026-11-27T16:20:56Z", "same"])
    with (tmp_path / "run_exceptions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EXCEPTIONS_HEADER.split(","))
        for count, message in exceptions:
            writer.writerow([count, message, "Traceback ...", "local"])
    return prefix


def healthy_rows():
    return [
        ("POST", mix.score_name("auto"), 500, 0, 1, 12),
        ("POST", mix.score_name("home"), 250, 0, 1, 10),
        ("POST", mix.batch_name("auto"), 30, 0, 3, 40),
        ("POST", mix.invalid_name("unknown field"), 12, 0, 1, 4),
        ("POST", mix.FEEDBACK_PATH, 80, 0, 1, 9),
        ("POST", mix.FEEDBACK_BATCH_PATH, 6, 0, 2, 11),
        ("POST", mix.RELOAD_PATH, 3, 0, 120, 700),  # reloads wait for every worker
    ]


def connection_error(name, count):
    return (
        "POST",
        name,
        "CatchResponseError(\"connection error: HTTPConnectionClosed('x')\")",
        count,
    )


def test_a_healthy_run_passes_and_reads_back(tmp_path):
    results = read_results(write_reports(tmp_path, healthy_rows()))
    assert judge(results, Thresholds(required_kinds=ALL)) == []
    assert results.total.requests == 881 and results.total.rps == 100.0
    assert results.total.p99_ms == 40  # the aggregate's own percentile, as locust gave it
    assert results.requests_of("score") == 750 and results.requests_of(mix.RELOAD) == 3
    text = "\n".join(summary(results))
    assert "requests/s 100.0" in text and "auto 67%" in text and "home 33%" in text


def test_an_unexpected_status_fails_even_once(tmp_path):
    rows = healthy_rows()
    rows[0] = ("POST", mix.score_name("auto"), 500, 1, 1, 12)
    error = "CatchResponseError('server error 503: {\"error\": ...}')"
    prefix = write_reports(tmp_path, rows, [("POST", mix.score_name("auto"), error, 1)])
    problems = judge(read_results(prefix), Thresholds(connection_errors=100))
    assert problems == [f"1 unexpected failures of {mix.score_name('auto')}: {error}"]


def test_connection_errors_pass_only_within_their_allowance(tmp_path):
    rows = healthy_rows()
    rows[0] = ("POST", mix.score_name("auto"), 500, 3, 1, 12)
    prefix = write_reports(tmp_path, rows, [connection_error(mix.score_name("auto"), 3)])
    results = read_results(prefix)
    assert results.failures_of("connection error") == 3
    assert judge(results, Thresholds(connection_errors=3)) == []
    assert judge(results, Thresholds(connection_errors=2)) == ["3 connection errors, 2 allowed"]


def test_p99_over_the_limit_fails_but_not_for_reloads(tmp_path):
    rows = healthy_rows()  # the reload's p99 is 700 ms: not judged
    assert judge(read_results(write_reports(tmp_path, rows)), Thresholds(p99_ms=500)) == []
    rows[2] = ("POST", mix.batch_name("auto"), 30, 0, 3, 620)
    prefix = write_reports(tmp_path, rows, total_p99=40)
    assert judge(read_results(prefix), Thresholds(p99_ms=500)) == [
        f"p99 of {mix.batch_name('auto')} is 620 ms, over 500 ms"
    ]
    prefix = write_reports(tmp_path, healthy_rows(), total_p99=510)
    assert judge(read_results(prefix), Thresholds(p99_ms=500)) == [
        "p99 of Aggregated is 510 ms, over 500 ms"
    ]


def test_a_kind_that_never_happened_fails(tmp_path):
    rows = [r for r in healthy_rows() if r[1] != mix.FEEDBACK_BATCH_PATH]
    rows.append(("POST", mix.FEEDBACK_BATCH_PATH, 0, 0, 0, 0))
    problems = judge(read_results(write_reports(tmp_path, rows)), Thresholds(required_kinds=ALL))
    assert problems == ["no feedback_batch request was made"]


def test_no_request_at_all_fails(tmp_path):
    prefix = write_reports(tmp_path, [])
    assert judge(read_results(prefix), Thresholds()) == ["no request was made"]


def test_an_exception_in_a_task_fails(tmp_path):
    prefix = write_reports(tmp_path, healthy_rows(), exceptions=[(2, "KeyError('x')")])
    assert judge(read_results(prefix), Thresholds()) == ["exception in a task: 2x KeyError('x')"]


def test_failures_the_failure_report_does_not_list_fail(tmp_path):
    rows = healthy_rows()
    rows[1] = ("POST", mix.score_name("home"), 250, 2, 1, 10)
    assert judge(read_results(write_reports(tmp_path, rows)), Thresholds()) == [
        "2 failures reported, 0 listed"
    ]


def test_lost_outcomes_pass_only_within_their_allowance(tmp_path):
    rows = [*healthy_rows(), ("POST", mix.LOST_NAME, 4, 0, 1, 3)]
    results = read_results(write_reports(tmp_path, rows))
    assert judge(results, Thresholds(lost_outcomes=4)) == []
    assert judge(results, Thresholds(lost_outcomes=3)) == [
        "4 requests reported lost leads, 3 allowed"
    ]
    assert any(line.strip().startswith("lost ") for line in summary(results))


def test_a_missing_report_is_named(tmp_path):
    prefix = write_reports(tmp_path, healthy_rows())
    (tmp_path / "run_failures.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"run_failures\.csv"):
        read_results(prefix)


def test_a_malformed_report_is_named(tmp_path):
    prefix = write_reports(tmp_path, healthy_rows())
    text = (tmp_path / "run_stats.csv").read_text().replace(",500,0,", ",many,0,", 1)
    (tmp_path / "run_stats.csv").write_text(text)
    with pytest.raises(ValueError, match="Request Count is not a number: 'many'"):
        read_results(prefix)
    (tmp_path / "run_stats.csv").write_text(STATS_HEADER + "\n")
    with pytest.raises(ValueError, match="no Aggregated row"):
        read_results(prefix)


def test_a_name_without_requests_has_no_percentiles(tmp_path):
    prefix = write_reports(tmp_path, healthy_rows())
    lines = (tmp_path / "run_stats.csv").read_text().splitlines()
    na = ",".join(["POST", mix.score_name("life"), "0", "0", *["N/A"] * 4, "0", "0.0", "0.0"])
    lines.insert(1, na + "," + ",".join(["N/A"] * 11))
    (tmp_path / "run_stats.csv").write_text("\n".join(lines) + "\n")
    results = read_results(prefix)
    row = next(r for r in results.rows if r.name == mix.score_name("life"))
    assert row.requests == 0 and row.p99_ms is None and row.p50_ms is None
    assert judge(results, Thresholds()) == []
