"""Pictures for the season report, as inline SVG: the station map (drawn from coordinates, no
tiles) and matplotlib charts (detections per station over time, sightings per individual)."""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from datetime import date, datetime, timedelta
from html import escape

import numpy as np

#: Colour-blind-safe palette (Okabe-Ito), one colour per station.
#: Above this many marks a chart's data layer is embedded as an image inside the SVG (axes and
#: text stay vectors): thousands of SVG elements make a slow, heavy page.
RASTER_ABOVE = 1500
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def station_colours(stations: list[str]) -> dict[str, str]:
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sorted(stations))}


def station_map(stations: dict[str, tuple[float, float]], counts: Counter, colours: dict[str, str],
                links: list[tuple[str, str]], width: int = 560, height: int = 380) -> str:
    """Stations placed by longitude/latitude (equirectangular, scaled by cos(latitude)), circles
    sized by detections, flagged long moves as dashed lines, and a km scale bar."""
    if not stations:
        return '<p class="muted">No station has coordinates.</p>'
    lat0 = sum(p[0] for p in stations.values()) / len(stations)
    kx = 111.32 * math.cos(math.radians(lat0))  # km per degree of longitude here
    xs = {s: lon * kx for s, (lat, lon) in stations.items()}
    ys = {s: lat * 110.57 for s, (lat, lon) in stations.items()}
    span = max(max(xs.values()) - min(xs.values()), max(ys.values()) - min(ys.values()), 1.0)
    pad = 50
    scale = min(width - 2 * pad, height - 2 * pad) / span  # pixels per km

    def pos(s: str) -> tuple[float, float]:
        return pad + (xs[s] - min(xs.values())) * scale, height - pad - (ys[s] - min(ys.values())) * scale

    parts = [f'<svg class="map" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="map of camera stations"><rect width="{width}" height="{height}" fill="#f6f1e7"/>']
    for a, b in links:
        (x1, y1), (x2, y2) = pos(a), pos(b)
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#b00020" '
                     'stroke-width="2" stroke-dasharray="6 4"/>')
    for s in sorted(stations):
        x, y = pos(s)
        r = 5 + 3 * math.sqrt(counts.get(s, 0))
        parts.append(f'<g class="station" data-station="{escape(s)}"><circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" '
                     f'fill="{colours.get(s, "#555")}" fill-opacity="0.8" stroke="#222"/>'
                     f'<text x="{x + r + 3:.1f}" y="{y + 4:.1f}" font-size="12">{escape(s)} ({counts.get(s, 0)})</text></g>')
    bar_km = _nice(span / 4)
    parts.append(f'<line x1="{pad}" y1="{height - 15}" x2="{pad + bar_km * scale:.1f}" y2="{height - 15}" '
                 f'stroke="#222" stroke-width="3"/><text x="{pad}" y="{height - 20}" font-size="11">{bar_km:g} km</text>')
    parts.append('<text x="10" y="18" font-size="11">N &#8593;</text></svg>')
    return "".join(parts)


def _nice(x: float) -> float:
    """1, 2 or 5 times a power of ten, at most x."""
    p = 10 ** math.floor(math.log10(max(x, 1e-9)))
    return max(m * p for m in (1, 2, 5) if m * p <= x)


def timeline_svg(points: list[tuple[datetime, str]], start: datetime, end: datetime, colours: dict[str, str],
                 width: int = 300, height: int = 26) -> str:
    """One individual's sightings along the season: a dot per detection, coloured by station."""
    total = max((end - start).total_seconds(), 1.0)
    dots = "".join(
        f'<circle cx="{6 + min(max((t - start).total_seconds() / total, 0.0), 1.0) * (width - 12):.1f}" '
        f'cy="{height / 2}" r="4" '
        f'fill="{colours.get(s, "#555")}"><title>{t:%Y-%m-%d %H:%M} {escape(s)}</title></circle>'
        for t, s in points)
    return (f'<svg class="timeline" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
            f'<line x1="6" y1="{height / 2}" x2="{width - 6}" y2="{height / 2}" stroke="#bbb"/>{dots}</svg>')


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", dpi=110)
    text = buf.getvalue()
    return re.sub(r"^.*?(<svg)", r"\1", text, count=1, flags=re.S)  # drop the XML prolog and doctype


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    return Figure(figsize=(width, height), dpi=100)


def detections_per_station(per_day: dict[str, Counter], first: date, last: date, colours: dict[str, str]) -> str:
    """Stacked steps: animal detections per day (or week, for long seasons), one colour per station."""
    days = (last - first).days + 1
    step = 1 if days <= 62 else 7
    bins = [first + timedelta(days=k) for k in range(0, days, step)]
    fig = _figure(8, 2.8)
    ax = fig.add_subplot()
    from matplotlib.dates import date2num

    # One filled step outline per station, stacked: 20 stations over a year are 20 shapes, not
    # 7,000 bars, so the page stays light however long the season.
    edges = date2num([*bins, bins[-1] + timedelta(days=step)])
    bottom = np.zeros(len(bins))
    for station in sorted(per_day):
        heights = np.array([sum(per_day[station].get(b + timedelta(days=k), 0) for k in range(step)) for b in bins],
                           float)
        ax.stairs(bottom + heights, edges, baseline=bottom.copy(), fill=True, color=colours.get(station),
                  label=station)
        bottom = bottom + heights
    ax.xaxis_date()
    ax.set_ylabel("detections per day" if step == 1 else "detections per week")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, ncols=min(6, max(1, len(per_day))),
              frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.autofmt_xdate()
    return _svg(fig)


def sightings_chart(rows: list[tuple[str, datetime, str]], colours: dict[str, str]) -> str:
    """Each individual's detections over time (y: individual, x: date, colour: station)."""
    names = sorted({r[0] for r in rows})
    fig = _figure(8, 0.5 + 0.35 * max(1, len(names)))
    ax = fig.add_subplot()
    for station in sorted({r[2] for r in rows}):
        pts = [(t, names.index(n)) for n, t, s in rows if s == station]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=colours.get(station), label=station, s=28,
                   rasterized=len(rows) > RASTER_ABOVE)
    ax.set_yticks(range(len(names)), names)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", alpha=0.3)
    fig.autofmt_xdate()
    return _svg(fig)
