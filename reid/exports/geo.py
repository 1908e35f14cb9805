"""Coordinates for exports: UTM projection (secr, camtrapR want metres), great-circle distance,
and the coordinate policy (exact, rounded, withheld) that protects where leopards live.

UTM is written out here (Snyder's series for the transverse Mercator on WGS84, "Map
Projections: A Working Manual", USGS 1987, pp. 61-64): millimetre-accurate within a zone, and
one dependency less than pyproj for one formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reid.errors import ReidError

_A = 6378137.0  # WGS84 semi-major axis, metres
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
_EP2 = _E2 / (1 - _E2)
_K0 = 0.9996
EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)


@dataclass(frozen=True)
class UtmZone:
    number: int
    north: bool

    @property
    def label(self) -> str:
        return f"{self.number}{'N' if self.north else 'S'}"

    @property
    def epsg(self) -> int:
        return (32600 if self.north else 32700) + self.number


def utm_zone_for(lat: float, lon: float) -> UtmZone:
    """The standard 6-degree zone (the Norway/Svalbard exceptions are not applied)."""
    number = min(60, int((lon + 180) // 6) + 1)
    return UtmZone(number, lat >= 0)


def to_utm(lat: float, lon: float, zone: UtmZone) -> tuple[float, float]:
    """(easting, northing) in metres of a WGS84 point in `zone` (also outside it, less exactly)."""
    phi = math.radians(lat)
    lam = math.radians(lon)
    lam0 = math.radians((zone.number - 1) * 6 - 180 + 3)
    sin_phi, cos_phi, tan_phi = math.sin(phi), math.cos(phi), math.tan(phi)
    n = _A / math.sqrt(1 - _E2 * sin_phi**2)
    t = tan_phi**2
    c = _EP2 * cos_phi**2
    a = cos_phi * (lam - lam0)
    e4, e6 = _E2**2, _E2**3
    m = _A * ((1 - _E2 / 4 - 3 * e4 / 64 - 5 * e6 / 256) * phi
              - (3 * _E2 / 8 + 3 * e4 / 32 + 45 * e6 / 1024) * math.sin(2 * phi)
              + (15 * e4 / 256 + 45 * e6 / 1024) * math.sin(4 * phi)
              - (35 * e6 / 3072) * math.sin(6 * phi))
    x = _K0 * n * (a + (1 - t + c) * a**3 / 6 + (5 - 18 * t + t**2 + 72 * c - 58 * _EP2) * a**5 / 120) + 500000.0
    y = _K0 * (m + n * tan_phi * (a**2 / 2 + (5 - t + 9 * c + 4 * c**2) * a**4 / 24
                                  + (61 - 58 * t + t**2 + 600 * c - 330 * _EP2) * a**6 / 720))
    if not zone.north:
        y += 10_000_000.0
    return x, y


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


@dataclass(frozen=True)
class CoordinatePolicy:
    """`exact` (as stored), `round:N` (N decimals of a degree) or `withhold`."""

    mode: str = "exact"
    decimals: int = 0

    @classmethod
    def parse(cls, text: str) -> CoordinatePolicy:
        text = (text or "exact").strip().lower()
        if text in ("exact", "withhold"):
            return cls(text)
        if text.startswith("round:"):
            try:
                decimals = int(text.split(":", 1)[1])
            except ValueError:
                decimals = -1
            if 0 <= decimals <= 6:
                return cls("round", decimals)
        raise ReidError(f"--coordinates {text!r}: use exact, round:N (N = 0..6 decimals of a degree) or withhold")

    def __str__(self) -> str:
        return f"round:{self.decimals}" if self.mode == "round" else self.mode

    def apply(self, lat: float | None, lon: float | None) -> tuple[float | None, float | None]:
        if lat is None or lon is None or self.mode == "withhold":
            return None, None
        if self.mode == "round":
            return round(lat, self.decimals), round(lon, self.decimals)
        return lat, lon

    @property
    def uncertainty_m(self) -> int | None:
        """Half the diagonal of a rounding cell (north-south size; an upper bound elsewhere)."""
        if self.mode != "round":
            return None
        half_cell = 111_320 * 10 ** (-self.decimals) / 2
        return max(1, int(math.ceil(half_cell * math.sqrt(2))))
