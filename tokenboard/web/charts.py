"""Charts drawn on the server as inline SVG: no JavaScript library, nothing fetched, works on a phone.

Each function takes plain Python data and returns :class:`markupsafe.Markup` to embed in a template as
``{{ chart }}``. Every text is escaped; every chart scales with its container (``viewBox``), carries a
``<title>``, a ``<desc>`` and an ``aria-label``, and each mark has a ``<title>`` that browsers show on hover
(and screen readers read). Colours come from CSS variables in ``static/app.css`` (``.chart`` rules), so a
theme changes them in one place. No data (or only zeros) gives a clear "No usage in this period" figure.

Values are integers in their unit (``"usd"`` means nano-USD, formatted by :mod:`tokenboard.kit.money`),
``"count"`` or ``"ms"``; negative values are drawn as zero.
"""

from __future__ import annotations

import functools
import html
import itertools
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from markupsafe import Markup, escape

from tokenboard.kit.money import format_usd, to_usd

Unit = Literal["usd", "count", "ms"]
Label = str | date
Number = int | float

EMPTY_TEXT = "No usage in this period"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SERIES_COLOURS = 6  # .series-0 … .series-5 in app.css

# The drawing area, in viewBox units. Narrow on purpose: on a 360 px phone the text stays about 10 px.
WIDTH = 480
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 12, 28


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of values, aligned with a chart's categories."""

    name: str
    values: Sequence[Number]


# -- formatting ----------------------------------------------------------------------------------------------


def format_value(value: Number, unit: Unit) -> str:
    """The exact value for people (hover text, descriptions)."""
    if unit == "usd":
        return format_usd(int(value))
    if unit == "ms":
        return f"{value:,.0f} ms"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def format_tick(value: Number, unit: Unit) -> str:
    """A short axis label: ``$1.2k``, ``3.4M``, ``250 ms``."""
    if unit == "usd":
        usd = to_usd(int(value))
        if usd != 0 and abs(usd) < 1:  # small amounts: as many decimals as they need, no trailing zeros
            whole, _, fraction = format_usd(int(value)).partition(".")
            return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"
        return "$" + _compact(usd)
    text = _compact(Decimal(str(value)))
    return f"{text} ms" if unit == "ms" else text


