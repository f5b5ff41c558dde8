"""The live monitor page: full figures, missing figures, hostile names, a real browser."""

from __future__ import annotations

import dataclasses
import re

import pytest

from engine.reports import plots
from engine.reports.monitor_page import (
    DriftRow,
    MonitorInputs,
    PerformanceRow,
    render_monitor_page,
)
from tests.browser import (
    assert_not_blank,
    colour_share,
    dump_dom,
    parse_page,
    screenshot,
    screenshot_and_dom,
    serve_directory,
)

P = PerformanceRow
FULL = MonitorInputs(
    vertical="auto",
    environment="production",
    generated_at="2026-01-05T10:00:00+00:00",
    champion_version="1.0.0",
    challenger_version="1.1.0",
    performance=[
        P("realized", "champion", "7d", 0.786, 0.69, 0.29, 0.34, 9100),
        P("holdout", "champion", "all", 0.793, 0.70, 0.30, 0.345, 600),
        P("estimated", "champion", "1d", 0.781, 0.68, 0.31, 0.33, 5400),
        P("realized", "champion", "1d", 0.770, 0.66, 0.28, 0.35, 800),
        P("holdout", "challenger", "all", 0.810, 0.72, 0.33, 0.345, 600),
        P("estimated", "challenger", "1d", 0.800, 0.71, 0.32, 0.33, 5400),
        P("realized", "challenger", "1d", None, None, None, None, 0),
        P("realized", "challenger", "7d", 0.802, 0.70, 0.31, 0.34, 9100),
    ],
    drift=[
        DriftRow("__score__", 0.14),
        DriftRow("age", 0.31),
        DriftRow("driving_years", 0.03),
        DriftRow("vehicle_make", 0.004),
        DriftRow("vehicle_model", None),
        DriftRow("location", 0.02),
        DriftRow("__score__", 0.12, "challenger"),
    ],
    drift_threshold=0.1,
    acceptance=[("1h", 0.18), ("1d", 0.16), ("7d", 0.15)],
    acceptance_target=0.147,
)
# A new deployment: holdout only, no outcomes, no challenger, nothing binned for drift.
MISSING = MonitorInputs(
    vertical="auto",
    environment="staging",
    generated_at="2026-01-05T10:00:00+00:00",
    champion_version="1.0.0",
    performance=[
        P("holdout", "champion", "all", 0.793, 0.70, 0.30, 0.345, 600),
        P("estimated", "champion", "1h", None, None, None, None, 0),
        P("realized", "champion", "1d", None, None, None, None, 0),
    ],
    acceptance=[("1h", None)],
    acceptance_target=0.147,
)
FIGURES = ("performance", "drift", "acceptance")


def red_bars(svg_html: str) -> int:
    """Count filled red shapes (bars and legend patch) drawn as <path> in the page."""
    return len(re.findall(r'<path [^>]*style="fill: ' + plots.RED, svg_html))


def test_full_page_draws_every_figure_and_table():
    page = parse_page(render_monitor_page(FULL))
    assert page.errors == [] and len(page.ids) == len(set(page.ids))
    assert page.title == "Model monitor: auto (production)"
    for figure_id in FIGURES:
        assert page.figures[figure_id].svgs == 1
        assert page.figures[figure_id].drawn_paths > 30, figure_id
    rows = page.tables["performance-table"][1:]
    # Champion, then challenger; holdout, estimated, realized; shorter windows first.
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("champion", "holdout", "all"),
        ("champion", "estimated", "1d"),
        ("champion", "realized", "1d"),
        ("champion", "realized", "7d"),
        ("challenger", "holdout", "all"),
        ("challenger", "estimated", "1d"),
        ("challenger", "realized", "1d"),
        ("challenger", "realized", "7d"),
    ]
    assert rows[3][3:] == ["0.7860", "0.6900", "0.2900", "0.3400", "9,100"]
    assert rows[6] == ["challenger", "realized", "1d", "no outcomes yet", "0"]
    drift = {(r[0], r[1]): (r[2], r[3]) for r in page.tables["drift-table"][1:]}
    assert drift[("age", "champion")] == ("0.3100", "over threshold")
    assert drift[("score", "champion")] == ("0.1400", "over threshold")
    assert drift[("score", "challenger")] == ("0.1200", "over threshold")
    assert drift[("location", "champion")] == ("0.0200", "stable")
    assert drift[("vehicle_model", "champion")] == ("\u2014", "no data")
    assert "(3 of 7)" in page.figures["drift"].caption
    assert "Challenger v1.1.0 (shadow)" not in page.text  # panel titles are drawn, not text
    assert "challenger v1.1.0 (shadow)" in page.text


