import json
import logging

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from api.logging import JsonFormatter, logging_config
from api.metrics import LATENCY_BUCKETS, BufferedCounter, BufferedHistogram, vertical_label


def test_buffered_histogram_equals_direct_observe():
    registry = CollectorRegistry()
    direct = Histogram("direct", "d", ["v"], buckets=LATENCY_BUCKETS, registry=registry)
    buffered = Histogram("buffered", "b", ["v"], buckets=LATENCY_BUCKETS, registry=registry)
    buffer = BufferedHistogram(buffered.labels("a"))
    values = [0.00005, 0.0001, 0.0003, 0.001, 0.001, 0.7, 3.0, 0.00099]
    for value in values:
        direct.labels("a").observe(value)
        buffer.observe(value)
    assert b"buffered_count" in generate_latest(registry)
    buffer.flush()
    buffer.flush()  # nothing pending: no double counting
    text = generate_latest(registry).decode()
    direct_lines = sorted(
        line.replace("direct", "X")
        for line in text.splitlines()
        if line.startswith("direct_") and "created" not in line
    )
    buffered_lines = sorted(
        line.replace("buffered", "X")
        for line in text.splitlines()
        if line.startswith("buffered_") and "created" not in line
    )
    assert direct_lines == buffered_lines


def test_buffered_counter():
    registry = CollectorRegistry()
    counter = Counter("c", "c", registry=registry)
    buffer = BufferedCounter(counter)
    buffer.inc()
    buffer.inc(4)
    assert registry.get_sample_value("c_total") == 0
    buffer.flush()
    assert registry.get_sample_value("c_total") == 5


def test_vertical_label_is_bounded():
    assert vertical_label("auto", {"auto"}) == "auto"
    assert vertical_label("x" * 99, {"auto"}) == "unknown"
    assert vertical_label(None, {"auto"}) == "unknown"


def test_json_log_lines(caplog):
    record = logging.LogRecord("ml", logging.ERROR, __file__, 1, "model %s", ("x",), None)
    record.vertical = "auto"
    record.color_message = "\x1b[31mmodel x\x1b[0m"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "model x" and line["level"] == "error"
    assert line["vertical"] == "auto" and "color_message" not in line
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    formatted = JsonFormatter().format(record)
    assert "\n" not in formatted and "boom" in json.loads(formatted)["exception"]
    assert logging_config("warning")["root"]["level"] == "WARNING"


def test_observe_with_records_the_same_observation_in_both():
    registry = CollectorRegistry()
    one = Histogram("one", "o", buckets=LATENCY_BUCKETS, registry=registry)
    two = Histogram("two", "t", buckets=LATENCY_BUCKETS, registry=registry)
    both = Histogram("both", "b", buckets=LATENCY_BUCKETS, registry=registry)
    first, second, direct = BufferedHistogram(one), BufferedHistogram(two), BufferedHistogram(both)
    for value in (0.00005, 0.0003, 0.0003, 0.7, 9.0):
        first.observe_with(second, value)
        direct.observe(value)
    for buffer in (first, second, direct):
        buffer.flush()
    for le in ("0.0001", "0.0005", "1.0", "+Inf"):
        expected = registry.get_sample_value("both_bucket", {"le": le})
        assert registry.get_sample_value("one_bucket", {"le": le}) == expected
        assert registry.get_sample_value("two_bucket", {"le": le}) == expected
    assert registry.get_sample_value("one_sum") == registry.get_sample_value("both_sum")
    assert registry.get_sample_value("two_count") == 5
