"""A self-contained HTML page: inline style and script, images as data URIs, nothing fetched from anywhere.

Tables sort by clicking a column header (numbers numerically, text alphabetically; click again to reverse).
"""

from __future__ import annotations

import base64
import math
from html import escape
from typing import Any

import polars as pl

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 0 1.5rem 4rem; color: #222; line-height: 1.45; }
h1 { margin-top: 1.5rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.5rem; }
nav a { margin-right: 1rem; }
.summary li, .findings li { margin: .3rem 0; }
.note { color: #666; font-size: .9rem; }
.missing { background: #fff4e0; border-left: 4px solid #e69f00; padding: .4rem .8rem; }
.warning { background: #fde8e8; border-left: 4px solid #c0392b; padding: .4rem .8rem; font-weight: 600; }
.scroll { overflow-x: auto; max-height: 32rem; overflow-y: auto; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: .8rem; }
th, td { padding: .2rem .5rem; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
td.text, th.text { text-align: left; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; }
.item { display: grid; grid-template-columns: auto 1fr; gap: 1rem; border-bottom: 1px solid #ddd; padding: .8rem 0; }
.item[hidden] { display: none; } .item > div { min-width: 0; overflow-x: auto; }
.item td.text:last-child { white-space: normal; }
.filters { margin: .5rem 0 1rem; display: flex; gap: 1rem; flex-wrap: wrap; align-items: center; }
.item img { image-rendering: pixelated; margin-right: .3rem; }
.ok { color: #1b7837; font-weight: 600; } .bad { color: #b2182b; } .na { color: #999; }
.unsure { color: #1b7837; font-style: italic; border-bottom: 1px dashed #1b7837; }
.lead { font-size: 1.05rem; max-width: 60rem; }
table.headline { font-size: .85rem; } table.headline td { vertical-align: top; }
table.headline th { white-space: normal; vertical-align: bottom; max-width: 7rem; }
table.headline .ci { display: block; color: #777; font-size: .75rem; }
tr.flagged td { background: #fde8e8; }
details { margin: 1rem 0; } details > summary { cursor: pointer; color: #2c5d8a; }
"""

SCRIPT = """
function sortTable(th) {
  const table = th.closest('table');
  const body = table.tBodies[0];
  const index = Array.from(th.parentNode.children).indexOf(th);
  const ascending = th.getAttribute('aria-sort') !== 'ascending';
  table.querySelectorAll('th').forEach(h => h.removeAttribute('aria-sort'));
  th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
  const key = row => row.children[index].dataset.v;
  const rows = Array.from(body.rows);
  const numeric = rows.every(r => key(r) === '' || !isNaN(parseFloat(key(r))));
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === '' && y !== '') return 1;
    if (y === '' && x !== '') return -1;
    const c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
    return ascending ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
}
document.querySelectorAll('table.sortable th').forEach(th => th.addEventListener('click', () => sortTable(th)));
// The item browser: search and filters (benchmark, class, outcome).
function filterItems() {
  const q = document.getElementById('item-search').value.trim().toLowerCase();
  const pick = id => document.getElementById(id).value;
  const bench = pick('item-bench'), klass = pick('item-class'), outcome = pick('item-outcome');
  let shown = 0;
  document.querySelectorAll('.item').forEach(item => {
    const d = item.dataset;
    const ok = (!q || d.text.includes(q)) && (!bench || d.bench === bench)
      && (!klass || d.classes.split(' ').includes(klass)) && (!outcome || d.outcomes.split(' ').includes(outcome));
    item.hidden = !ok;
    if (ok) shown += 1;
  });
  document.getElementById('item-count').textContent = shown + ' shown';
}
document.querySelectorAll('.item-filter').forEach(e => e.addEventListener('input', filterItems));
"""


def cell(value: Any) -> tuple[str, str, bool]:
    """(shown text, sort key, is text) of one table cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", "", False
    if isinstance(value, bool):
        return str(value).lower(), str(int(value)), False
    if isinstance(value, float):
        return f"{value:.3f}", repr(value), False
    if isinstance(value, int):
        return str(value), str(value), False
    if isinstance(value, list):
        text = ", ".join("" if v is None else str(v) for v in value)
        return text, text, True
    return str(value), str(value), True


def interval_columns(columns: list[str]) -> dict[str, tuple[str, str]]:
    """Columns shown with their interval in one cell: ``x`` -> (``x_ci_low``, ``x_ci_high``) where all three exist."""
    present = set(columns)
    return {
        c: (f"{c}_ci_low", f"{c}_ci_high") for c in columns if f"{c}_ci_low" in present and f"{c}_ci_high" in present
    }


def table(frame: pl.DataFrame, table_id: str, max_rows: int) -> str:
    """A sortable table of (at most ``max_rows`` of) ``frame``; a note says when rows were left out. A value with
    an interval shows as ``value [low, high]`` in one cell (sorted by the value); the Parquet table keeps the
    three columns."""
    shown = frame.head(max_rows)
    bounds = interval_columns(shown.columns)
    hidden = {b for pair in bounds.values() for b in pair}
    columns = [c for c in shown.columns if c not in hidden]
    head = "".join(f"<th scope=col>{escape(c + (' [low, high]' if c in bounds else ''))}</th>" for c in columns)
    body = []
    for row in shown.iter_rows(named=True):
        cells = []
        for column in columns:
            text, key, is_text = cell(row[column])
            if column in bounds and text:
                low, high = (row[b] for b in bounds[column])
                if low is not None and high is not None:
                    text += f" [{low:.3f}, {high:.3f}]"
            css = ' class="text"' if is_text else ""
            cells.append(f'<td{css} data-v="{escape(key)}">{escape(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = ""
    if frame.height > max_rows:
        note = f'<p class="note">First {max_rows} of {frame.height} rows; the Parquet table holds them all.</p>'
    return (
        f'<div class="scroll"><table class="sortable" id="{escape(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{note}"
    )


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def figure(png: bytes, alt: str, caption: str) -> str:
    return (
        f'<figure><img src="{png_data_uri(png)}" alt="{escape(alt)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def details(title: str, inner: str) -> str:
    """A folded block: ``title`` shows, ``inner`` opens on a click."""
    return f"<details><summary>{escape(title)}</summary>{inner}</details>"


def missing(text: str) -> str:
    return f'<p class="missing">{escape(text)}</p>'


def page(title: str, sections: list[tuple[str, str, str]], warnings: list[str] | None = None) -> str:
    """The whole page: ``sections`` are (anchor, heading, inner HTML); ``warnings`` (one line each) come first,
    above the navigation, where a reader cannot miss them."""
    banner = "".join(f'<p class="warning" role="alert">{escape(w)}</p>' for w in warnings or [])
    nav = "".join(f'<a href="#{a}">{escape(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{escape(h)}</h2>{inner}</section>' for a, h, inner in sections)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        # The page may load only what it embeds: data: images and its own inline style and script.
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{banner}<nav>{nav}</nav>{body}<script>{SCRIPT}</script></body></html>\n"
    )
