"""Between stages 4 and 5: queries sharing a `sighting` id are one observation; pool their evidence.

Each image then gets the pooled strength of every individual it can show (its own shortlist:
a left-flank image never inherits a right-flank-only individual from its sighting), so one
sighting gets one ranking and one verdict.
"""

from __future__ import annotations

from collections.abc import Sequence

from reid.stages.decode import QueryImage
from reid.stages.shortlist import Evidence


def pool_sightings(queries: Sequence[QueryImage], evidence: Sequence[dict[int, Evidence]]) -> list[dict[int, Evidence]]:
    """Per query: its evidence, pooled over the other images of its sighting."""
    pooled = list(evidence)
    by_sighting: dict[str, list[int]] = {}
    for n, q in enumerate(queries):
        if q.sighting:
            by_sighting.setdefault(q.sighting, []).append(n)
    for members in by_sighting.values():
        if len(members) < 2:
            continue
        merged: dict[int, Evidence] = {}
        for n in members:
            for ind, ev in evidence[n].items():
                merged[ind] = ev.merge(merged[ind]) if ind in merged else ev
        for n in members:
            pooled[n] = {ind: merged[ind] for ind in evidence[n]}
    return pooled
