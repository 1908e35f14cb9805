"""The scene check's geometry: do a match's spots move with the place rather than the animal?

Two photos taken at one place line up their surroundings by one homography
(`scene_homography`); verified pairs that homography explains too are the place
(`moves_with_scene`), unless the animal did not move either (`changed_share`, `changed_at`).
`SceneCheck` is the pipeline's step that applies them to a query's strongest candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from reid.keypoints.extract import Features, to_grey
from reid.keypoints.saliency import pairs_on_animal
from reid.keypoints.verify import LocalMatch, f32, without_pairs
from reid.settings import Settings

if TYPE_CHECKING:
    from reid.keypoints.store import KeypointStore
    from reid.stages.decode import QueryImage

SCENE_THRESH_FRAC = 0.03  # scene check: pixel tolerance, as a share of the photo's long side
# Scene check: below this changed share the two photos show the same thing (changed_share).
# benchmarks/scene_changed_share.py on synthetic fixed-camera leopards (reid synth
# --same-place, 1,500 pairs at one station each): different animals 0.31-0.96 (mild
# renders) and 0.21-1.00 (all render conditions), never below 0.15; re-crops of one photo
# below it in 93-96% (a few dark, noisy frames reach 0.29-0.36).
SCENE_UNCHANGED_SHARE = 0.15


def scene_homography(query_scene: Features, gallery_scene: Features, *, ratio: float = 0.8,
                     min_scene_inliers: int = 8, thresh_frac: float = SCENE_THRESH_FRAC) -> np.ndarray | None:
    """Homography (query -> gallery pixels) that lines up two photos' surroundings, or None.

    Two photos taken at one place line up their backgrounds (rocks, trunks, the ground) by
    one homography, while the animal has moved between visits. It is fitted on the
    keypoints outside the animal's ellipse (extract(..., outside=True)); None when the two
    surroundings do not agree (different places, or too few points).
    """
    if len(query_scene) < min_scene_inliers or len(gallery_scene) < min_scene_inliers:
        return None
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(f32(query_scene.descriptors), f32(gallery_scene.descriptors), k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if len(good) < min_scene_inliers:
        return None
    src = query_scene.keypoints[[g.queryIdx for g in good]]
    dst = gallery_scene.keypoints[[g.trainIdx for g in good]]
    side = float(max(gallery_scene.image_size))
    homography, inliers = cv2.findHomography(src, dst, cv2.RANSAC, thresh_frac * side)
    if homography is None or int(inliers.sum()) < min_scene_inliers:
        return None
    return homography


def moves_with_scene(match: LocalMatch, homography: np.ndarray, gallery_size: tuple[int, int], *,
                     thresh_frac: float = SCENE_THRESH_FRAC) -> np.ndarray:
    """Which of a match's verified pairs the scene homography explains too (bool per pair).

    Such a "spot" is really the place: on nyala-dev (whole frames) dropping those pairs
    raised keypoint-only top-1 from 0.247 to 0.282 (README "Accuracy"). It assumes the
    surroundings are NOT the animal, and that the animal moved: see `changed_share`.
    """
    if len(match.pairs) == 0:
        return np.zeros(0, bool)
    moved = cv2.perspectiveTransform(match.pairs[:, :2].reshape(-1, 1, 2).astype(np.float64), homography)
    side = float(max(gallery_size))
    return np.linalg.norm(moved.reshape(-1, 2) - match.pairs[:, 2:4], axis=1) < thresh_frac * side


def changed_share(query_rgb: np.ndarray, gallery_rgb: np.ndarray, homography: np.ndarray, *,
                  ellipse: float, side: int = 160, cell: int = 8, min_correlation: float = 0.5) -> float:
    """Share of the query's animal ellipse that differs from the gallery photo, once the
    scene homography lines the two up (0 = the same picture; 1 = all changed).

    Why: a spot that moves with the scene is the place only if the animal moved. When
    nothing inside the ellipse changed (a re-upload or re-crop of an enrolled photo, an
    animal resting in the same spot between two frames) the spots are the animal's and must
    be kept. Both photos go grey at `side` px; the ellipse is cut into `cell` px squares and
    a textured square has changed when the two photos correlate below `min_correlation`
    there (correlation, not difference: day/night exposure cancels; two coats in one spot
    are both tawny, so only their marks tell them apart). Flat squares (sky, bare ground,
    plain fur) say nothing and are not counted; squares the homography maps outside the
    gallery photo count as changed.
    """
    grid = _change_grid(query_rgb, gallery_rgb, homography, side=side, cell=cell, min_correlation=min_correlation)
    if grid is None:
        return 1.0
    changed, counted, _, (h, w) = grid
    ch, cw = changed.shape
    cy, cx = (np.mgrid[0:ch, 0:cw] + 0.5) * cell
    region = ((cx - w / 2) / (w / 2)) ** 2 + ((cy - h / 2) / (h / 2)) ** 2 <= (ellipse if ellipse > 0 else 1.0) ** 2
    if (counted & region).sum() < 8:
        return 1.0  # too little texture to tell: treat as changed (the check applies)
    return float((changed & region).sum() / (counted & region).sum())


def changed_at(query_rgb: np.ndarray, gallery_rgb: np.ndarray, homography: np.ndarray, points: np.ndarray, *,
               side: int = 160, cell: int = 8, min_correlation: float = 0.5) -> np.ndarray:
    """Whether the query differs from the lined-up gallery photo around each query point (bool
    per (x, y) point; the squares of `changed_share`; a flat square counts as unchanged).

    A spot that lines up with the place AND sits where nothing changed between the two photos
    is the place (ground beside two animals that stood on one spot); where the picture changed,
    something moved there: the animal."""
    points = np.asarray(points, np.float32).reshape(-1, 2)
    grid = _change_grid(query_rgb, gallery_rgb, homography, side=side, cell=cell, min_correlation=min_correlation)
    if grid is None or len(points) == 0:
        return np.ones(len(points), bool)
    changed, _, scale, _ = grid
    ch, cw = changed.shape
    col = np.clip(((points[:, 0] + 0.5) * scale - 0.5) // cell, 0, cw - 1).astype(int)
    row = np.clip(((points[:, 1] + 0.5) * scale - 0.5) // cell, 0, ch - 1).astype(int)
    return changed[row, col]


def _change_grid(query_rgb: np.ndarray, gallery_rgb: np.ndarray, homography: np.ndarray, *, side: int, cell: int,
                 min_correlation: float) -> tuple[np.ndarray, np.ndarray, float, tuple[int, int]] | None:
    """Per `cell` px square of the query at `side` px: (changed, counted, query scale, (h, w) at
    that scale), or None
    when the query is smaller than one square."""
    qh, qw = query_rgb.shape[:2]
    gh, gw = gallery_rgb.shape[:2]
    qs = min(1.0, side / max(qh, qw))
    gs = min(1.0, side / max(gh, gw))
    q = cv2.resize(to_grey(query_rgb), (max(1, round(qw * qs)), max(1, round(qh * qs))), interpolation=cv2.INTER_AREA)
    g = cv2.resize(to_grey(gallery_rgb), (max(1, round(gw * gs)), max(1, round(gh * gs))), interpolation=cv2.INTER_AREA)
    # the homography in the small frames: gallery_small <- gallery <- query <- query_small
    small = np.diag([gs, gs, 1.0]) @ np.asarray(homography, np.float64) @ np.diag([1 / qs, 1 / qs, 1.0])
    h, w = q.shape
    warped = cv2.warpPerspective(g.astype(np.float32), small, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    valid = cv2.warpPerspective(np.ones_like(g, np.float32), small, (w, h),
                                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0.5
    ch, cw = h // cell, w // cell
    if ch == 0 or cw == 0:
        return None

    def cells(x: np.ndarray) -> np.ndarray:  # (ch, cw, cell*cell)
        x = x[: ch * cell, : cw * cell].reshape(ch, cell, cw, cell)
        return x.transpose(0, 2, 1, 3).reshape(ch, cw, cell * cell)

    # a light blur first: sensor noise and JPEG blocks resample differently in a re-crop
    a = cells(cv2.GaussianBlur(q.astype(np.float32), (0, 0), 1.0))
    b = cells(cv2.GaussianBlur(warped, (0, 0), 1.0))
    inside_gallery = cells(valid.astype(np.float32)).min(axis=2) > 0
    a = a - a.mean(axis=2, keepdims=True)
    b = b - b.mean(axis=2, keepdims=True)
    sa, sb = np.sqrt((a * a).mean(axis=2)), np.sqrt((b * b).mean(axis=2))
    textured = np.maximum(sa, sb) > 8.0  # grey-level spread: below it a square is flat in both photos
    corr = (a * b).mean(axis=2) / np.maximum(sa * sb, 1e-6)
    changed = (inside_gallery & textured & (corr < min_correlation)) | ~inside_gallery
    counted = textured | ~inside_gallery
    return changed, counted, qs, (h, w)


class SceneCheck:
    """The pipeline's scene check: drop the verified spots of the strongest candidates that move
    with the scene AND lie on the background.

    Whole frames keep ground and rocks inside the ellipse; a different animal photographed at
    the same place then "matches" on them (`moves_with_scene`), unless the animal did not move
    either (`changed_share`). Moving with the scene alone cannot tell that case from a resident
    animal back on its usual trail at its own camera, whose true spots line up with the place
    too: so a pair on the animal in both photos (saliency at least Settings.scene_check_animal)
    is never dropped (docs/verdicts.md). By default only for gallery photos from the query's own
    camera station (Settings.scene_check_scope)."""

    def __init__(self, settings: Settings, store: KeypointStore) -> None:
        self.settings = settings
        self.store = store

    def __call__(self, query: QueryImage, evidence: Iterable[Any], min_inliers: int) -> None:
        """Discount, in place, the evidence (reid.stages.shortlist.Evidence per individual) of `query`."""
        s, store, catalog = self.settings, self.store, self.store.catalog
        if s.scene_check_candidates <= 0 or s.keypoint_ellipse <= 0:
            return
        strongest = sorted((ev for ev in evidence if ev.match is not None and ev.inliers),
                           key=lambda ev: -ev.local_score)[: s.scene_check_candidates]
        if s.scene_check_scope == "station" or (s.scene_check_scope == "auto" and query.station):
            strongest = [ev for ev in strongest
                         if query.station and catalog.get_image(ev.image_id).station == query.station]
        if not strongest:
            return
        rgb = query.rgb
        query_scene = store.extract(rgb, scene=True)
        query_saliency = None  # computed when a candidate first needs it
        for ev in strongest:
            if catalog.get_image(ev.image_id).crop:  # enrolled as a crop: its "surroundings" are coat
                continue
            gallery_scene = store.features(ev.image_id, scene=True)
            homography = scene_homography(query_scene, gallery_scene)
            if homography is None:
                continue
            drop = moves_with_scene(ev.match, homography, gallery_scene.image_size)
            if not drop.any():
                continue
            # the animal did not move either (a copy of an enrolled photo, a resting animal): keep
            gallery_crop = store.crop_of(catalog.get_image(ev.image_id))
            if changed_share(rgb, gallery_crop, homography, ellipse=s.keypoint_ellipse) < SCENE_UNCHANGED_SHARE:
                continue
            if s.scene_check_animal > 0:
                # Only background may go. A spot on the animal in both photos, where the picture
                # changed between them (something moved there), is the animal's own.
                if query_saliency is None:
                    query_saliency = store.saliency(rgb)
                animal = pairs_on_animal(ev.match.pairs, query_saliency, (rgb.shape[1], rgb.shape[0]),
                                         store.saliency.of_gallery(ev.image_id, gallery_crop),
                                         (gallery_crop.shape[1], gallery_crop.shape[0]), s.scene_check_animal)
                if animal.any():
                    animal &= changed_at(rgb, gallery_crop, homography, ev.match.pairs[:, :2])
                drop &= ~animal
                if not drop.any():
                    continue
            m = without_pairs(ev.match, drop, min_inliers)
            ev.local_score, ev.inliers, ev.match = float(m.score), int(m.inliers), (m if m.inliers else None)
