"""Small HTML building blocks shared by the model report and the monitor page.

Every string that reaches the page goes through ``escape`` here: feature names,
versions and vertical names come from configuration files and must never be able to
inject markup. SVG produced by ``engine.reports.plots`` is the only unescaped content,
and it contains no text taken from the inputs verbatim (matplotlib draws text as paths).

The page carries a Content-Security-Policy that forbids loading anything (scripts,
images, fonts, styles from elsewhere): a report is viewable offline, and a page that
tried to reach the network would render visibly broken in tests rather than silently
depend on it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

# Inline styles only; no script, no external resource of any kind.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body {
  margin: 0; padding: 24px 32px 48px; background: #f6f7f9; color: #1d2330;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
    Arial, sans-serif;
}
header { margin-bottom: 20px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 10px; }
.subtitle { color: #556; margin: 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr));
  gap: 16px; }
figure { margin: 0; background: #fff; border: 1px solid #dde1e8; border-radius: 6px;
  padding: 12px; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { color: #445; font-size: 13px; margin-top: 6px; }
figcaption b { color: #1d2330; }
.empty { display: flex; align-items: center; justify-content: center; min-height: 180px;
  color: #667; background: #fafbfc; border: 1px dashed #cfd5de; border-radius: 4px;
  text-align: center; padding: 16px; }
table { border-collapse: collapse; background: #fff; border: 1px solid #dde1e8;
  font-variant-numeric: tabular-nums; }
th, td { padding: 5px 12px; border-bottom: 1px solid #eceff3; text-align: left;
  vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td.num { text-align: right; }
td.missing { color: #7a6a2e; font-style: italic; }
td.code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  word-break: break-all; max-width: 280px; }
td.over { color: #b3470b; font-weight: 600; }
.tables { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start;
  margin-top: 16px; }
.tables section h2 { margin-top: 0; }
footer { margin-top: 32px; color: #778; font-size: 12px; }
"""


def escape(value: object) -> str:
    """Return ``value`` as text safe inside HTML elements and quoted attributes."""
    return html.escape(str(value), quote=True)


def format_number(value: float | int | None, digits: int = 4) -> str:
    """Format a metric for a table: integers plainly, floats to ``digits`` places.

    ``None`` and non-finite floats become an em dash, so a missing figure never shows
    as ``nan`` or ``None``.
    """
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "\u2014"
    return f"{value:.{digits}f}"


class Cell:
    """A table cell: escaped text plus an optional CSS class and column span."""

    __slots__ = ("classes", "colspan", "text")

    def __init__(self, text: object, classes: str = "", colspan: int = 1) -> None:
        self.text = str(text)
        self.classes = classes
        self.colspan = colspan

    def render(self) -> str:
        """Return the ``<td>`` element."""
        attrs = f' class="{escape(self.classes)}"' if self.classes else ""
        if self.colspan > 1:
            attrs += f' colspan="{self.colspan}"'
        return f"<td{attrs}>{escape(self.text)}</td>"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Cell | str]], *, table_id: str = ""
) -> str:
    """Return an HTML table; plain strings become cells, ``Cell`` keeps its class."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join((c if isinstance(c, Cell) else Cell(c)).render() for c in row) + "</tr>"
        for row in rows
    )
    ident = f' id="{escape(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(figure_id: str, caption: str, svg: str | None, empty_message: str = "") -> str:
    """Return a ``<figure>`` holding an inline SVG plot, or a message when there is none.

    Args:
        figure_id: The element id (tests and links find the plot by it).
        caption: Plain text; escaped here.
        svg: The plot from ``engine.reports.plots``; ``None`` when there is no data.
        empty_message: Plain text shown instead of the plot when ``svg`` is ``None``.
    """
    body = svg if svg is not None else f'<div class="empty">{escape(empty_message)}</div>'
    return (
        f'<figure id="{escape(figure_id)}">{body}'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def page(title: str, subtitle: str, body: str, footer: str) -> bytes:
    """Return a complete UTF-8 HTML document.

    Args:
        title: Page title and heading (plain text).
        subtitle: One line under the heading (plain text).
        body: Already-rendered HTML (built from the helpers of this module).
        footer: Plain text at the bottom.
    """
    document = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<header><h1>{escape(title)}</h1><p class="subtitle">{escape(subtitle)}</p>'
        f"</header>\n{body}\n<footer>{escape(footer)}</footer>\n</body>\n</html>\n"
    )
    return document.encode("utf-8")
