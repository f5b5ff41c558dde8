"""A real browser for tests: headless Chromium (Debian ``chromium``) as a subprocess.

- ``screenshot(url, out)`` loads a page and writes a PNG of the viewport;
  ``dump_dom(url)`` returns the DOM after the page loaded (Chromium's serialisation);
  ``screenshot_and_dom`` does both in one run.
  Each run gets a throwaway profile directory and a timeout; on timeout the whole
  process group Chromium started (renderer, GPU and utility processes) is killed.
- ``assert_not_blank(png)`` fails on a flat or nearly empty image; ``colour_share``
  tells what share of the pixels has a given colour (did the plot's bars paint?).
- ``serve_directory(path)`` serves files over HTTP on a free loopback port in a
  background thread and records every path requested, so a test can show that a page
  loaded nothing besides itself.
- ``parse_page(html)`` reads a page's structure with ``html.parser``: the figures (id,
  inline SVG, drawn paths, caption), tables, every id, any reference to another
  resource, and whether the tags nest properly.

Chromium is required through ``tests.system_tools.require_tool``: a test skips with an
install hint on a machine without it and fails under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from tests.system_tools import require_tool

TIMEOUT = 60.0
_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # tests may run as root in a container
    "--disable-gpu",
    "--hide-scrollbars",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    # No update checks, safe-browsing lists or metrics: the test must not need a network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def require_chromium() -> str:
    """Return Chromium's path; skip the test if absent (fail under ``CI=true``)."""
    return require_tool("chromium")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    chromium = require_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [chromium, *_FLAGS, f"--user-data-dir={profile}", *args]
        # A session of its own, so a timeout can kill every process Chromium forked.
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise AssertionError(
                f"chromium did not finish within {timeout:.0f} s: {' '.join(args)}\n{_tail(stderr)}"
            ) from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _tail(text: str, lines: int = 15) -> str:
    # Chromium logs D-Bus noise on machines without a session bus; keep the rest.
    kept = [line for line in text.splitlines() if "dbus" not in line.lower()]
    return "\n".join(kept[-lines:])


def screenshot(
    url: str, out: Path, width: int = 1280, height: int = 2000, timeout: float = TIMEOUT
) -> Path:
    """Load ``url`` in headless Chromium and write a PNG of the ``width`` x ``height`` view.

    Raises:
        AssertionError: Chromium failed, timed out or wrote no image (with its log).
    """
    out = Path(out)
    out.unlink(missing_ok=True)  # a stale file must not pass for a new screenshot
    result = _run([f"--window-size={width},{height}", f"--screenshot={out}", url], timeout=timeout)
    if result.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise AssertionError(
            f"chromium wrote no screenshot of {url} (exit {result.returncode})\n"
            f"{_tail(result.stderr)}"
        )
    return out


def screenshot_and_dom(
    url: str, out: Path, width: int = 1280, height: int = 2000, timeout: float = TIMEOUT
) -> tuple[Path, str]:
    """Do ``screenshot`` and ``dump_dom`` in one Chromium run (half the start-up cost).

    Raises:
        AssertionError: Chromium failed, timed out, or wrote no image or DOM.
    """
    out = Path(out)
    out.unlink(missing_ok=True)
    result = _run(
        [f"--window-size={width},{height}", f"--screenshot={out}", "--dump-dom", url],
        timeout=timeout,
    )
    if result.returncode != 0 or not out.is_file() or "<html" not in result.stdout:
        raise AssertionError(
            f"chromium could not load {url} (exit {result.returncode})\n{_tail(result.stderr)}"
        )
    return out, result.stdout


def dump_dom(url: str, timeout: float = TIMEOUT) -> str:
    """Load ``url`` in headless Chromium and return the serialised DOM.

    Raises:
        AssertionError: Chromium failed or timed out (with its log).
    """
    result = _run(["--dump-dom", url], timeout=timeout)
    if result.returncode != 0 or "<html" not in result.stdout:
        raise AssertionError(
            f"chromium could not dump {url} (exit {result.returncode})\n{_tail(result.stderr)}"
        )
    return result.stdout


