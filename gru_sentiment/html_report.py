"""One self-contained HTML page of gate heatmaps: no scripts, no network, every piece of user text escaped."""

from __future__ import annotations

from html import escape

from gru_sentiment.render_gates import MEANING, rgb, text_colour

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; color: #222; }
h2 { font-size: 1.1em; margin-top: 2em; }
.probs { color: #555; }
.gate { margin: 0.4em 0 1em 0; line-height: 2.1em; }
.gate span { padding: 0.15em 0.1em; border-radius: 3px; }
.name { font-weight: 600; font-size: 0.9em; }
.legend span { display: inline-block; width: 1.2em; height: 1em; }
.note { color: #555; font-size: 0.9em; }
"""


def _span(text: str, value: float, title: str) -> str:
    r, g, b = rgb(value)
    return (
        f'<span style="background:rgb({r},{g},{b});color:{text_colour(value)}" '
        f'title="{escape(title, quote=True)}">{escape(text)}</span>'
    )


def _legend() -> str:
    cells = "".join(f'<span style="background:rgb{rgb(i / 20)}"></span>' for i in range(21))
    return f'<div class="legend">0 {cells} 1</div>'


def _gate_block(text: str, text_gates, trace, name: str) -> str:
    values = getattr(trace.values, name).mean(-1).tolist()
    other = "reset" if name == "update" else "update"
    other_values = getattr(trace.values, other).mean(-1).tolist()
    pieces, previous_end = [], None
    for i, (token, (start, end)) in enumerate(zip(text_gates.tokens, text_gates.offsets)):
        if previous_end is not None and start > previous_end:
            pieces.append(" ")
        shown = text[start:end] if end > start else token
        title = f"{token} [{start}:{end}] {name} {values[i]:.4f}, {other} {other_values[i]:.4f}"
        pieces.append(_span(shown, values[i], title))
        previous_end = end
    label = f"layer {trace.layer} {trace.direction} · {name} (mean over units)"
    return f'<div class="name">{escape(label)}</div><div class="gate">{"".join(pieces)}</div>'


def page(predictions, title: str = "gru-sentiment gates") -> str:
    """The whole HTML document for predictions that carry gates."""
    body = [f"<h1>{escape(title)}</h1>", _legend()]
    body += [
        f'<p class="note">{escape(MEANING[name])}. Hover a token for its exact values.</p>'
        for name in ("update", "reset")
    ]
    for index, pred in enumerate(predictions, start=1):
        probs = ", ".join(f"{escape(k)} {v:.4f}" for k, v in pred.probabilities.items())
        body.append(f'<h2>text {index}: {escape(pred.label)}</h2><p class="probs">{probs}</p>')
        for trace in pred.gates.layers:
            for name in ("update", "reset"):
                body.append(_gate_block(pred.text, pred.gates, trace, name))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
