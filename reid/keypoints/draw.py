"""The keypoint evidence picture: two photos side by side, matched spots joined by lines."""

from __future__ import annotations

import cv2
import numpy as np

from reid.keypoints.verify import LocalMatch


def _put_label(img: np.ndarray, text: str, org: tuple[int, int]) -> None:
    h = img.shape[0]
    fs = max(0.45, min(1.2, h / 600.0))
    th = max(1, int(round(fs * 2)))
    (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, th)
    x, y = org
    cv2.rectangle(img, (x - 4, y - tht - 6), (x + tw + 4, y + base + 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 255), th, cv2.LINE_AA)


def draw_evidence(
    query_rgb: np.ndarray,
    gallery_rgb: np.ndarray,
    match: LocalMatch,
    *,
    labels: tuple[str, str] | None = None,
    max_lines: int = 60,
    height: int | None = None,
) -> np.ndarray:
    """Side-by-side RGB picture: query left, gallery right, matched spots joined by lines.

    Both images are scaled to the same height (the smaller of the two, between 240 and
    720 px unless `height` is given), each at most 2x as wide as high (a 100000x16 strip is
    shrunk to fit, not stretched to 1.5 million pixels wide): the picture is at most
    720 x 2888 px whatever comes in. The strongest `max_lines` matches are drawn.
    """
    qa = query_rgb[..., :3] if query_rgb.ndim == 3 else query_rgb[..., None]
    ga = gallery_rgb[..., :3] if gallery_rgb.ndim == 3 else gallery_rgb[..., None]
    if height is None:
        height = int(np.clip(min(qa.shape[0], ga.shape[0]), 240, 720))
    max_width = 2 * height

    def fit(a: np.ndarray) -> tuple[np.ndarray, float]:
        s = min(height / a.shape[0], max_width / a.shape[1])
        size = (max(1, min(max_width, round(a.shape[1] * s))), max(1, min(height, round(a.shape[0] * s))))
        out = cv2.resize(np.ascontiguousarray(a), size, interpolation=cv2.INTER_AREA)
        return (out if out.ndim == 3 and out.shape[2] == 3 else np.dstack([out.reshape(size[1], size[0])] * 3)), s

    qr, sq = fit(qa)
    gr, sg = fit(ga)
    gap = 8
    canvas = np.full((height, qr.shape[1] + gap + gr.shape[1], 3), 255, np.uint8)
    canvas[: qr.shape[0], : qr.shape[1]] = qr
    xoff = qr.shape[1] + gap
    canvas[: gr.shape[0], xoff:] = gr
    pairs = np.asarray(match.pairs, np.float32).reshape(-1, 4)[: max(0, int(max_lines))]
    n = len(pairs)
    thick = max(1, round(height / 360))
    rad = max(3, round(height / 120))
    for i, (qx, qy, gx, gy) in enumerate(pairs):
        hue = int(180 * i / max(1, n))
        col = cv2.cvtColor(np.uint8([[[hue, 230, 255]]]), cv2.COLOR_HSV2RGB)[0, 0].tolist()
        p1 = (int(round(qx * sq)), int(round(qy * sq)))
        p2 = (int(round(gx * sg)) + xoff, int(round(gy * sg)))
        cv2.line(canvas, p1, p2, col, thick, cv2.LINE_AA)
        cv2.circle(canvas, p1, rad, col, thick, cv2.LINE_AA)
        cv2.circle(canvas, p2, rad, col, thick, cv2.LINE_AA)
    if labels is not None:
        pad = max(18, round(height / 20))
        _put_label(canvas, str(labels[0]), (8, pad + 4))
        _put_label(canvas, str(labels[1]), (xoff + 8, pad + 4))
    _put_label(canvas, f"{match.inliers} matched spots, score {match.score:.2f}", (8, height - 10))
    return canvas
