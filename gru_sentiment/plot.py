"""Static unit maps (PNG or SVG) for papers and docs: per text, the token attributions as a diverging strip and,
per GRU layer and direction, units x tokens heatmaps of the update gate z, the reset gate r (and the state h).

Draws only what `predict`, `gates`, `attribution` and `explain.unit_order` computed. matplotlib is optional and
imported when a plot is asked for; the figure is a plain `Figure` on the Agg canvas (no pyplot, no global state).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from gru_sentiment.errors import UsageError
from gru_sentiment.explain import unit_order
from gru_sentiment.textio import write_text_atomically

FORMATS = {".png": "png", ".svg": "svg"}
UNITS = "units (alike together:\nspectral seriation of z, r)"
GATES = (  # (field, colormap, title); z and r in the terminal view's colours (viridis)
    ("update", "viridis", "update gate z (yellow: keeps the past state, purple: writes the new candidate)"),
    ("reset", "viridis", "reset gate r (purple: ignores the past in the candidate, yellow: uses it)"),
    ("hidden", "PiYG", "hidden state h (pink: negative, green: positive)"),
)
MAX_WIDTH = 40.0  # inches, however long the text
TOKEN_WIDTH = 0.16  # inches per token while the width allows
LABEL_PITCH = 0.15  # inches between two token labels, at least
MAX_LABEL = 18  # characters of a token label


def save_unit_maps(predictions, path, full: bool = False, labels: list[str] | None = None) -> None:
    """Write the unit maps of `predictions` (with `gates` from `predict`) to `path`, a .png or .svg file."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"--plot: give a .png or .svg file name, not {path.name or path}")
    fig = figure(predictions, full, labels)
    width, height = fig.get_size_inches()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=min(150.0, 60000 / max(width, height)))  # Agg allows < 2**16 pixels a side
    write_text_atomically(path, buffer.getvalue())


