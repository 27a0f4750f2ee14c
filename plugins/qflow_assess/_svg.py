"""Small inline SVG charts for the HTML report: crisp at any zoom, printable, and
self-contained (no script, no external file). Drawn by hand because the report needs
four plain charts, not a plotting library's 40 MB."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bars", "hbars", "lines", "pareto"]

INK, GRID, MUTED = "#1f2933", "#e4e7eb", "#7b8794"
PALETTE = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed")


def _empty(width: int, height: int, title: str, text: str) -> str:
    return _frame(width, height, f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" '
                                 f'fill="{MUTED}">{escape(text)}</text>', title)


def _frame(width: int, height: int, body: str, title: str) -> str:
    return (f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(title)}" '
            f'xmlns="http://www.w3.org/2000/svg" font-family="inherit" font-size="12">{body}</svg>')


def bars(items: Sequence[tuple[str, float]], *, title: str, width: int = 520, height: int = 240,
         color: str = PALETTE[0], empty: str = "no data") -> str:
    """Vertical bars with their values on top."""
    if not any(v for _, v in items):
        return _empty(width, height, title, empty)
    left, bottom, top = 36, 36, 16
    plot_h = height - bottom - top
    top_value = max((v for _, v in items), default=0) or 1
    step = (width - left - 8) / max(len(items), 1)
    out = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - 4}" y2="{height - bottom}" stroke="{GRID}"/>']
    for i, (name, value) in enumerate(items):
        h = plot_h * value / top_value
        x = left + i * step + step * 0.15
        y = height - bottom - h
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" rx="2" fill="{color}"/>')
        out.append(f'<text x="{x + step * 0.35:.1f}" y="{y - 4:.1f}" text-anchor="middle" fill="{INK}">{value:g}</text>')
        out.append(f'<text x="{x + step * 0.35:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                   f'fill="{MUTED}">{escape(name)}</text>')
    return _frame(width, height, "".join(out), title)


def lines(categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, title: str,
          width: int = 520, height: int = 240, percent: bool = True, empty: str = "no data") -> str:
    """One line per series over *categories*; gaps where a value is missing."""
    if not any(v is not None for _, vs in series for v in vs):
        return _empty(width, height, title, empty)
    left, bottom, top, right = 44, 44, 16, 34  # the last month's label is centred on the right edge
    plot_w, plot_h = width - left - right, height - bottom - top
    top_value = 1.0 if percent else max((v for _, vs in series for v in vs if v is not None), default=1) or 1
    n = max(len(categories) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + plot_w * i / n, top + plot_h * (1 - v / top_value)

    out = []
    for frac in (0, 0.25, 0.5, 0.75, 1):
        y = top + plot_h * (1 - frac)
        tick = f"{frac * 100:.0f}%" if percent else f"{frac * top_value:g}"
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">{tick}</text>')
    for i, c in enumerate(categories):
        x, _ = xy(i, 0)
        out.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="{MUTED}">{escape(c)}</text>')
    for k, (name, values) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        path, pen = [], "M"
        for i, v in enumerate(values):
            if v is None:
                pen = "M"
                continue
            x, y = xy(i, v)
            path.append(f"{pen}{x:.1f},{y:.1f}")
            pen = "L"
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        if path:
            out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2"/>')
        lx = left + sum(_text_width(n) + 34 for n, _ in series[:k])
        out.append(f'<rect x="{lx}" y="{height - 16}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{lx + 14}" y="{height - 7}" fill="{INK}">{escape(name)}</text>')
    return _frame(width, height, "".join(out), title)


def pareto(items: Sequence[tuple[str, int]], *, title: str, cumulative: str, width: int = 520,
           height: int = 240, empty: str = "no data") -> str:
    """Bars, most first, with their counts; the cumulative share as a line against
    the percent axis on the right (the 80% line dashed)."""
    if not any(v for _, v in items):
        return _empty(width, height, title, empty)
    left, bottom, top, right = 36, 36, 30, 44
    plot_w, plot_h = width - left - right, height - bottom - top
    total = sum(v for _, v in items) or 1
    top_value = max((v for _, v in items), default=0) or 1
    step = plot_w / max(len(items), 1)
    out = [f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="{GRID}"/>']
    for frac in (0, 0.5, 0.8, 1):
        y = top + plot_h * (1 - frac)
        dash = ' stroke-dasharray="4 3"' if frac == 0.8 else ""
        if frac == 0.8:
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{MUTED}"{dash}/>')
        out.append(f'<text x="{width - right + 6}" y="{y + 4:.1f}" fill="{MUTED}">{frac * 100:.0f}%</text>')
    running, points = 0, []
    for i, (name, value) in enumerate(items):
        h = plot_h * value / top_value
        x = left + i * step + step * 0.15
        out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
                   f'rx="2" fill="{PALETTE[1]}"/>')
        out.append(f'<text x="{x + step * 0.35:.1f}" y="{top + plot_h - h + 14:.1f}" text-anchor="middle" '
                   f'fill="#fff" font-weight="600">{value:g}</text>' if h >= 18 else
                   f'<text x="{x + step * 0.35:.1f}" y="{top + plot_h - h - 4:.1f}" text-anchor="middle" '
                   f'fill="{INK}">{value:g}</text>')
        out.append(f'<text x="{x + step * 0.35:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                   f'fill="{INK}">{escape(name)}</text>')
        running += value
        points.append((left + i * step + step * 0.5, top + plot_h * (1 - running / total)))
    out.append('<path d="' + " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))
               + f'" fill="none" stroke="{INK}" stroke-width="1.5"/>')
    out.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{INK}"/>' for x, y in points)
    out.append(f'<line x1="{left}" y1="12" x2="{left + 18}" y2="12" stroke="{INK}" stroke-width="1.5"/>'
               f'<text x="{left + 24}" y="16" fill="{INK}">{escape(cumulative)}</text>')
    return _frame(width, height, "".join(out), title)


def hbars(items: Sequence[tuple[str, float, str]], *, title: str, width: int = 520, color: str = PALETTE[0],
          empty: str = "no data") -> str:
    """Horizontal bars, one row per item: its name on the left (long place names fit),
    the bar, and a note (e.g. "2 of 5") after it."""
    if not any(v for _, v, _ in items):
        return _empty(width, 240, title, empty)
    row, top = 26, 8
    height = max(240, top * 2 + row * len(items))
    label_w = min(max(_text_width(n) for n, _, _ in items) + 12, width * 0.4)
    note_w = max(_text_width(note) for _, _, note in items) + 12
    plot_w = width - label_w - note_w - 8
    top_value = max(v for _, v, _ in items) or 1
    out = []
    for i, (name, value, note) in enumerate(items):
        y = top + i * row
        w = plot_w * value / top_value
        out.append(f'<text x="{label_w - 8:.0f}" y="{y + 17}" text-anchor="end" fill="{INK}">{escape(name)}</text>'
                   f'<rect x="{label_w:.0f}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" rx="2" fill="{color}"/>'
                   f'<text x="{label_w + w + 6:.1f}" y="{y + 17}" fill="{MUTED}">{escape(note)}</text>')
    return _frame(width, height, "".join(out), title)


def _text_width(text: str, size: float = 12) -> float:
    """Roughly how wide *text* is drawn: CJK characters are about twice a Latin one."""
    return sum(size if ord(ch) > 0x2E80 else size * 0.58 for ch in text)
