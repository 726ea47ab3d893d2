"""One self-contained HTML page of gate heatmaps, unit maps and attributions: no network (a content security
policy forbids it), every piece of user text escaped.

Token heatmaps (mean over units) and the attribution row are plain HTML with a hover title per token. Unit maps
(units x tokens for each layer and direction) are drawn on canvases by one inline script from values packed as
16-bit integers in base64, so that a 1,000-token review stays near 1 MB: an HTML cell per unit and token would
take tens of megabytes. The script shows unit, token and value under the pointer.
"""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape

import torch

from gru_sentiment import explain
from gru_sentiment.render_gates import (
    MEANING,
    attribution_ink,
    attribution_rgb,
    completeness_line,
    rgb,
    shown_tokens,
    text_colour,
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 80em; color: #222; }
h2 { font-size: 1.1em; margin-top: 2em; }
.probs, .note { color: #555; font-size: 0.9em; }
.gate { margin: 0.4em 0 1em 0; line-height: 2.1em; }
.gate span { padding: 0.15em 0.1em; border-radius: 3px; }
.name { font-weight: 600; font-size: 0.9em; }
.legend span { display: inline-block; width: 1.2em; height: 1em; }
.map { overflow-x: auto; margin: 0.3em 0 1em 0; }
.map canvas { image-rendering: pixelated; border: 1px solid #ccc; }
#tip { position: fixed; pointer-events: none; background: #222; color: #fff; padding: 0.2em 0.5em;
       border-radius: 3px; font-size: 0.85em; display: none; white-space: pre; }
"""
# draws every canvas from its data-* attributes; the palettes match render_gates (viridis ends and middle for
# gates, red-white-blue for the state h)
SCRIPT = """
const VIR = [[68,1,84],[33,145,140],[253,231,37]], DIV = [[178,24,43],[247,247,247],[33,102,172]];
function colour(p, v) { const x = Math.min(1, Math.max(0, v)) * 2, i = Math.min(1, Math.floor(x)), f = x - i;
  return p[i].map((a, k) => Math.round(a + (p[i + 1][k] - a) * f)); }
const tip = document.getElementById('tip');
let drawn = 0;
for (const c of document.querySelectorAll('canvas[data-values]')) {
  const m = JSON.parse(c.dataset.meta), raw = atob(c.dataset.values), T = m.tokens.length, H = m.units.length;
  const vals = new Float32Array(T * H);
  for (let i = 0; i < T * H; i++)
    vals[i] = (raw.charCodeAt(2 * i) | raw.charCodeAt(2 * i + 1) << 8) / 65535 * (m.hi - m.lo) + m.lo;
  const ctx = c.getContext('2d'), img = ctx.createImageData(T, H);
  for (let u = 0; u < H; u++) for (let t = 0; t < T; t++) {
    const v = vals[u * T + t], rgb = m.lo < 0 ? colour(DIV, (v + 1) / 2) : colour(VIR, v), o = 4 * (u * T + t);
    img.data[o] = rgb[0]; img.data[o + 1] = rgb[1]; img.data[o + 2] = rgb[2]; img.data[o + 3] = 255; }
  ctx.putImageData(img, 0, 0);
  c.addEventListener('mousemove', e => { const r = c.getBoundingClientRect();
    const t = Math.floor((e.clientX - r.left) / r.width * T), u = Math.floor((e.clientY - r.top) / r.height * H);
    if (t < 0 || t >= T || u < 0 || u >= H) return;
    const where = `unit ${m.units[u]} · token ${t} ${JSON.stringify(m.tokens[t])}`;
    tip.textContent = `${where}\\n${m.gate} ${vals[u * T + t].toFixed(4)}`;
    tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px';
    tip.style.display = 'block'; });
  c.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
  document.body.dataset.drawn = ++drawn;  // for checks in a headless browser
}
"""
SYMBOL = {"update": "z", "reset": "r", "hidden": "h"}
# no network, and no script but the page's own one (by its hash): an escaping mistake could not run code
POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()}'"
)


def _span(text: str, colour: tuple[int, int, int], ink: str, title: str) -> str:
    r, g, b = colour
    return (
        f'<span style="background:rgb({r},{g},{b});color:{ink}" '
        f'title="{escape(title, quote=True)}">{escape(text)}</span>'
    )


def _legend() -> str:
    cells = "".join(f'<span style="background:rgb{rgb(i / 20)}"></span>' for i in range(21))
    return f'<div class="legend">0 {cells} 1</div>'


def _row(text: str, text_gates, values: list[float], colours, describe) -> str:
    pieces = []
    shown = shown_tokens(text, text_gates.tokens, text_gates.offsets)
    for i, ((before, word), token, (start, end)) in enumerate(zip(shown, text_gates.tokens, text_gates.offsets)):
        colour, ink = colours(values[i])
        pieces += [before, _span(word, colour, ink, f"{token} [{start}:{end}] {describe(i)}")]
    return f'<div class="gate">{"".join(pieces)}</div>'


def _gate_block(text: str, text_gates, trace, name: str) -> str:
    values = getattr(trace.values, name).mean(-1).tolist()
    other = "reset" if name == "update" else "update"
    other_values = getattr(trace.values, other).mean(-1).tolist()
    label = f"layer {trace.layer} {trace.direction} · {name} (mean over units)"
    row = _row(
        text,
        text_gates,
        values,
        lambda v: (rgb(v), text_colour(v)),
        lambda i: f"{name} {values[i]:.4f}, {other} {other_values[i]:.4f}",
    )
    return f'<div class="name">{escape(label)}</div>{row}'


def _attribution_block(text: str, text_gates, label: str) -> str:
    found = text_gates.attribution
    scores = found.scores
    scale = max((abs(s) for s in scores), default=0.0) or 1.0
    heading = (
        f"attribution to {label} (integrated gradients): blue for {label}, red against; {completeness_line(found)}"
    )
    row = _row(
        text,
        text_gates,
        scores,
        lambda v: (attribution_rgb(v / scale), attribution_ink(v / scale)),
        lambda i: f"attribution {scores[i]:+.4f}",
    )
    return f'<div class="name">{escape(heading)}</div>{row}'


def _unit_map(text: str, text_gates, trace, name: str, order: list[int]) -> str:
    values = getattr(trace.values, name)[:, order].t().double()  # (units, tokens) in the shown order
    lo, hi = (-1.0, 1.0) if name == "hidden" else (0.0, 1.0)
    packed = torch.round((values.clamp(lo, hi) - lo) / (hi - lo) * 65535).to(torch.int32).numpy().astype("<u2")
    shown = [text[a:b] if b > a else tok for tok, (a, b) in zip(text_gates.tokens, text_gates.offsets)]
    meta = {"tokens": shown, "units": order, "gate": f"{name} {SYMBOL[name]}", "lo": lo, "hi": hi}
    steps, units = values.shape[1], values.shape[0]
    width = max(2, min(40, 1400 // max(1, steps)))
    label = (
        f"layer {trace.layer} {trace.direction} · {name} {SYMBOL[name]}: {units} units (rows; alike units together: "
        f"spectral seriation of their z and r over this text) x {steps} tokens (columns)"
    )
    return (
        f'<div class="name">{escape(label)}</div><div class="map"><canvas width="{steps}" height="{units}" '
        f'style="width:{steps * width}px;height:{units * 3}px" '
        f'data-meta="{escape(json.dumps(meta, ensure_ascii=False), quote=True)}" '
        f'data-values="{base64.b64encode(packed.tobytes()).decode()}"></canvas></div>'
    )


def page(predictions, title: str = "gru-sentiment gates", labels: list[str] | None = None, full: bool = False) -> str:
    """The whole HTML document for predictions that carry gates and/or attributions."""
    body = [f"<h1>{escape(title)}</h1>", _legend()]
    body += [
        f'<p class="note">{escape(MEANING[name])}. Hover a token or a unit map for the exact values.</p>'
        for name in ("update", "reset")
    ]
    names = ("update", "reset", "hidden") if full else ("update", "reset")
    for index, pred in enumerate(predictions, start=1):
        probs = ", ".join(f"{escape(k)} {v:.4f}" for k, v in pred.probabilities.items())
        body.append(f'<h2>text {index}: {escape(pred.label)}</h2><p class="probs">{probs}</p>')
        if pred.gates.attribution is not None:
            found = pred.gates.attribution
            body.append(_attribution_block(pred.text, pred.gates, labels[found.label] if labels else pred.label))
        for trace in pred.gates.layers:
            for name in ("update", "reset"):
                body.append(_gate_block(pred.text, pred.gates, trace, name))
        for trace in pred.gates.layers:
            order = explain.unit_order(trace.values)
            body += [_unit_map(pred.text, pred.gates, trace, name, order) for name in names]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + f'\n<div id="tip"></div>\n<script>{SCRIPT}</script>\n</body></html>\n'
    )