def figure(predictions, full: bool = False, labels: list[str] | None = None):
    """The matplotlib `Figure` of the unit maps (what `save_unit_maps` writes)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError("--plot needs matplotlib: pip install 'gru-sentiment[plot]'") from exc
    names = GATES if full else GATES[:2]
    longest = max([len(p.gates.tokens) if p.gates else 0 for p in predictions] + [1])
    plot_width = min(MAX_WIDTH - 3.5, max(5.0, TOKEN_WIDTH * longest))  # 3.5 inches for labels and colour bars
    heights = [_height(p, names) for p in predictions] or [1.0]
    fig = Figure(figsize=(plot_width + 3.5, sum(heights)), layout="constrained")
    FigureCanvasAgg(fig)
    subfigs = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    for index, (pred, sub) in enumerate(zip(predictions, subfigs), start=1):
        _draw(sub, index, pred, names, labels, plot_width)
    return fig


def _rows(text_gates, names) -> list:
    """(inches, what) for each panel of a text: the attribution strip (None), then z, r (, h) per layer/direction."""
    rows = [(0.45, None)] if text_gates.attribution is not None else []
    return rows + [(_map_height(t), (t, *gate)) for t in text_gates.layers for gate in names]


def _map_height(trace) -> float:
    return min(3.5, max(1.3, 0.06 * trace.values.update.shape[1]))


def _height(pred, names) -> float:
    """Inches for one text: title, panels with their titles, token labels (below, and above if > 2 panels)."""
    tg = pred.gates
    rows = _rows(tg, names) if tg is not None and tg.tokens else []
    if not rows:
        return 0.6
    label = 0.25 + 0.05 * max(len(_shown(pred.text, tg, i)) for i in range(len(tg.tokens)))
    return 0.45 + sum(h + 0.3 for h, _ in rows) + label * (2 if len(rows) > 2 else 1)


def _draw(sub, index, pred, names, labels, plot_width) -> None:
    probabilities = ", ".join(f"{_plain(k)} {v:.3f}" for k, v in pred.probabilities.items())
    truncated = ", truncated" if getattr(pred, "truncated", False) else ""
    sub.suptitle(f"text {index}: {_plain(pred.label)} ({probabilities}{truncated})", x=0.01, ha="left", size=10)
    tg = pred.gates
    rows = _rows(tg, names) if tg is not None and tg.tokens else []
    if not rows:
        sub.text(0.01, 0.2, "no tokens, gates or attributions to draw", size=8, style="italic")
        return
    count = len(tg.tokens)
    width = min(plot_width, max(5.0, TOKEN_WIDTH * count))  # room for the panel titles
    spare = plot_width - width  # a short text keeps narrow columns: an empty column takes the rest
    widths = [width, spare] if spare > 0.01 else [width]
    grid = sub.add_gridspec(len(rows), len(widths), height_ratios=[h for h, _ in rows], width_ratios=widths)
    axes, gate_images, hidden_images = [], [], []
    for i, (_, row) in enumerate(rows):
        ax = sub.add_subplot(grid[i, 0], sharex=axes[0] if axes else None)
        axes.append(ax)
        if row is None:
            _attribution(sub, ax, tg.attribution, labels)
            continue
        trace, name, cmap, title = row
        order = unit_order(trace.values)
        values = getattr(trace.values, name)[:, order].t().float().numpy()  # (H, T)
        low = -1.0 if name == "hidden" else 0.0
        image = ax.imshow(values, cmap=cmap, vmin=low, vmax=1.0, aspect="auto", interpolation="nearest")
        (hidden_images if name == "hidden" else gate_images).append((ax, image))
        ax.set_title(f"layer {trace.layer} {trace.direction} · {title}", loc="left", size=7)
        ax.set_ylabel(UNITS, size=6)
        step = max(1, math.ceil(len(order) * 0.09 / _map_height(trace)))
        ax.set_yticks(range(0, len(order), step), [str(u) for u in order[::step]], size=5)
    shown = [_plain(_shown(pred.text, tg, i)) for i in range(count)]
    step = max(1, math.ceil(LABEL_PITCH * count / width))  # every step-th token is labelled
    for ax in axes:
        ax.set_xticks(range(0, count, step), shown[::step])
        top = ax is axes[0] and len(axes) > 2
        ax.tick_params(axis="x", labelrotation=90, labelsize=6, labelbottom=ax is axes[-1], labeltop=top)
    for images, label in ((gate_images[:2], "z, r"), (hidden_images[:1], "h")):  # beside the first maps
        if images:
            bar = sub.colorbar(images[0][1], ax=[a for a, _ in images], fraction=0.02, aspect=25)
            bar.set_label(label, size=7)
            bar.ax.tick_params(labelsize=6)


def _attribution(sub, ax, attribution, labels) -> None:
    scores = list(attribution.scores)
    limit = max((abs(s) for s in scores), default=0.0) or 1.0
    image = ax.imshow([scores], cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    label = labels[attribution.label] if labels else f"label {attribution.label}"
    ax.set_ylabel(f"attribution\n(for {_plain(label)})", rotation=0, ha="right", va="center", size=7)
    ax.set_yticks([])
    title = f"integrated gradients: blue for {_plain(label)}, red against; completeness gap {attribution.gap:.1%}"
    ax.set_title(title, loc="left", size=7)
    bar = sub.colorbar(image, ax=ax, fraction=0.02, aspect=4, ticks=[-limit, limit], format="{x:+.2g}")
    bar.ax.tick_params(labelsize=5)


def _shown(text: str, text_gates, index: int) -> str:
    start, end = text_gates.offsets[index]
    token = text[start:end] if end > start else text_gates.tokens[index]
    token = " ".join(token.split()) or token
    return token if len(token) <= MAX_LABEL else token[: MAX_LABEL - 1] + "…"


def _plain(text: str) -> str:
    """Text that matplotlib shows as it is (a pair of '$' would start math mode)."""
    return str(text).replace("$", r"\$")
