"""Sentences that explain a verdict to the person reading it.

A left flank and a right flank carry different rosettes, so a photo is only compared with
enrolled photos of its own flank (reid.stages.shortlist.flank_compatible). An animal enrolled from
one side only is therefore invisible to a photo of its other side: the answer is `new` or a
weak `review` with no hint why. `flank_note` says so, in the words shown over HTTP, in the
CLI, in the results files and on the evidence picture.
"""

from __future__ import annotations

from reid.catalog import Catalog
from reid.identify import FLANKS, Identification

#: Names spelled out in a note; more are counted.
NAMED = 3


def flank_note(result: Identification, catalog: Catalog, cache: dict[str, list[str]] | None = None) -> str | None:
    """Why this photo cannot confirm some known animals, or None when nothing is missing.

    Given when the photo's flank is known, the verdict is not `match`, and some enrolled
    individuals have no photo of that flank, e.g. "no right-flank photo of Tau Sheri enrolled:
    cannot confirm". A `match` needs no note: the animal was found on this flank. `cache`: a
    dict shared by the results of one batch, so the catalogue is asked once per flank.
    """
    if result.viewpoint not in FLANKS or result.decision in ("match", "error"):
        return None
    cache = {} if cache is None else cache
    if result.viewpoint not in cache:
        cache[result.viewpoint] = catalog.individuals_missing_flank(result.viewpoint)
    missing = cache[result.viewpoint]
    if not missing:
        return None
    side = result.viewpoint
    if len(missing) == 1:
        return f"no {side}-flank photo of {missing[0]} enrolled: cannot confirm"
    if len(missing) <= NAMED:
        names = ", ".join(missing[:-1]) + f" or {missing[-1]}"
        return f"no {side}-flank photo of {names} enrolled: cannot confirm any of them"
    shown = ", ".join(missing[:NAMED])
    return (f"no {side}-flank photo of {len(missing)} individuals enrolled ({shown}, ...): "
            f"cannot confirm any of them")