def _compact(value: Decimal) -> str:
    for size, suffix in ((Decimal(10) ** 12, "T"), (Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M")):
        if abs(value) >= size:
            return _trim(value / size) + suffix
    if abs(value) >= 1000:
        return _trim(value / 1000) + "k"
    return _trim(value)


def _trim(value: Decimal) -> str:
    text = f"{value.quantize(Decimal('0.1')):f}" if value != value.to_integral() else f"{value:.0f}"
    return text[:-2] if text.endswith(".0") else text


def _label_text(label: Label, *, short: bool) -> str:
    if isinstance(label, date):
        return f"{label:%b} {label.day}" if short else label.isoformat()
    return label


# -- SVG building ----------------------------------------------------------------------------------------


def _num(value: float) -> str:
    text = "%.2f" % value  # noqa: UP031 (a third faster than the f-string, for the thousands of a chart)
    return text.rstrip("0").rstrip(".") if text[-1] == "0" else text


@functools.cache
def _attr_name(name: str) -> str:
    """``text_anchor`` -> ``text-anchor``, ``class_`` -> ``class`` (keyword-friendly names)."""
    return name.rstrip("_").replace("_", "-")


def _value(value: object) -> str:
    """An attribute's text: numbers as they are (floats to two decimals, trailing zeros dropped), other
    values escaped."""
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, int):
        return str(value)
    return html.escape(str(value))


def _attrs(attrs: Mapping[str, object]) -> str:
    # Charts hold hundreds of marks (a year's daily bars): numbers need no escaping, text goes through
    # the standard library's C escape (the same five characters as markupsafe, without a Markup per value).
    return "".join(
        f' {_attr_name(name)}="{_value(value)}"' for name, value in attrs.items() if value is not None
    )


def _el(tag: str, attrs: Mapping[str, object], *children: str) -> str:
    if not children:
        return f"<{tag}{_attrs(attrs)}/>"
    return f"<{tag}{_attrs(attrs)}>{''.join(children)}</{tag}>"


def _hover(text: str) -> str:
    return f"<title>{html.escape(text)}</title>"


def _text(x: float, y: float, text: str, cls: str, anchor: str = "middle") -> str:
    return _el("text", {"x": float(x), "y": float(y), "class": cls, "text_anchor": anchor}, html.escape(text))


def _svg(kind: str, title: str, desc: str, width: float, height: float, body: str) -> Markup:
    ident = f"chart-{uuid.uuid4().hex[:8]}"
    head = f'<title id="{ident}-title">{escape(title)}</title><desc id="{ident}-desc">{escape(desc)}</desc>'
    attrs = {
        "xmlns": "http://www.w3.org/2000/svg",
        "class": f"chart chart-{kind}",
        "viewBox": f"0 0 {_num(width)} {_num(height)}",
        "role": "img",
        "aria_label": f"{title}. {desc}",
        "aria_labelledby": f"{ident}-title {ident}-desc",
        "preserveAspectRatio": "xMidYMid meet",
    }
    return Markup(_el("svg", attrs, head, body))


def empty_chart(title: str, *, kind: str = "empty", height: float = 120) -> Markup:
    """The figure shown when a period has no usage: the same frame, one clear sentence."""
    body = _el("rect", {"class": "chart-frame", "x": 0, "y": 0, "width": WIDTH, "height": height, "rx": 8})
    body += _text(WIDTH / 2, height / 2 + 5, EMPTY_TEXT, "chart-empty")
    return _svg(f"{kind} chart-empty-state", title, EMPTY_TEXT + ".", WIDTH, height, body)


def _is_empty(values: Sequence[Number]) -> bool:
    return not values or all(v <= 0 for v in values)


# -- scales ----------------------------------------------------------------------------------------------


def nice_ticks(maximum: float, count: int = 4) -> list[float]:
    """Round axis ticks from 0 to at least ``maximum``: steps of 1, 2, 2.5 or 5 times a power of ten."""
    if maximum <= 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    raw = maximum / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < maximum:
        ticks.append(ticks[-1] + step)
    return ticks


def _value_axis(ticks: list[float], unit: Unit, plot_h: float, width: float) -> str:
    top = ticks[-1]
    out = []
    for tick in ticks:
        y = TOP + plot_h - plot_h * tick / top
        out.append(_el("line", {"class": "chart-grid", "x1": LEFT, "x2": width - RIGHT, "y1": y, "y2": y}))
        out.append(_text(LEFT - 6, y + 4, format_tick(tick, unit), "chart-tick", "end"))
    return "".join(out)


def _category_axis(labels: Sequence[Label], slot: float, height: float) -> str:
    every = max(1, math.ceil(len(labels) / 8))  # at most about 8 labels: readable on a phone
    out = []
    for i in range(0, len(labels), every):
        text = _label_text(labels[i], short=True)
        out.append(_text(LEFT + slot * (i + 0.5), height - 8, text, "chart-tick"))
    return "".join(out)


# -- charts ----------------------------------------------------------------------------------------------


def trend_chart(
    points: Sequence[tuple[Label, Number]],
    *,
    title: str = "Daily trend",
    unit: Unit = "usd",
    style: Literal["bars", "line"] = "bars",
    height: float = 200,
) -> Markup:
    """One value per day (or any ordered label): bars or a line, with a value axis and thinned labels."""
    values = [max(0, v) for _, v in points]
    if _is_empty(values):
        return empty_chart(title, kind="trend")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    ticks = nice_ticks(max(values))
    slot = plot_w / len(points)
    marks = []
    coords = []
    for i, ((label, _), value) in enumerate(zip(points, values, strict=True)):
        h = plot_h * value / ticks[-1]
        x, y = LEFT + slot * i, TOP + plot_h - h
        hover = _hover(f"{_label_text(label, short=False)}: {format_value(value, unit)}")
        if style == "bars":  # hundreds of them for a year: written out, as _el would
            gap = min(slot * 0.2, 4)
            marks.append(
                f'<rect class="mark" x="{_value(x + gap / 2)}" y="{_value(y)}" '
                f'width="{_value(max(slot - gap, 0.5))}" height="{_value(h)}" '
                f'data-value="{_value(value)}">{hover}</rect>'
            )
        else:
            coords.append((x + slot / 2, y))
            dot = {"class": "mark", "cx": x + slot / 2, "cy": y, "r": 3 if len(points) <= 60 else 1.5}
            marks.append(_el("circle", {**dot, "data_value": value}, hover))
    line = ""
    if coords:
        line = _el(
            "polyline", {"class": "chart-line", "points": " ".join(f"{_num(a)},{_num(b)}" for a, b in coords)}
        )
    labels = [label for label, _ in points]
    total = format_value(sum(values), unit)
    peak_at = values.index(max(values))
    desc = (
        f"{len(points)} points from {_label_text(points[0][0], short=False)} to "
        f"{_label_text(points[-1][0], short=False)}; total {total}; highest "
        f"{format_value(values[peak_at], unit)} on {_label_text(points[peak_at][0], short=False)}."
    )
    body = (
        _value_axis(ticks, unit, plot_h, WIDTH) + line + "".join(marks) + _category_axis(labels, slot, height)
    )
    return _svg("trend", title, desc, WIDTH, height, body)


def comparison_chart(
    categories: Sequence[Label],
    series: Sequence[Series],
    *,
    title: str = "Month over month",
    unit: Unit = "usd",
    stacked: bool = False,
    height: float = 220,
) -> Markup:
    """Grouped (or stacked) bars: each category (a month) with one bar per series (a year, a model)."""
    for one in series:
        if len(one.values) != len(categories):
            raise ValueError(
                f"series {one.name!r} has {len(one.values)} values for {len(categories)} categories"
            )
    grid = [[max(0, v) for v in one.values] for one in series]
    if not categories or _is_empty([v for row in grid for v in row]):
        return empty_chart(title, kind="comparison")
    legend_h = 22
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM - legend_h
    top = max(sum(col) for col in zip(*grid, strict=True)) if stacked else max(max(row) for row in grid)
    ticks = nice_ticks(top)
    slot = plot_w / len(categories)
    inner = slot * 0.8
    marks = []
    for c, category in enumerate(categories):
        base = TOP + legend_h + plot_h
        for s, one in enumerate(series):
            value = grid[s][c]
            h = plot_h * value / ticks[-1]
            if stacked:
                x, w, y = LEFT + slot * c + (slot - inner) / 2, inner, base - h
                base -= h
            else:
                w = inner / len(series)
                x, y = LEFT + slot * c + (slot - inner) / 2 + w * s, TOP + legend_h + plot_h - h
            hover = _hover(f"{one.name} · {_label_text(category, short=False)}: {format_value(value, unit)}")
            attrs = {"class": f"mark series-{s % SERIES_COLOURS}", "x": x, "y": y, "width": w, "height": h}
            marks.append(_el("rect", {**attrs, "data_value": value}, hover))
    legend = []
    x = LEFT
    for s, one in enumerate(series):
        legend.append(
            _el(
                "rect",
                {
                    "class": f"swatch series-{s % SERIES_COLOURS}",
                    "x": x,
                    "y": 4,
                    "width": 10,
                    "height": 10,
                    "rx": 2,
                },
            )
        )
        legend.append(_text(x + 14, 13, one.name, "chart-legend", "start"))
        x += 24 + 7 * len(one.name)
    axis = _el("g", {"transform": f"translate(0 {legend_h})"}, _value_axis(ticks, unit, plot_h, WIDTH))
    totals = ", ".join(
        f"{one.name} {format_value(sum(max(0, v) for v in one.values), unit)}" for one in series
    )
    desc = f"{len(categories)} periods, {'stacked' if stacked else 'side by side'}; totals: {totals}."
    body = axis + "".join(marks) + "".join(legend) + _category_axis(categories, slot, height)
    return _svg("comparison", title, desc, WIDTH, height, body)


def weekly_heatmap(
    cells: Mapping[tuple[int, int], Number],
    *,
    title: str = "Weekly pattern",
    unit: Unit = "count",
) -> Markup:
    """A 7 x 24 grid: weekday (0 = Monday) by hour (0-23), darker where there was more usage."""
    values = {(d, h): max(0, v) for (d, h), v in cells.items() if 0 <= d < 7 and 0 <= h < 24}
    if _is_empty(list(values.values())):
        return empty_chart(title, kind="heatmap")
    left, top, cell = 36, 8, (WIDTH - 36 - RIGHT) / 24
    height = top + cell * 7 + 22
    peak = max(values.values())
    side = _value(cell - 2)
    marks = []
    for day in range(7):
        marks.append(_text(left - 6, top + cell * day + cell / 2 + 4, WEEKDAYS[day], "chart-tick", "end"))
        for hour in range(24):
            value = values.get((day, hour), 0)
            # Five steps of the one colour (.level-0 … .level-4), so the scale stays readable in any theme.
            level = 0 if value == 0 else 1 + min(3, int(4 * value / peak - 1e-9))
            hover = _hover(f"{WEEKDAYS[day]} {hour:02d}:00: {format_value(value, unit)}")
            marks.append(  # 168 of them: written out, as _el would
                f'<rect class="mark level-{level}" x="{_value(left + cell * hour + 1)}" '
                f'y="{_value(top + cell * day + 1)}" width="{side}" height="{side}" rx="2" '
                f'data-value="{_value(value)}" data-day="{day}" data-hour="{hour}">{hover}</rect>'
            )
    for hour in range(0, 24, 3):
        marks.append(_text(left + cell * hour + cell / 2, height - 6, f"{hour:02d}", "chart-tick"))
    busiest = max(values, key=lambda k: values[k])
    desc = (
        f"Usage by weekday and hour; busiest {WEEKDAYS[busiest[0]]} {busiest[1]:02d}:00 with "
        f"{format_value(values[busiest], unit)}."
    )
    return _svg("heatmap", title, desc, WIDTH, height, "".join(marks))


def bar_list(
    items: Sequence[tuple[str, Number]],
    *,
    title: str = "Top models",
    unit: Unit = "count",
    limit: int = 10,
    total: Number | None = None,
) -> Markup:
    """Horizontal bars, largest first, each with its name above it and its value (and share) beside."""
    ranked = sorted(((name, max(0, v)) for name, v in items), key=lambda item: -item[1])
    if _is_empty([v for _, v in ranked]):
        return empty_chart(title, kind="bar-list")
    shown = ranked[:limit]
    whole = total if total is not None else sum(v for _, v in ranked)
    row, bar_h = 36, 12
    height = row * len(shown) + 4
    peak = shown[0][1]
    marks = []
    for i, (name, value) in enumerate(shown):
        y = 4 + row * i
        share = f" ({value / whole:.0%})" if whole else ""
        label = f"{format_value(value, unit)}{share}"
        marks.append(_text(0, y + 11, name, "chart-label", "start"))
        marks.append(_text(WIDTH, y + 11, label, "chart-value", "end"))
        width = (WIDTH - 2) * value / peak
        attrs = {
            "class": "mark",
            "x": 0,
            "y": y + 16,
            "width": max(width, 1.0 if value else 0.0),
            "height": bar_h,
            "rx": 3,
        }
        marks.append(_el("rect", {**attrs, "data_value": value}, _hover(f"{name}: {label}")))
    more = f" ({len(ranked) - len(shown)} more not shown)" if len(ranked) > len(shown) else ""
    desc = f"{len(shown)} ranked by {unit}; first {shown[0][0]} with {format_value(peak, unit)}{more}."
    return _svg("bar-list", title, desc, WIDTH, height, "".join(marks))


def lorenz_points(values: Sequence[Number]) -> list[tuple[float, float]]:
    """Cumulative (share of members, share of usage), least-using members first, from (0, 0) to (1, 1)."""
    ordered = sorted(max(0, v) for v in values)
    total = sum(ordered)
    points = [(0.0, 0.0)]
    running: Number = 0
    for i, value in enumerate(ordered, start=1):
        running += value
        points.append((i / len(ordered), running / total))
    return points


def top_share(values: Sequence[Number], fraction: float = 0.2) -> float:
    """The share of all usage of the top ``fraction`` of members (at least one member)."""
    ordered = sorted((max(0, v) for v in values), reverse=True)
    total = sum(ordered)
    if not total:
        return 0.0
    return sum(ordered[: max(1, math.ceil(len(ordered) * fraction))]) / total


def distribution_chart(
    values: Sequence[Number],
    *,
    title: str = "Distribution across members",
    unit: Unit = "usd",
    size: float = 240,
) -> Markup:
    """A Lorenz curve of usage across members: the further below the diagonal, the more concentrated."""
    if _is_empty(values):
        return empty_chart(title, kind="distribution")
    points = lorenz_points(values)
    left, top, plot = 44, 8, size - 44 - 34

    def at(px: float, py: float) -> tuple[float, float]:
        return left + plot * px, top + plot - plot * py

    curve = " ".join(f"{_num(x)},{_num(y)}" for x, y in (at(px, py) for px, py in points))
    body = [
        _el("rect", {"class": "chart-frame", "x": left, "y": top, "width": plot, "height": plot}),
        _el("line", {"class": "chart-equality", "x1": left, "y1": top + plot, "x2": left + plot, "y2": top}),
        _el("polyline", {"class": "chart-line", "points": curve}),
    ]
    # One hoverable point per tenth of the members (all of them when there are few).
    step = max(1, len(points) // 10)
    marked = sorted({*range(step, len(points), step), len(points) - 1})
    for i in marked:
        px, py = points[i]
        cx, cy = at(px, py)
        hover = f"The {i} least-using of {len(points) - 1} members ({px:.0%}): {py:.0%} of usage"
        marks = {"class": "mark", "cx": cx, "cy": cy, "r": 3, "data_members": px, "data_usage": py}
        body.append(_el("circle", marks, _hover(hover)))
    for tick in (0, 0.5, 1):
        x, y = at(tick, tick)
        body.append(_text(x, top + plot + 14, f"{tick:.0%}", "chart-tick"))
        body.append(_text(left - 4, y + 4, f"{tick:.0%}", "chart-tick", "end"))
    body.append(_text(left + plot / 2, top + plot + 28, "Share of members", "chart-tick"))
    axis_title = _text(0, 0, "Share of usage", "chart-tick")
    body.append(_el("g", {"transform": f"translate(10 {_num(top + plot / 2)}) rotate(-90)"}, axis_title))
    gini = 1 - sum((x2 - x1) * (y1 + y2) for (x1, y1), (x2, y2) in itertools.pairwise(points))
    desc = (
        f"{len(values)} members, {format_value(sum(max(0, v) for v in values), unit)} in all; the top 20% "
        f"account for {top_share(values):.0%} of usage (Gini {gini:.2f})."
    )
    return _svg("distribution", title, desc, size, top + plot + 34, "".join(body))


def sparkline(
    values: Sequence[Number],
    *,
    title: str = "Trend",
    unit: Unit = "usd",
    width: float = 120,
    height: float = 28,
) -> Markup:
    """A small line for a card: no axes; the description and hover give the first, last and highest value."""
    clean = [max(0, v) for v in values]
    if _is_empty(clean):
        body = _el("line", {"class": "chart-grid", "x1": 0, "x2": width, "y1": height - 2, "y2": height - 2})
        return _svg("sparkline chart-empty-state", title, EMPTY_TEXT + ".", width, height, body)
    peak = max(clean)
    step = width / max(1, len(clean) - 1)
    coords = [
        (step * i if len(clean) > 1 else width / 2, height - 2 - (height - 4) * v / peak)
        for i, v in enumerate(clean)
    ]
    desc = (
        f"{len(clean)} points: first {format_value(clean[0], unit)}, last {format_value(clean[-1], unit)}, "
        f"highest {format_value(peak, unit)}."
    )
    line = _el(
        "polyline", {"class": "chart-line", "points": " ".join(f"{_num(x)},{_num(y)}" for x, y in coords)}
    )
    last_x, last_y = coords[-1]
    dot = _el(
        "circle", {"class": "mark", "cx": last_x, "cy": last_y, "r": 2, "data_value": clean[-1]}, _hover(desc)
    )
    return _svg("sparkline", title, desc, width, height, line + dot)
