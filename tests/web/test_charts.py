"""Server-side SVG charts: parsed back as XML, every mark checked against the data it was drawn from."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from jinja2 import Environment
from markupsafe import Markup

from tokenboard.kit.money import NANO_PER_USD
from tokenboard.web.charts import (
    EMPTY_TEXT,
    Series,
    bar_list,
    comparison_chart,
    distribution_chart,
    format_tick,
    lorenz_points,
    nice_ticks,
    sparkline,
    top_share,
    trend_chart,
    weekly_heatmap,
)

NS = "{http://www.w3.org/2000/svg}"
USD = NANO_PER_USD


def parse(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    root = ET.fromstring(str(markup))  # fails on anything that is not well-formed XML
    assert root.tag == f"{NS}svg"
    return root


def marks(root: ET.Element, tag: str = "rect") -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}{tag}") if "mark" in e.get("class", "").split()]


def hover(element: ET.Element) -> str:
    title = element.find(f"{NS}title")
    assert title is not None and title.text
    return title.text


def assert_accessible(root: ET.Element) -> None:
    assert root.get("role") == "img"
    assert root.get("aria-label")
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    labelled = (root.get("aria-labelledby") or "").split()
    assert len(labelled) == 2 and set(labelled) <= ids
    assert root.find(f"{NS}title") is not None and root.find(f"{NS}desc") is not None
    view = [float(v) for v in (root.get("viewBox") or "").split()]
    assert len(view) == 4 and view[2] > 0 and view[3] > 0
    assert root.get("width") is None  # scales with its container: a phone gets it at full width


def assert_empty(root: ET.Element) -> None:
    assert_accessible(root)
    assert EMPTY_TEXT in "".join(root.itertext())
    assert not marks(root) and not marks(root, "circle")


def days(values: list[int]) -> list[tuple[date, int]]:
    start = date(2025, 3, 1)
    return [(start + timedelta(days=i), v) for i, v in enumerate(values)]


def test_trend_bars_are_proportional_to_the_values_and_say_them_on_hover() -> None:
    values = [5 * USD, 0, 12 * USD, 3 * USD + 250_000_000, 7 * USD]
    root = parse(trend_chart(days(values), title="Daily spend"))
    assert_accessible(root)
    bars = marks(root)
    assert len(bars) == len(values)
    heights = [float(b.get("height", "")) for b in bars]
    for value, height in zip(values, heights, strict=True):
        assert height == pytest.approx(heights[2] * value / values[2], abs=0.02)
    assert heights[1] == 0
    assert [hover(b) for b in bars] == [
        "2025-03-01: $5.00",
        "2025-03-02: $0.00",
        "2025-03-03: $12.00",
        "2025-03-04: $3.25",
        "2025-03-05: $7.00",
    ]
    # Bars stand on the same baseline, in order, left to right.
    bottoms = {round(float(b.get("y", "")) + float(b.get("height", "")), 1) for b in bars}
    assert len(bottoms) == 1
    xs = [float(b.get("x", "")) for b in bars]
    assert xs == sorted(xs)
    ticks = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "chart-tick"]
    assert "$0" in ticks and "Mar 1" in ticks
    assert "total $27.25" in (root.find(f"{NS}desc").text or "")  # type: ignore[union-attr]


def test_trend_line_draws_one_point_per_day() -> None:
    values = [10, 20, 15]
    root = parse(trend_chart(days(values), unit="count", style="line"))
    dots = marks(root, "circle")
    assert [int(d.get("data-value", "")) for d in dots] == values
    line = next(root.iter(f"{NS}polyline"))
    assert len((line.get("points") or "").split()) == 3
    ys = [float(d.get("cy", "")) for d in dots]
    assert ys[1] < ys[2] < ys[0]  # higher value, higher on screen


def test_a_single_point_and_huge_values_still_draw() -> None:
    root = parse(trend_chart(days([4 * 10**18]), title="One day"))  # four billion dollars
    (bar,) = marks(root)
    for attr in ("x", "y", "width", "height"):
        assert math.isfinite(float(bar.get(attr, "")))
    assert float(bar.get("width", "")) > 0
    assert hover(bar) == "2025-03-01: $4,000,000,000.00"
    ticks = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "chart-tick"]
    assert any(t and t.endswith("B") for t in ticks), ticks


@pytest.mark.parametrize("points", [[], days([0, 0, 0])])
def test_no_usage_shows_the_placeholder(points: list[tuple[date, int]]) -> None:
    assert_empty(parse(trend_chart(points)))


def test_every_empty_chart_says_so() -> None:
    for chart in (
        comparison_chart([], []),
        comparison_chart(["Jan"], [Series("2025", [0])]),
        weekly_heatmap({}),
        bar_list([]),
        distribution_chart([]),
        distribution_chart([0, 0]),
    ):
        assert_empty(parse(chart))
    spark = parse(sparkline([]))
    assert_accessible(spark)
    assert EMPTY_TEXT in (spark.find(f"{NS}desc").text or "")  # type: ignore[union-attr]


def test_labels_are_escaped_everywhere() -> None:
    evil = '<script>alert("x")</script> & "quotes"'
    charts = [
        trend_chart([(evil, 5)], title=evil, unit="count"),
        comparison_chart([evil], [Series(evil, [3])], title=evil),
        bar_list([(evil, 9)], title=evil),
        weekly_heatmap({(0, 0): 1}, title=evil),
        distribution_chart([1, 2], title=evil),
        sparkline([1, 2], title=evil),
    ]
    for chart in charts:
        assert "<script>" not in str(chart)
        root = parse(chart)
        assert evil in (root.find(f"{NS}title").text or "")  # type: ignore[union-attr]
        assert evil in (root.get("aria-label") or "")
    assert evil in "".join(parse(charts[2]).itertext())


def test_charts_embed_in_templates_without_double_escaping() -> None:
    env = Environment(autoescape=True)
    html = env.from_string("<figure>{{ chart }}</figure>").render(chart=bar_list([("a & b", 3)]))
    assert html.startswith("<figure><svg ") and "a &amp; b" in html and "&lt;svg" not in html


def test_grouped_comparison_has_one_bar_per_period_and_series() -> None:
    months = ["Jan", "Feb", "Mar"]
    series = [Series("2024", [1 * USD, 2 * USD, 4 * USD]), Series("2025", [2 * USD, 0, 8 * USD])]
    root = parse(comparison_chart(months, series, title="Year over year"))
    assert_accessible(root)
    bars = marks(root)
    assert len(bars) == 6
    by_title = {hover(b): float(b.get("height", "")) for b in bars}
    assert by_title["2025 · Mar: $8.00"] == pytest.approx(2 * by_title["2024 · Mar: $4.00"], abs=0.02)
    assert by_title["2025 · Feb: $0.00"] == 0
    assert {b.get("class") for b in bars} == {"mark series-0", "mark series-1"}
    legend = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "chart-legend"]
    assert legend == ["2024", "2025"]


def test_stacked_comparison_stacks_to_the_period_total() -> None:
    series = [Series("gpt-4o", [3, 1]), Series("claude", [1, 1])]
    root = parse(comparison_chart(["Apr", "May"], series, unit="count", stacked=True))
    bars = marks(root)
    april = [b for b in bars if "Apr" in hover(b)]
    may = [b for b in bars if "May" in hover(b)]
    april_height = sum(float(b.get("height", "")) for b in april)
    may_height = sum(float(b.get("height", "")) for b in may)
    assert april_height == pytest.approx(2 * may_height, abs=0.05)
    # The second series sits right on top of the first.
    first, second = april
    assert float(second.get("y", "")) + float(second.get("height", "")) == pytest.approx(
        float(first.get("y", "")), abs=0.02
    )


def test_comparison_refuses_misaligned_series() -> None:
    with pytest.raises(ValueError, match="2 values for 3 categories"):
        comparison_chart(["a", "b", "c"], [Series("x", [1, 2])])


def test_the_heatmap_has_a_cell_for_every_hour_of_the_week() -> None:
    cells = {(day, hour): day * 24 + hour for day in range(7) for hour in range(24)}
    cells[(2, 14)] = 1000
    cells[(0, 0)] = 0
    root = parse(weekly_heatmap(cells, title="Weekly pattern"))
    assert_accessible(root)
    rects = marks(root)
    assert len(rects) == 7 * 24
    by_slot = {(int(r.get("data-day", "")), int(r.get("data-hour", ""))): r for r in rects}
    assert set(by_slot) == set(cells)
    assert "level-4" in (by_slot[(2, 14)].get("class") or "")
    assert "level-0" in (by_slot[(0, 0)].get("class") or "")
    assert "level-1" in (by_slot[(0, 1)].get("class") or "")
    assert hover(by_slot[(2, 14)]) == "Wed 14:00: 1,000"
    assert "busiest Wed 14:00" in (root.find(f"{NS}desc").text or "")  # type: ignore[union-attr]
    # Sparse data: missing hours are empty cells, out-of-range keys are ignored.
    sparse = parse(weekly_heatmap({(6, 23): 5, (7, 0): 9, (0, 24): 9}))
    assert len(marks(sparse)) == 168
    assert sum("level-4" in (r.get("class") or "") for r in marks(sparse)) == 1


def test_bar_list_ranks_limits_and_shares() -> None:
    items = [(f"model-{i}", i * 10) for i in range(1, 13)]
    root = parse(bar_list(items, title="Model popularity", unit="count", limit=5))
    bars = marks(root)
    assert len(bars) == 5
    assert [hover(b).split(":")[0] for b in bars] == [
        "model-12",
        "model-11",
        "model-10",
        "model-9",
        "model-8",
    ]
    widths = [float(b.get("width", "")) for b in bars]
    assert widths[1] == pytest.approx(widths[0] * 110 / 120, abs=0.02)
    total = sum(v for _, v in items)
    assert hover(bars[0]) == f"model-12: 120 ({120 / total:.0%})"
    assert "7 more not shown" in (root.find(f"{NS}desc").text or "")  # type: ignore[union-attr]


def test_lorenz_curve_of_usage_across_members() -> None:
    values = [1, 1, 1, 1, 96]  # one heavy user
    points = lorenz_points(values)
    assert points[0] == (0.0, 0.0) and points[-1] == pytest.approx((1.0, 1.0))
    assert all(b[1] >= a[1] for a, b in itertools.pairwise(points))
    assert points[4] == pytest.approx((0.8, 0.04))
    assert top_share(values) == pytest.approx(0.96)
    root = parse(distribution_chart(values, unit="count"))
    assert_accessible(root)
    dots = marks(root, "circle")
    assert [float(d.get("data-usage", "")) for d in dots] == pytest.approx([0.01, 0.02, 0.03, 0.04, 1.0])
    desc = root.find(f"{NS}desc").text or ""  # type: ignore[union-attr]
    assert "top 20% account for 96% of usage" in desc and "Gini 0.76" in desc
    # Everyone equal: the curve is the diagonal.
    even = parse(distribution_chart([5, 5, 5, 5], unit="count"))
    for dot in marks(even, "circle"):
        assert float(dot.get("data-members", "")) == pytest.approx(float(dot.get("data-usage", "")))
    assert "Gini 0.00" in (even.find(f"{NS}desc").text or "")  # type: ignore[union-attr]


def test_sparkline_scales_to_its_highest_value() -> None:
    root = parse(sparkline([0, 5 * USD, 10 * USD], title="Spend"))
    assert_accessible(root)
    line = next(root.iter(f"{NS}polyline"))
    ys = [float(p.split(",")[1]) for p in (line.get("points") or "").split()]
    assert ys[0] > ys[1] > ys[2]
    assert ys[0] - ys[1] == pytest.approx(ys[1] - ys[2], abs=0.02)
    assert "last $10.00" in (root.find(f"{NS}desc").text or "")  # type: ignore[union-attr]
    single = parse(sparkline([7], unit="count"))
    assert len(marks(single, "circle")) == 1


def test_nice_ticks_and_tick_labels() -> None:
    assert nice_ticks(10) == [0, 2.5, 5, 7.5, 10]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(4 * 10**18)[-1] >= 4 * 10**18
    assert format_tick(1_500 * USD, "usd") == "$1.5k"
    assert format_tick(2_000_000 * USD, "usd") == "$2M"
    assert format_tick(USD // 20, "usd") == "$0.05"
    assert format_tick(0, "usd") == "$0"
    assert format_tick(250, "ms") == "250 ms"
    assert format_tick(12_345_678, "count") == "12.3M"