def test_bars_over_the_drift_threshold_are_highlighted():
    low = render_monitor_page(FULL).decode("utf-8")
    high = render_monitor_page(dataclasses.replace(FULL, drift_threshold=0.5)).decode("utf-8")
    # Three features over 0.1, none over 0.5: exactly three red bars go away.
    assert red_bars(low) - red_bars(high) == 3
    assert "(0 of 7)" in parse_page(high).figures["drift"].caption


def test_missing_data_is_stated_not_drawn_as_zero():
    page = parse_page(render_monitor_page(MISSING))
    assert page.errors == []
    assert "no challenger" in page.text
    performance = page.figures["performance"]
    assert performance.svgs == 1 and performance.drawn_paths > 30  # the holdout bars
    assert "No outcomes have been reported yet." in performance.caption
    rows = page.tables["performance-table"][1:]
    assert rows[1] == ["champion", "estimated", "1h", "no leads scored yet", "0"]
    assert rows[2] == ["champion", "realized", "1d", "no outcomes yet", "0"]
    drift = page.figures["drift"]
    assert drift.svgs == 0 and "No drift figures yet" in drift.text
    assert page.tables["drift-table"][1:] == [["no drift figures yet"]]
    assert page.figures["acceptance"].svgs == 1  # the target line, "no leads" at 1h


def test_an_empty_page_renders():
    nothing = MonitorInputs("home", "production", "2026-01-05T10:00:00+00:00", "2.0.0")
    page = parse_page(render_monitor_page(nothing))
    assert page.errors == []
    for figure_id in FIGURES:
        assert page.figures[figure_id].svgs == 0
        assert "yet" in page.figures[figure_id].text
    assert page.tables["performance-table"][1:] == [["no performance figures yet"]]


def test_names_from_configuration_are_escaped():
    hostile = dataclasses.replace(
        FULL,
        vertical="<script>alert(1)</script>",
        environment='"><b>x',
        challenger_version="<i>2</i>",
        drift=[DriftRow("<img src=x onerror=alert(2)>", 0.5)],
        acceptance=[("<u>1h</u>", 0.2)],
    )
    text = render_monitor_page(hostile).decode("utf-8")
    page = parse_page(text)
    assert page.errors == []
    assert not {"script", "b", "i", "img", "u"} & page.tags
    assert page.tables["drift-table"][1][0] == "<img src=x onerror=alert(2)>"
    assert page.title == 'Model monitor: <script>alert(1)</script> ("><b>x)'
    assert page.external == []


@pytest.mark.parametrize(("name", "inputs"), [("full", FULL), ("missing", MISSING)])
def test_page_renders_in_chromium_from_a_live_server(tmp_path, name, inputs):
    (tmp_path / "monitor.html").write_bytes(render_monitor_page(inputs))
    with serve_directory(tmp_path) as (base, requested):
        url = base + "monitor.html"
        out = tmp_path / f"monitor-{name}.png"
        if name == "full":  # the two helpers separately, as integration tests use them
            png, dom = screenshot(url, out, 1280, 1400), dump_dom(url)
        else:
            png, dom = screenshot_and_dom(url, out, 1280, 1400)
    assert {p for p in requested if p != "/favicon.ico"} == {"/monitor.html"}
    colours, foreground = assert_not_blank(png)
    assert colours > 200 and foreground > 0.05
    assert colour_share(png, plots.GREY) > 0.002  # the holdout bars
    page = parse_page(dom)
    if name == "full":
        assert colour_share(png, plots.RED) > 0.002  # drift bars over the threshold
        assert colour_share(png, plots.BLUE) > 0.005  # realized bars, stable drift, acceptance
        assert all(page.figures[f].svgs == 1 for f in FIGURES)
    else:
        # No realized bar, no accepted share: blue only in one small legend patch.
        assert colour_share(png, plots.BLUE) < 0.0005
        assert page.figures["drift"].svgs == 0
        assert "No drift figures yet" in page.figures["drift"].text
    assert page.figures["performance"].drawn_paths > 30


def test_a_blank_screenshot_is_caught(tmp_path):
    from PIL import Image

    Image.new("RGB", (640, 480), "#f6f7f9").save(tmp_path / "blank.png")
    with pytest.raises(AssertionError, match="looks blank"):
        assert_not_blank(tmp_path / "blank.png")
