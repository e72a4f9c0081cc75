"""Charts drawn on the server as inline SVG (no script, no external asset; docs/portal.md).

Each chart is an `<svg role="img">` whose `<title>` and `<desc>` name it and say what it
shows; every bar or slice also carries its label and value as text (colour is never the only
signal), and the page puts a table with the same numbers next to it.

    bar_chart("Estimated cost by meter", [Bar("CPU", 12.5, "$12.50"), ...])
    pie_chart("Invoices by status", [Slice("Paid", 3, "3", "paid"), ...])

Both return `markupsafe.Markup` (every text is escaped here).
"""

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

BAR_WIDTH = 480
BAR_HEIGHT = 28
BAR_GAP = 14
LABEL_WIDTH = 110
VALUE_WIDTH = 110
PIE_RADIUS = 80


@dataclass(frozen=True)
class Bar:
    """One bar: `label`, a non-negative `value` (its length) and `text` (the value as shown)."""

    label: str
    value: float
    text: str


@dataclass(frozen=True)
class Slice:
    """One pie slice: `label`, a non-negative `value`, `text` (the value as shown) and `kind`,
    the CSS class suffix that colours it (`paid`, `pending_payment`, `overdue`)."""

    label: str
    value: float
    text: str
    kind: str


def _svg(title: str, desc: str, width: int, height: int, body: list[str]) -> Markup:
    head = (f'<svg class="chart-svg" role="img" aria-labelledby="{{id}}-t {{id}}-d" '
            f'viewBox="0 0 {width} {height}" width="100%" '
            f'xmlns="http://www.w3.org/2000/svg">')
    ident = "chart-" + "".join(c if c.isalnum() else "-" for c in title.lower())
    parts = [head.replace("{id}", ident), f'<title id="{ident}-t">{escape(title)}</title>',
             f'<desc id="{ident}-d">{escape(desc)}</desc>', *body, "</svg>"]
    return Markup("".join(parts))


def bar_chart(title: str, bars: list[Bar]) -> Markup:
    """Horizontal bars, the longest spanning the plot; each row reads "label ... text"."""
    top = max((b.value for b in bars), default=0) or 1
    plot = BAR_WIDTH - LABEL_WIDTH - VALUE_WIDTH
    body = []
    for row, bar in enumerate(bars):
        y = row * (BAR_HEIGHT + BAR_GAP)
        length = max(0.0, bar.value) / top * plot
        middle = y + BAR_HEIGHT / 2 + 5
        body.append(f'<g class="bar"><text x="0" y="{middle:.1f}" class="chart-label">'
                    f'{escape(bar.label)}</text>'
                    f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" '
                    f'height="{BAR_HEIGHT}" class="bar-fill bar-{row}"/>'
                    f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{middle:.1f}" '
                    f'class="chart-value">{escape(bar.text)}</text></g>')
    height = max(1, len(bars)) * (BAR_HEIGHT + BAR_GAP)
    desc = "; ".join(f"{b.label}: {b.text}" for b in bars) or "no data"
    return _svg(title, desc, BAR_WIDTH, height, body)


def _point(angle: float) -> tuple[float, float]:
    return (PIE_RADIUS + PIE_RADIUS * math.sin(angle),
            PIE_RADIUS - PIE_RADIUS * math.cos(angle))


def pie_chart(title: str, slices: list[Slice]) -> Markup:
    """A pie of `slices` (clockwise from 12 o'clock) with a legend "label: text (share %)";
    an empty or all-zero pie is a grey ring saying "no invoices"."""
    total = sum(max(0.0, s.value) for s in slices)
    diameter = PIE_RADIUS * 2
    body = []
    if total <= 0:
        body.append(f'<circle cx="{PIE_RADIUS}" cy="{PIE_RADIUS}" r="{PIE_RADIUS - 1}" '
                    'class="slice-empty"/>')
    angle = 0.0
    for part in slices:
        if part.value <= 0:
            continue
        sweep = part.value / total * 2 * math.pi
        kind = escape(part.kind)
        if sweep >= 2 * math.pi - 1e-9:
            body.append(f'<circle cx="{PIE_RADIUS}" cy="{PIE_RADIUS}" r="{PIE_RADIUS}" '
                        f'class="slice slice-{kind}"/>')
        else:
            (x1, y1), (x2, y2) = _point(angle), _point(angle + sweep)
            large = 1 if sweep > math.pi else 0
            body.append(f'<path d="M{PIE_RADIUS},{PIE_RADIUS} L{x1:.2f},{y1:.2f} '
                        f'A{PIE_RADIUS},{PIE_RADIUS} 0 {large} 1 {x2:.2f},{y2:.2f} Z" '
                        f'class="slice slice-{kind}"/>')
        angle += sweep
    for row, part in enumerate(slices):
        y = 16 + row * 24
        share = f" ({part.value / total:.0%})" if total > 0 else ""
        body.append(f'<rect x="{diameter + 20}" y="{y - 12}" width="14" height="14" '
                    f'class="slice slice-{escape(part.kind)}"/>'
                    f'<text x="{diameter + 42}" y="{y}" class="chart-label">'
                    f'{escape(part.label)}: {escape(part.text)}{share}</text>')
    if total <= 0:
        body.append(f'<text x="{PIE_RADIUS}" y="{PIE_RADIUS + 5}" text-anchor="middle" '
                    'class="chart-label">no invoices</text>')
    desc = "; ".join(f"{s.label}: {s.text}" for s in slices)
    return _svg(title, desc, diameter + 260, max(diameter, 24 * len(slices) + 8), body)
