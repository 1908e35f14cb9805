"""What every synthetic render shares: map sizes, flanks and views, the render config, identity names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAP_W, MAP_H = 1024, 512  # lateral body map (w, h)
FACE_W, FACE_H = 512, 640  # frontal head map (w, h): face in the top 512 rows, chest below
SIDES = ("left", "right")
VIEWS = ("left", "right", "front")
_LEVELS = 4  # mip levels of each cached map, so far-away renders do not alias
_TAG_TRAITS, _TAG_LEFT, _TAG_RIGHT, _TAG_FRONT = 11, 12, 13, 14

F32 = np.float32


@dataclass(frozen=True)
class RenderConfig:
    """How renders look. ``size`` is (width, height) of the output in pixels.

    ``hard=False`` gives mild conditions (whole animal, daylight-ish, little blur, no
    occluders, good JPEG) for easy tests; ``hard=True`` is the full training distribution.
    ``closeup=True`` frames every photo as a close-up of the flank (or the face).
    """

    size: tuple[int, int] = (256, 256)
    night_prob: float = 0.3
    hard: bool = True
    # Close-ups: every photo framed as a flank close-up (or, for a head view, the face), the coat
    # filling the frame: what people send after cropping by hand (docs/verdicts.md "2. Crops").
    closeup: bool = False


def identity_name(seed: int) -> str:
    """The identity label of an individual seed, e.g. ``synth-00042``."""
    return f"synth-{seed:05d}"


DEFAULT_RENDER = RenderConfig()  # the defaults (RenderConfig is frozen: one shared instance)
