"""The page's building blocks: escaped text, tables that sort, figures, sections, the page itself.

The page is one file that opens offline: plotly.js (the library ``nas pareto --html`` draws with)
is written into it once, every figure's data inline, the static figures as inline SVG, and no
script, style sheet or image is loaded from anywhere else.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from typing import Any, Sequence

PLOT_CONFIG = {"displaylogo": False, "responsive": True}  # no link to plotly's site in the mode bar


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, the value a column sorts by (None sorts last), an optional class and title."""

    text: str
    sort: float | str | None = None
    css: str = ""
    title: str = ""

    def render(self) -> str:
        attrs = ""
        if self.sort is not None:
            attrs += f' data-sort="{esc(self.sort)}"'
        if self.css:
            attrs += f' class="{esc(self.css)}"'
        if self.title:
            attrs += f' title="{esc(self.title)}"'
        return f"<td{attrs}>{esc(self.text)}</td>"


def number(value: float | None, digits: int = 4) -> Cell:
    if value is None or value != value:
        return Cell("-")
    return Cell(f"{value:.{digits}f}", float(value))


def count(value: float | None) -> Cell:
    """1234567 -> '1.23M', sorting by the number itself."""
    if value is None or value != value:
        return Cell("-")
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return Cell(f"{value / threshold:.3g}{suffix}", float(value))
    return Cell(f"{value:.3g}", float(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell | str]], css: str = "", sortable: bool = False,
          caption: str = "", row_css: Sequence[str] = ()) -> str:
    """An HTML table; ``sortable`` lets a click on a column heading sort the rows by it; ``row_css``: a
    class per row ("" for none)."""
    classes = " ".join(c for c in (css, "sortable" if sortable else "") if c)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    marks = list(row_css) + [""] * (len(rows) - len(row_css))
    body = "".join((f'<tr class="{esc(mark)}">' if mark else "<tr>")
                   + "".join(c.render() if isinstance(c, Cell) else f"<td>{esc(c)}</td>" for c in row)
                   + "</tr>" for row, mark in zip(rows, marks))
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="{classes}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def pairs(items: Sequence[tuple[str, Any]]) -> str:
    """A two-column table of settings."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in items)
    return f'<table class="settings"><tbody>{rows}</tbody></table>'


def note(text: str, css: str = "note") -> str:
    return f'<p class="{css}">{esc(text)}</p>'


def plotly_figure(fig: Any, div_id: str) -> str:
    """A plotly figure as a container and the script that draws it (plotly.js is in the page once)."""
    inner = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG)
    return f'<div class="figure" data-figure="plotly">{inner}</div>'


def svg_figure(fig: Any) -> str:
    """A matplotlib figure as inline SVG (text kept as text, no XML prolog or document type)."""
    from matplotlib import rc_context  # matplotlib: imported only to draw

    buffer = io.StringIO()
    with rc_context({"svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<style[^>]*>.*?</style>", "", text, flags=re.S)  # its '*' rule would style the whole page
    return f'<div class="figure" data-figure="svg">{text}</div>'


def svg_drawing(svg: str) -> str:
    """A hand-made inline SVG in a figure container."""
    return f'<div class="figure" data-figure="svg">{svg}</div>'


def section(anchor: str, title: str, body: str, intro: str = "") -> str:
    lead = f'<p class="intro">{esc(intro)}</p>' if intro else ""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{lead}{body}</section>'


def subsection(title: str, body: str) -> str:
    return f"<div class=\"run\"><h3>{esc(title)}</h3>{body}</div>"


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 1em 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-bottom: .3em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: right; vertical-align: top; }
th { background: #f4f4f4; }
table.settings th, table.settings td { text-align: left; }
td.arch { text-align: left; font-family: ui-monospace, monospace; font-size: .9em; max-width: 44em; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-order="asc"]::after { content: " \\25B2"; }
table.sortable th[data-order="desc"]::after { content: " \\25BC"; }
tr.b0 td { background: #fff6d6; } td.tied { color: #8a5a00; } td.chance { color: #b00020; }
p.note { color: #555; font-style: italic; } p.warning { color: #b00020; }
p.intro { color: #333; max-width: 60em; }
.figure { overflow-x: auto; margin: .5em 0; }
details pre { font-size: .8em; background: #f8f8f8; padding: .5em; overflow-x: auto; }
"""

# Click a heading to sort by it (again: the other way); numbers by data-sort, empty cells last.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headings = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headings, function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("data-order") !== "asc";
      Array.prototype.forEach.call(headings, function (h) { h.removeAttribute("data-order"); });
      th.setAttribute("data-order", ascending ? "asc" : "desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column];
        var value = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
        if (value === "" || value === "-") { return null; }
        var n = Number(value);
        return isNaN(n) ? value : n;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var order = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document; ``sections`` are (anchor, heading, rendered section)."""
    from plotly.offline import get_plotlyjs  # plotting: imported only to draw

    nav = " ".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    body = "\n".join(s for _, _, s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n'
            f"<body><h1>{esc(title)}</h1><p>{esc(subtitle)}</p><nav>{nav}</nav>\n{body}\n"
            f"<script>{SORT_SCRIPT}</script></body></html>\n")


__all__ = ["Cell", "count", "esc", "note", "number", "page", "pairs", "plotly_figure", "section", "subsection",
           "svg_drawing", "svg_figure", "table"]
