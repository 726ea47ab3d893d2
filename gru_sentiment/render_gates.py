"""Gate heatmaps for the terminal (`rich`): each token on a background coloured by a gate's value.

Computes nothing beyond picking colours; the values come from `gates` and `explain`.
"""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text

from gru_sentiment import tokenizer

# a sequential palette (viridis' ends and middle): dark purple = 0, teal = 0.5, yellow = 1
PALETTE = ((68, 1, 84), (33, 145, 140), (253, 231, 37))
SHORT = {"forward": "fwd", "backward": "bwd"}
# by value, not by colour: a terminal of 8 or 16 colours draws the palette in its own nearest colours
MEANING = {
    "update": "update gate z: near 1 keeps the past state, near 0 writes the new candidate",
    "reset": "reset gate r: near 0 ignores the past when forming the candidate, near 1 uses it",
}


def _blend(palette, position: float) -> tuple[int, int, int]:
    """Colour at `position` in [0, 1] (clipped) along a palette of evenly spaced colours."""
    v = min(1.0, max(0.0, float(position))) * (len(palette) - 1)
    i = min(int(v), len(palette) - 2)
    f = v - i
    a, b = palette[i], palette[i + 1]
    return tuple(round(a[k] + (b[k] - a[k]) * f) for k in range(3))


def rgb(value: float) -> tuple[int, int, int]:
    """Colour of a value in [0, 1] on the palette (values outside are clipped)."""
    return _blend(PALETTE, value)


# a diverging palette for attributions (ColorBrewer RdBu ends and middle): red = -1 (against the label),
# near-white = 0, blue = +1 (for the label)
DIVERGING = ((178, 24, 43), (247, 247, 247), (33, 102, 172))


def attribution_rgb(value: float) -> tuple[int, int, int]:
    """Colour of a value in [-1, 1] on the diverging palette (values outside are clipped)."""
    return _blend(DIVERGING, (float(value) + 1) / 2)


def attribution_ink(value: float) -> str:
    """Text colour on `attribution_rgb(value)`: dark on the pale middle, white on the strong ends."""
    return "black" if abs(value) < 0.6 else "white"


def completeness_line(found) -> str:
    """How the attributions add up, and how far they miss: the same words in every view."""
    return (
        f"sum {sum(found.scores):+.3f} = log-odds {found.value:+.3f} - all-padding baseline "
        f"{found.baseline_value:+.3f}; completeness gap {found.gap:.2%} ({found.steps} steps)"
    )


def text_colour(value: float) -> str:
    return "black" if value > 0.55 else "white"


def shown_tokens(text: str, tokens: list[str], offsets: list[tuple[int, int]]) -> Iterator[tuple[str, str]]:
    """(what goes before it, the token as written in `text`) for each token: nothing before the first, then a
    space, or ' … ' over text the model never read (the middle of a long one, cut head+tail)."""
    previous_end = None
    for token, (start, end) in zip(tokens, offsets):
        before = ""
        if previous_end is not None and start > previous_end:
            before = " … " if tokenizer.skipped(text, previous_end, start) else " "
        yield before, text[start:end] if end > start else token
        previous_end = end


def heat_line(
    text: str,
    tokens: list[str],
    offsets: list[tuple[int, int]],
    values: list[float],
    colour=rgb,
    ink=text_colour,
) -> Text:
    """The tokens as they appear in `text` (see `shown_tokens`), each on its value's colour."""
    line = Text()
    for (before, shown), value in zip(shown_tokens(text, tokens, offsets), values):
        line.append(before)
        r, g, b = colour(value)
        line.append(shown, Style(bgcolor=f"rgb({r},{g},{b})", color=ink(value)))
    return line


def legend(low: str = "0", high: str = "1", colour=rgb, start: float = 0.0) -> Text:
    """The palette from `start` to 1 as the terminal draws it, its ends named by value or meaning: the names of
    what is drawn whatever colours the terminal has."""
    bar = Text(f"{low} ")
    for step in range(21):
        r, g, b = colour(start + (1 - start) * step / 20)
        bar.append(" ", Style(bgcolor=f"rgb({r},{g},{b})"))
    bar.append(f" {high}")
    return bar


