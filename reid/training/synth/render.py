"""Render an individual: one photo or a burst of frames (the renderer's entry points)."""

from __future__ import annotations

import numpy as np

from reid.training.synth.camera import _draw
from reid.training.synth.coat import _body
from reid.training.synth.config import DEFAULT_RENDER, VIEWS, RenderConfig
from reid.training.synth.paint import _rng
from reid.training.synth.pose import _sample_scene


def _check(seed: int, side: str, config: RenderConfig) -> None:
    if side not in VIEWS:
        raise ValueError(f"side must be one of {VIEWS}, not {side!r}")
    w, h = config.size
    if not (16 <= int(w) <= 4096 and 16 <= int(h) <= 4096):
        raise ValueError(f"size must be (w, h) between 16 and 4096 pixels, not {config.size}")
    if not 0.0 <= config.night_prob <= 1.0:
        raise ValueError(f"night_prob must be in [0, 1], not {config.night_prob}")


def _frames(seed: int, side: str, rng: np.random.Generator, n: int, config: RenderConfig,
            night: bool | None, bg_seed: int | None = None, trail_seed: int | None = None) -> list[np.ndarray]:
    _check(seed, side, config)
    body = _body(int(seed), side)
    is_night = bool(rng.random() < config.night_prob) if night is None else bool(night)
    sc = _sample_scene(rng, body, config, is_night)
    if bg_seed is not None:  # a fixed camera: its place, whoever walks past
        sc.bg_seed = int(bg_seed)
    if trail_seed is not None:
        # ... and its trail: animals pass the camera where they passed before, framed alike
        # (position and scale within a few percent); pose, light and blur are this sighting's.
        trail = _sample_scene(_rng(trail_seed), body, config, is_night)
        w = config.size[0]
        sc.anchor, sc.roll, sc.yaw, sc.pitch, sc.focal = trail.anchor, trail.roll, trail.yaw, trail.pitch, trail.focal
        sc.out = (trail.out[0] + rng.normal(0, 0.01) * w, trail.out[1] + rng.normal(0, 0.01) * w)
        sc.scale = trail.scale * float(np.exp(rng.normal(0, 0.02)))
    frame_seed = int(rng.integers(1 << 62))
    return [_draw(body, sc, i, _rng(frame_seed, i)) for i in range(n)]


def render(seed: int, side: str, rng: np.random.Generator, config: RenderConfig = DEFAULT_RENDER, *,
           night: bool | None = None) -> np.ndarray:
    """One camera-trap photo of individual ``seed``: uint8 RGB (h, w, 3) with (w, h) = config.size.

    ``side`` is ``"left"`` or ``"right"`` (flanks) or ``"front"`` (head). ``night`` forces
    infrared (True) or daylight (False); None draws it with ``config.night_prob``.
    """
    return _frames(seed, side, rng, 1, config, night)[0]


def render_burst(seed: int, side: str, rng: np.random.Generator, n: int,
                 config: RenderConfig = DEFAULT_RENDER, *, night: bool | None = None,
                 bg_seed: int | None = None, trail_seed: int | None = None) -> list[np.ndarray]:
    """One sighting: ``n`` near-identical frames (same camera, light and background; the animal
    walks a little and its legs move; sensor noise differs). ``bg_seed`` fixes the background
    (a camera site's); None draws one for this sighting. ``trail_seed`` fixes where the animal
    passes in the frame (a camera on a trail), up to a few percent."""
    if n < 1:
        raise ValueError(f"a burst needs n >= 1 frames, not {n}")
    return _frames(seed, side, rng, n, config, night, bg_seed, trail_seed)
