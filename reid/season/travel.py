"""Travel plausibility: could one leopard have been at both places in the time between?

For each candidate match the individual's previous sighting (catalogue or earlier in the
season) gives a distance (haversine between station coordinates), the days between and the
implied km/day. The flag is raised when the distance is more than `max_km_per_day` times the
days between, counting at least one day (so moving 20 km within the same night is fine, 60 km
within an hour is not).

Default 30 km/day, just above the longest daily travel measured on collared leopards:
GPS/IMU collars on four male leopards in the Okavango Delta gave an average daily travel
distance of 11 km and a maximum of 29 km (Hubel et al. 2018, "Movement patterns and athletic
performance of leopards in the Okavango Delta", Proc. R. Soc. B 285: 20172622); tracking in
sand in the Kalahari gave males 14.4 km per 24 h on average (Bothma & le Riche, "Prey preference and hunting
efficiency of the Kalahari desert leopard", Cats of the World symposium, 1982). Young males
dispersing can go much further over weeks, so the flag informs a person ("the same leopard or
two?"); it never changes a verdict. Set --max-km-per-day from your own telemetry if you have it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

DEFAULT_MAX_KM_PER_DAY = 30.0
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two WGS84 points (spherical Earth: < 0.5% error)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Place:
    """Where and when an individual was seen."""

    station: str
    lat: float | None
    lon: float | None
    when: datetime | None
    source: str = "season"  # "season" or "catalogue"


@dataclass(frozen=True)
class TravelCheck:
    previous: Place
    km: float
    days: float
    km_per_day: float
    flagged: bool

    def note(self, identity: str) -> str:
        base = (f"{identity} last seen at {self.previous.station or '?'} "
                f"({self.previous.when.isoformat(timespec='seconds') if self.previous.when else '?'}, "
                f"{self.previous.source}): {self.km:.1f} km, {self.days:.2f} days earlier, {self.km_per_day:.1f} km/day")
        if self.flagged:
            return f"same leopard or two? {base}, above the plausible maximum"
        return base


def check_travel(previous: Place, current: Place, *, max_km_per_day: float = DEFAULT_MAX_KM_PER_DAY) -> TravelCheck | None:
    """None when either place lacks coordinates or a time."""
    if None in (previous.lat, previous.lon, current.lat, current.lon) or previous.when is None or current.when is None:
        return None
    km = haversine_km(previous.lat, previous.lon, current.lat, current.lon)  # type: ignore[arg-type]
    days = abs((current.when - previous.when).total_seconds()) / 86400.0
    rate = km / days if days > 0 else (math.inf if km > 0 else 0.0)
    return TravelCheck(previous, round(km, 3), round(days, 4), round(rate, 3) if math.isfinite(rate) else rate,
                       flagged=km > max_km_per_day * max(days, 1.0))


def last_seen(places: list[Place], before: datetime) -> Place | None:
    """The latest place strictly before `before` that has a time and coordinates."""
    usable = [p for p in places if p.when is not None and p.when < before and p.lat is not None and p.lon is not None]
    return max(usable, key=lambda p: (p.when, p.station)) if usable else None


__all__ = ["DEFAULT_MAX_KM_PER_DAY", "Place", "TravelCheck", "check_travel", "haversine_km", "last_seen"]