def attribution_view(text: str, text_gates, label: str, strongest: int = 5) -> list:
    """The attribution row (coloured from against the label to for it, scaled to the largest |value|, under a
    legend of the colours) and the words that pushed hardest each way, with the completeness gap."""
    found = text_gates.attribution
    scores = found.scores
    scale = max((abs(s) for s in scores), default=0.0) or 1.0
    scaled = [v / scale for v in scores]
    line = heat_line(text, text_gates.tokens, text_gates.offsets, scaled, attribution_rgb, attribution_ink)
    ranked = sorted(range(len(scores)), key=scores.__getitem__)
    pushes = [
        f"{'for' if sign > 0 else 'against'} {label}: "
        + (", ".join(f"{_shown(text, text_gates, i)!r} ({scores[i]:+.2f})" for i in chosen) or "-")
        for sign, chosen in (
            (1, [i for i in reversed(ranked) if scores[i] > 0][:strongest]),
            (-1, [i for i in ranked if scores[i] < 0][:strongest]),
        )
    ]
    return [
        Text.assemble(
            (f"attribution to {label} (integrated gradients)  ", "bold"),
            legend("against", "for", attribution_rgb, start=-1.0),
        ),
        line,
        Text("; ".join(pushes), style="italic"),
        Text(completeness_line(found), style="dim"),
        Text(""),
    ]


def unit_map_lines(text: str, text_gates, trace, units: list[int], width: int = 14) -> list:
    """A compact map of chosen units: one line per token, one coloured cell per unit for z, then for r; units
    ordered so that alike ones sit together (`explain.unit_order` over the chosen units)."""
    from gru_sentiment.explain import unit_order

    chosen = trace.values.map(lambda v: v[:, units])
    order = [units[i] for i in unit_order(chosen)]
    header = Text(f"layer {trace.layer} {trace.direction} · units {' '.join(map(str, order))}: ", style="bold")
    header.append("z", style="bold").append(" | ").append("r", style="bold")
    lines = [header]
    for i in range(len(text_gates.tokens)):
        line = Text(f"{_shown(text, text_gates, i)[:width]:>{width}} ")
        for name in ("update", "reset"):
            values = getattr(trace.values, name)[i]
            for u in order:
                r, g, b = rgb(float(values[u]))
                line.append("  ", Style(bgcolor=f"rgb({r},{g},{b})"))
            line.append(" ")
        lines.append(line)
    return lines


def gate_view(
    text: str,
    text_gates,
    units: dict[tuple[int, str], list[int]] | None = None,
    lowest: int = 5,
    labels: list[str] | None = None,
    unit_map: bool = False,
) -> Group:
    """Heatmaps of the update and reset gates for every layer/direction: the mean over units, or the units
    chosen for each (layer, direction), or (`unit_map`) a compact map of those units; the attribution row first
    when the prediction has one."""
    parts: list = []
    found = text_gates.attribution
    if found is not None:
        parts += attribution_view(text, text_gates, labels[found.label] if labels else str(found.label))
    if not text_gates.layers:
        return Group(*parts)
    parts.append(Text.assemble(("gates  ", "bold"), legend()))
    for name in ("update", "reset"):
        parts.append(Text(f"  {MEANING[name]}", style="dim"))
    for trace in text_gates.layers:
        title = f"layer {trace.layer} {trace.direction}"
        chosen = units.get((trace.layer, trace.direction)) if units else None
        rows = [("mean", None)] if not chosen or unit_map else [(f"unit {u}", u) for u in chosen]
        for label, unit in rows:
            for name in ("update", "reset"):
                values = getattr(trace.values, name)
                series = values.mean(-1) if unit is None else values[:, unit]
                parts.append(Text(f"{title} · {name} ({label})", style="bold"))
                parts.append(heat_line(text, text_gates.tokens, text_gates.offsets, series.tolist()))
        if unit_map and chosen:
            parts += unit_map_lines(text, text_gates, trace, chosen)
        update = trace.values.update.mean(-1)
        order = update.argsort()[:lowest].tolist()
        washed = ", ".join(f"{_shown(text, text_gates, i)!r} ({update[i]:.2f})" for i in sorted(order))
        parts.append(Text(f"lowest mean z (state most rewritten) at: {washed}", style="italic"))
        parts.append(Text(""))
    return Group(*parts)


