"""The model report of a real trained model: its structure, its figures, and a real browser."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from engine.monitoring.calibration import fit_calibration
from engine.reports import plots
from engine.reports.model_report import ReportInputs, inputs_from_manifest, render_model_report
from tests.browser import (
    assert_not_blank,
    colour_share,
    parse_page,
    screenshot_and_dom,
    serve_directory,
)

FIGURES = ("roc", "pr", "calibration", "score-histogram", "importance")


@pytest.fixture(scope="module")
def inputs(trained) -> ReportInputs:
    report = trained("auto")
    calibration = fit_calibration(report.holdout_scores, report.holdout_labels)
    return inputs_from_manifest(
        report.manifest,
        report.holdout_scores,
        report.holdout_labels,
        calibration.x,
        calibration.y,
    )


@pytest.fixture(scope="module")
def html(inputs) -> bytes:
    return render_model_report(inputs)


def test_report_is_well_formed_with_five_drawn_figures(html, inputs):
    page = parse_page(html)
    assert page.errors == []
    assert page.title == "Model report: auto v1.0.0"
    for figure_id in FIGURES:
        figure = page.figures[figure_id]
        assert figure.svgs == 1, figure_id
        # Axes, ticks, curves, bars and glyphs: a real plot draws dozens of paths.
        assert figure.drawn_paths > 30, (figure_id, figure.drawn_paths)
        assert figure.caption.strip(), figure_id
    # Several SVGs share the page: every id must stay unique (matplotlib's are not).
    assert len(page.ids) == len(set(page.ids))
    assert "script" not in page.tags


def test_report_shows_the_manifest_metrics_and_fingerprint(html, inputs, trained):
    manifest = trained("auto").manifest
    page = parse_page(html)
    metrics = dict(page.tables["metrics"][1:])
    assert metrics["ROC AUC"] == f"{manifest.metrics.auc:.4f}"
    assert metrics["Precision at the threshold"] == f"{manifest.metrics.precision:.4f}"
    assert metrics["Recall at the threshold"] == f"{manifest.metrics.recall:.4f}"
    assert metrics["Brier score (lower is better)"] == f"{manifest.metrics.brier:.4f}"
    assert metrics["Holdout rows (every figure here)"] == f"{manifest.metrics.n_holdout:,}"
    assert metrics["Trees (best iteration)"] == str(manifest.metrics.best_iteration)
    assert metrics["Threshold (accept when score \u2265)"] == "0.6500"
    fingerprint = dict(page.tables["data-fingerprint"][1:])
    assert fingerprint["SHA-256"] == manifest.data_fingerprint.sha256
    assert fingerprint["Rows"] == f"{manifest.data_fingerprint.rows:,}"
    libraries = dict(page.tables["libraries"][1:])
    assert libraries == manifest.libraries
    # The ROC curve drawn is the one the manifest's AUC was measured on (sklearn).
    assert f"AUC {manifest.metrics.auc:.4f}" in page.figures["roc"].caption
    pr_caption = page.figures["pr"].caption
    assert f"precision {manifest.metrics.precision:.3f}" in pr_caption
    assert f"recall {manifest.metrics.recall:.3f}" in pr_caption
    assert "calibration map stored with the model" in page.figures["calibration"].caption


def test_report_is_deterministic(html, inputs):
    # Stored in a signed, hashed artifact: same inputs, same bytes (no dates, no random ids).
    assert render_model_report(inputs) == html


def test_report_references_nothing_outside_itself(html):
    page = parse_page(html)
    assert page.external == []
    text = html.decode("utf-8")
    for needle in ("<script", "<link", "<img", "@import", "@font-face"):
        assert needle not in text
    # The only absolute URLs are SVG namespace names, which are never fetched.
    urls = {m.group(0) for m in re.finditer(r"[a-z:]+=\"(https?:)?//[^\"]*\"", text)}
    assert urls == {
        'xmlns="http://www.w3.org/2000/svg"',
        'xmlns:xlink="http://www.w3.org/1999/xlink"',
    }


def test_strings_from_configuration_are_escaped(inputs):
    hostile = dataclasses.replace(
        inputs,
        vertical='<script>alert("v")</script>',
        version="1.0.0&<b>",
        importance={"<img src=x onerror=alert(1)>": 0.6, "age": 0.4},
        data_fingerprint={**inputs.data_fingerprint, "source": "<iframe src=//evil>.csv"},
        libraries={"<b>lib</b>": "1 & 2"},
    )
    text = render_model_report(hostile).decode("utf-8")
    page = parse_page(text)
    assert page.errors == []
    assert "script" not in page.tags and "iframe" not in page.tags and "img" not in page.tags
    assert "&lt;script&gt;alert(&quot;v&quot;)&lt;/script&gt;" in text
    assert dict(page.tables["libraries"][1:]) == {"<b>lib</b>": "1 & 2"}
    assert dict(page.tables["data-fingerprint"][1:])["File"] == "<iframe src=//evil>.csv"
    assert page.figures["importance"].drawn_paths > 30


def test_single_class_holdout_renders_messages_not_a_crash(inputs):
    one_class = dataclasses.replace(
        inputs,
        holdout_labels=np.zeros(len(inputs.holdout_labels), dtype=np.int8),
        calibration_x=None,
        calibration_y=None,
    )
    page = parse_page(render_model_report(one_class))
    assert page.errors == []
    assert page.figures["roc"].svgs == 0
    assert "single class" in page.figures["roc"].text
    assert page.figures["pr"].svgs == 0
    for figure_id in ("calibration", "score-histogram", "importance"):
        assert page.figures[figure_id].drawn_paths > 30
    assert "No calibration map" in page.figures["calibration"].caption


def test_mismatched_inputs_are_refused(inputs):
    with pytest.raises(ValueError, match="labels"):
        render_model_report(dataclasses.replace(inputs, holdout_labels=[1, 0]))
    with pytest.raises(ValueError, match="together"):
        render_model_report(dataclasses.replace(inputs, calibration_y=None))


def test_curves_match_scikit_learn_with_ties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    # Rounded scores: many ties, where a naive per-row curve would go wrong.
    scores = np.round(np.clip(0.3 * labels + rng.normal(0.35, 0.2, 500), 0, 1), 2)
    fpr, tpr = plots.roc_points(scores, labels)
    assert plots.area(fpr, tpr) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    _, _, average = plots.precision_recall_points(scores, labels)
    assert average == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    mean_score, observed, count = plots.reliability_bins(scores, labels)
    assert count.sum() == 500 and np.all(np.diff(mean_score) > 0)
    assert np.all((observed >= 0) & (observed <= 1))


def test_report_renders_in_chromium_from_a_live_server(html, tmp_path):
    (tmp_path / "report.html").write_bytes(html)
    with serve_directory(tmp_path) as (base, requested):
        url = base + "report.html"
        png, dom = screenshot_and_dom(url, tmp_path / "report.png", width=1280, height=2000)
    # The page asked the server for itself only (and perhaps a favicon): nothing else.
    assert {p for p in requested if p != "/favicon.ico"} == {"/report.html"}
    colours, foreground = assert_not_blank(png)
    assert colours > 500 and foreground > 0.1
    # The curves' and bars' blue, and the converted leads' orange, were painted.
    assert colour_share(png, plots.BLUE) > 0.01
    assert colour_share(png, "#f4d48c") > 0.002  # ORANGE at alpha 0.45 on white
    page = parse_page(dom)
    for figure_id in FIGURES:
        assert page.figures[figure_id].svgs == 1
        assert page.figures[figure_id].drawn_paths > 30