def _pixels(png: Path) -> npt.NDArray[np.uint8]:
    with Image.open(png) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def assert_not_blank(
    png: Path, min_colours: int = 64, min_foreground: float = 0.02
) -> tuple[int, float]:
    """Fail unless the image has many colours and enough non-background pixels.

    The background is the most common colour. A blank, single-colour or nearly empty
    page fails; a rendered plot (anti-aliased lines, fills, text) passes easily.

    Returns:
        (distinct colours, share of non-background pixels), for the failure message
        or the test's own further checks.
    """
    rgb = _pixels(png)
    total = int(rgb.shape[0]) * int(rgb.shape[1])
    packed = (
        (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    ).ravel()
    values, counts = np.unique(packed, return_counts=True)
    foreground = 1.0 - float(counts.max()) / total
    assert len(values) >= min_colours and foreground >= min_foreground, (
        f"{png} looks blank: {len(values)} distinct colours (need {min_colours}), "
        f"{foreground:.1%} non-background pixels (need {min_foreground:.0%})"
    )
    return len(values), foreground


def colour_share(png: Path, colour: str, tolerance: int = 6) -> float:
    """Return the share of pixels within ``tolerance`` (per channel) of ``#rrggbb``."""
    rgb = _pixels(png).astype(np.int16)
    total = int(rgb.shape[0]) * int(rgb.shape[1])
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    close = np.all(np.abs(rgb - target) <= tolerance, axis=-1)
    return float(np.count_nonzero(close)) / total


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (free port) in a background thread.

    Yields:
        (base URL ending in ``/``, the list of paths requested so far, live).
    """
    requested: list[str] = []
    handler = type("Handler", (_QuietHandler,), {"requests": requested})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- page structure ---

_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param"}
    | {"source", "track", "wbr"}
)
_REFERENCE_ATTRS = frozenset({"src", "href", "xlink:href", "action", "srcset", "poster"})


@dataclass
class Figure:
    """One ``<figure>`` of a page."""

    id: str
    svgs: int = 0
    drawn_paths: int = 0  # <path> elements with a non-empty ``d``, inside an <svg>
    caption: str = ""
    text: str = ""  # all text outside the SVG (captions, "no data" messages)


@dataclass
class Page:
    """What ``parse_page`` found."""

    title: str = ""
    figures: dict[str, Figure] = field(default_factory=dict)
    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)  # references to other resources
    tags: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)  # badly nested or unclosed tags
    text: str = ""


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: list[str] = []
        self.figure: Figure | None = None
        self.in_svg = 0
        self.in_caption = False
        self.in_title = False
        self.table: list[list[str]] | None = None
        self.cell: list[str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, dict(attrs), closes=tag not in _VOID)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, dict(attrs), closes=False)

    def _open(self, tag: str, attrs: dict[str, str | None], closes: bool) -> None:
        page = self.page
        page.tags.add(tag)
        if attrs.get("id"):
            page.ids.append(str(attrs["id"]))
        for name, value in attrs.items():
            lowered = (value or "").strip().lower()
            if name in _REFERENCE_ATTRS and lowered and not lowered.startswith("#"):
                page.external.append(f"{tag} {name}={value}")
            if "url(" in lowered and "url(#" not in lowered.replace(" ", ""):
                page.external.append(f"{tag} {name}={value}")
        if tag == "figure":
            self.figure = Figure(id=str(attrs.get("id") or ""))
            page.figures[self.figure.id] = self.figure
        elif tag == "svg":
            self.in_svg += 1
            if self.figure is not None and self.in_svg == 1:
                self.figure.svgs += 1
        elif tag == "path" and self.in_svg and self.figure is not None and attrs.get("d"):
            self.figure.drawn_paths += 1
        elif tag == "figcaption":
            self.in_caption = True
        elif tag == "title" and not self.in_svg:
            self.in_title = True
        elif tag == "table":
            self.table = []
            page.tables[str(attrs.get("id") or f"table-{len(page.tables)}")] = self.table
        elif tag == "tr" and self.table is not None:
            self.table.append([])
        elif tag in ("td", "th"):
            self.cell = []
        if closes:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.page.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>")
            if tag in self.stack:
                while self.stack.pop() != tag:
                    pass
        else:
            self.stack.pop()
        if tag == "figure":
            self.figure = None
        elif tag == "svg":
            self.in_svg -= 1
        elif tag == "figcaption":
            self.in_caption = False
        elif tag == "title":
            self.in_title = False
        elif tag == "table":
            self.table = None
        elif tag in ("td", "th") and self.cell is not None:
            if self.table is not None and self.table:
                self.table[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.in_svg:
            return
        self.text.append(data)
        if self.in_title:
            self.page.title += data
        if self.cell is not None:
            self.cell.append(data)
        if self.figure is not None:
            self.figure.text += data
            if self.in_caption:
                self.figure.caption += data

    def close(self) -> None:
        super().close()
        if self.stack:
            self.page.errors.append(f"unclosed: {self.stack}")
        self.page.text = " ".join("".join(self.text).split())


def parse_page(html: str | bytes) -> Page:
    """Parse an HTML page into its figures, tables, ids and outside references."""
    parser = _PageParser()
    parser.feed(html.decode("utf-8") if isinstance(html, bytes) else html)
    parser.close()
    return parser.page
