"""Building blocks of Shipyard's self-contained HTML pages (inline CSS, plots as base64 PNG).

Pure functions, no I/O: the evaluation report, the model card and the monitoring report are
built from them. Plots are drawn on matplotlib's Agg canvas without pyplot, so no global figure
state is shared between threads or callers. Every string that came from a user or the data is
escaped by these helpers (`table` cells, `page` titles, captions); text placed in a body by a
caller goes through `escape`.

    >>> fig = figure()
    >>> fig.add_subplot().plot([1, 2, 3])
    >>> page("My report", ["<h1>My report</h1>", table(["metric", "value"], [["f1", 0.81]]),
    ...                    embed(fig, "A line")])
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LABEL_CHARS = 40

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:70rem;
color:#1f2933;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}
.sub{color:#627d98;margin-top:0}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d9e2ec;padding:.3rem .6rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f4f8}
.plots{display:flex;flex-wrap:wrap;gap:1rem}
.plots figure{margin:0}
figcaption{font-size:.85rem;color:#627d98}
.pass{color:#1b7f3b;font-weight:600}.fail{color:#b42318;font-weight:600}
.note{color:#8d6e00}
"""

__all__ = ["LABEL_CHARS", "STYLE", "embed", "escape", "figure", "fmt", "page", "plot_text", "table"]


def page(title: str, body: Iterable[str], *, style: str = "") -> str:
    """A standalone HTML document around already-escaped ``body`` parts.

    ``style`` is extra CSS appended to the shared ``STYLE`` (trusted text, never user input).
    """
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}{style}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An HTML table; every cell is escaped, numbers right-aligned and rounded."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{escape(fmt(v))}</td>'
            if isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{escape(fmt(v))}</td>"
            for v in row
        )
        lines.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def fmt(value: Any) -> str:
    """Numbers to four significant digits (integers in full); anything else as text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# -- plots --------------------------------------------------------------------------------------


def figure(width: float = 4.8, height: float = 3.8) -> Figure:
    """A matplotlib figure on its own Agg canvas (no pyplot, no global state)."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def embed(fig: Figure, caption: str) -> str:
    """``fig`` as a PNG inside a ``<figure>``, with ``caption`` (escaped) as caption and alt."""
    buffer = io.BytesIO()
    # Feature names and labels are user text: a missing glyph (CJK, emoji) makes matplotlib
    # warn and draw a box, which is the best a PNG can do.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        fig.savefig(buffer, format="png")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    alt = escape(caption)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
        f"<figcaption>{alt}</figcaption></figure>"
    )


def plot_text(value: str, limit: int = LABEL_CHARS) -> str:
    """User text for a plot: shortened, and '$' kept literal (matplotlib reads $..$ as math)."""
    short = value if len(value) <= limit else value[: limit - 1] + "…"
    return short.replace("$", r"\$")