def gate_table(
    text: str, text_gates, units: dict[tuple[int, str], list[int]] | None = None, labels: list[str] | None = None
) -> Table | Group:
    """The same values as numbers, one row per token: for consoles without colour (pipes, NO_COLOR)."""
    table = Table(box=None, pad_edge=False)
    table.add_column("token")
    columns = []
    found = text_gates.attribution
    if found is not None:
        label = labels[found.label] if labels else str(found.label)
        table.add_column(Text(f"attr {label}"), justify="right")
        columns.append((found.scores, "{:+.3f}"))
    for trace in text_gates.layers:
        chosen = units.get((trace.layer, trace.direction)) if units else None
        for unit in chosen or [None]:
            suffix = "" if unit is None else f" u{unit}"
            for name, symbol in (("update", "z"), ("reset", "r")):
                table.add_column(f"{symbol} L{trace.layer} {SHORT[trace.direction]}{suffix}", justify="right")
                values = getattr(trace.values, name)
                columns.append(((values.mean(-1) if unit is None else values[:, unit]).tolist(), "{:.3f}"))
    for i in range(len(text_gates.tokens)):
        table.add_row(Text(_shown(text, text_gates, i)), *(fmt.format(c[i]) for c, fmt in columns))
    if found is None:
        return table
    return Group(table, Text(f"attr: integrated gradients to {label}; {completeness_line(found)}"))


def _shown(text: str, text_gates, index: int) -> str:
    start, end = text_gates.offsets[index]
    return text[start:end] if end > start else text_gates.tokens[index]


def saturation_table(summary: dict) -> Table:
    table = Table(
        title=f"gate saturation over {summary['texts']:,} texts: share of steps a unit spends left- "
        f"(< {summary['low']}) or right-saturated (> {summary['high']}), averaged over "
        f"{summary['hidden_size']} units; units that are so more than half the time",
        title_justify="left",
    )
    for col in ("layer", "dir", "gate", "mean", "left", "right", "units L", "units R", "steps"):
        table.add_column(col, justify="left" if col in ("dir", "gate") else "right")
    for row in summary["gates"]:
        table.add_row(
            str(row["layer"]),
            SHORT[row["direction"]],
            row["gate"],
            f"{row['mean']:.3f}",
            f"{row['left_saturated']:.1%}",
            f"{row['right_saturated']:.1%}",
            str(row["units_mostly_left"]),
            str(row["units_mostly_right"]),
            f"{row['steps']:,}",
        )
    return table


def unit_search_table(result: dict, top: int) -> Group:
    """The units that `explain.find_units` ranked first, with their effect sizes, under a line that says what was
    searched (not wrapped to the table's width)."""
    title = (
        f"units that behave differently on words matching {result['pattern']!r}: "
        f"{result['n_match']:,} matching and {result['n_other']:,} other tokens in {result['texts']:,} texts; "
        "effect = (mean on matching - mean on other) / pooled standard deviation"
    )
    table = Table()
    for name in ("layer", "dir", "unit", "gate", "effect", "mean match", "mean other"):
        table.add_column(name, justify="left" if name in ("dir", "gate") else "right")
    for row in result["units"][:top]:
        table.add_row(
            str(row["layer"]),
            SHORT[row["direction"]],
            str(row["unit"]),
            {"update": "z", "reset": "r", "hidden": "h"}[row["gate"]],
            f"{row['effect']:+.2f}",
            f"{row['mean_match']:.3f}",
            f"{row['mean_other']:.3f}",
        )
    return Group(Text(title, style="table.title"), table)
