"""Dataset writer: images, labels.csv, contact sheet, and the `reid synth` command."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

from reid.training.synth.config import DEFAULT_RENDER, SIDES, RenderConfig, identity_name
from reid.training.synth.paint import _rng
from reid.training.synth.render import _check, render_burst

LABEL_COLUMNS = ("path", "identity", "viewpoint", "sighting", "station", "timestamp", "lat", "lon")


def contact_sheet(images: list[np.ndarray], cols: int, labels: list[str] | None = None) -> np.ndarray:
    """Tile images (RGB uint8; all resized to the first one's size) into one RGB uint8 sheet,
    with an optional caption under each tile."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    cols = max(1, min(int(cols), len(images)))
    ch, cw = images[0].shape[:2]
    pad = 4
    lab_h = max(12, ch // 14) if labels is not None else 0
    rows = -(-len(images) // cols)
    sheet = np.full((pad + rows * (ch + lab_h + pad), pad + cols * (cw + pad), 3), 24, np.uint8)
    for i, im in enumerate(images):
        im = np.asarray(im)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        if im.shape[:2] != (ch, cw):
            im = cv2.resize(im, (cw, ch), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, cols)
        y, x = pad + r * (ch + lab_h + pad), pad + c * (cw + pad)
        sheet[y:y + ch, x:x + cw] = im[..., :3]
        if labels is not None:
            fs = lab_h / 32
            text = str(labels[i])
            while len(text) > 1 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)[0][0] > cw:
                text = text[:-1]
            cv2.putText(sheet, text, (x + 1, y + ch + int(lab_h * 0.8)), cv2.FONT_HERSHEY_SIMPLEX, fs,
                        (235, 235, 235), 1, cv2.LINE_AA)
    return sheet


def _write_rgb(path: Path, img: np.ndarray, quality: int = 95) -> None:
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img[..., ::-1]), params)
    if not ok:
        raise OSError(f"could not encode {path}")
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(buf.tobytes())
    tmp.replace(path)


def write_dataset(out_dir: Path, individuals: int, per_individual: int, seed: int = 0,
                  first_individual: int = 0, config: RenderConfig = DEFAULT_RENDER, *,
                  same_place: bool = False, home_share: float = 0.5) -> Path:
    """Render a labelled data set: ``out_dir/images/*.jpg``, ``out_dir/labels.csv`` (EVAL.md
    columns path, identity, viewpoint, sighting, station, timestamp, lat, lon) and
    ``out_dir/contact_sheet.png``. Returns the labels.csv path.

    Individuals are the seeds ``first_individual .. first_individual + individuals - 1``; each
    gets ``per_individual`` images in sightings (bursts of 1-3 frames) of one flank each, both
    flanks whenever per_individual >= 2. ``seed`` drives the renders, stations and times; an
    individual's images do not depend on how many other individuals are written.

    ``same_place``: every sighting at a station shows that station's background, as fixed
    camera traps do: different animals in front of the same rocks, the case where keypoints
    on the background pass for spots. Each individual then also has a home station (a
    resident's usual trail): its first sighting is there and each later one is there with
    probability ``home_share``, so the same animal comes back to the same place too (the case
    where spots on the animal line up with the place). Animals pass each camera on its trail:
    framed alike, within a few percent. Otherwise each sighting draws its own background,
    framing and station.
    """
    import datetime as dt

    if individuals < 1 or per_individual < 1:
        raise ValueError(f"need individuals >= 1 and per_individual >= 1, not {individuals}, {per_individual}")
    if not 0.0 <= home_share <= 1.0:
        raise ValueError(f"home_share must be in [0, 1], not {home_share}")
    _check(first_individual, "left", config)
    out_dir = Path(out_dir)
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    srng = _rng(seed, 7001)
    n_st = 12
    st_lat = 43.6 + srng.random(n_st) * 1.6  # Ustyurt plateau / Mangystau, roughly
    st_lon = 54.8 + srng.random(n_st) * 3.2
    season = dt.datetime(2024, 3, 1)
    rows: list[dict] = []
    sheet: list[np.ndarray] = []
    sheet_labels: list[str] = []
    for i in range(individuals):
        ind = first_individual + i
        name = identity_name(ind)
        irng = _rng(seed, ind, 7002)
        remaining, k = per_individual, 0
        first_side = int(irng.integers(2))
        # a separate stream: the other draws (and so datasets without same_place) stay as they were
        hrng = _rng(seed, ind, 7005)
        home = int(hrng.integers(n_st))
        while remaining > 0:
            cap = max(1, remaining // 2) if (k == 0 and per_individual >= 2) else remaining
            b = int(min(cap, irng.integers(1, 4)))
            side = SIDES[(first_side + k) % 2] if k < 2 else SIDES[int(irng.integers(2))]
            if config.closeup and k % 3 == 2:  # close-ups: every third sighting the face
                side = "front"
            night = bool(irng.random() < config.night_prob)
            st = int(irng.integers(n_st))
            if same_place and (k == 0 or hrng.random() < home_share):
                st = home
            day = int(irng.integers(0, 200))
            hour = int(irng.integers(20, 30)) % 24 if night else int(irng.integers(6, 20))
            t0 = season + dt.timedelta(days=day, hours=hour, minutes=int(irng.integers(60)),
                                       seconds=int(irng.integers(60)))
            sighting = f"{name}-s{k:03d}"
            frames = render_burst(ind, side, _rng(seed, ind, 7003, k), b, config, night=night,
                                  bg_seed=int(_rng(seed, 7004, st).integers(1 << 62)) if same_place else None,
                                  trail_seed=int(_rng(seed, 7006, st).integers(1 << 62)) if same_place else None)
            for f, img in enumerate(frames):
                fname = f"{name}_s{k:03d}_{f}.jpg"
                _write_rgb(img_dir / fname, img)
                rows.append({"path": f"images/{fname}", "identity": name, "viewpoint": side,
                             "sighting": sighting, "station": f"ST{st + 1:02d}",
                             "timestamp": (t0 + dt.timedelta(seconds=f)).isoformat(timespec="seconds"),
                             "lat": f"{st_lat[st]:.5f}", "lon": f"{st_lon[st]:.5f}"})
                if len(sheet) < 24 and (f == 0 or len(sheet) < 8):
                    sheet.append(img)
                    sheet_labels.append(f"{name} {side[0].upper()} {'IR' if night else ''}")
            remaining -= b
            k += 1
    labels = out_dir / "labels.csv"
    tmp = labels.with_name("labels.csv.part")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(LABEL_COLUMNS))
        wr.writeheader()
        wr.writerows(rows)
    tmp.replace(labels)
    _write_rgb(out_dir / "contact_sheet.png", contact_sheet(sheet, min(6, len(sheet)), sheet_labels))
    return labels


def main(argv: list[str] | None = None) -> int:
    """``reid synth``: write a synthetic labelled data set. Returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="reid synth", description="Render synthetic camera-trap photos of procedural leopards "
        "(images/*.jpg, labels.csv in EVAL.md format, contact_sheet.png).")
    parser.add_argument("--individuals", type=int, default=10, help="number of individuals (default 10)")
    parser.add_argument("--per-individual", type=int, default=6, help="images per individual (default 6)")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--season", type=Path, default=None, metavar="OUT",
                        help="write a synthetic camera-trap season instead (stations, paired cameras, "
                             "MegaDetector JSON, deployments.csv, known.csv, truth.csv; reid.training.synth.season)")
    parser.add_argument("--seed", type=int, default=0, help="render seed (default 0)")
    parser.add_argument("--first-individual", type=int, default=0,
                        help="seed of the first individual; individuals are consecutive seeds (default 0)")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("W", "H"),
                        help="image size in pixels (default 256 256)")
    parser.add_argument("--night-prob", type=float, default=0.3, help="share of infrared night sightings")
    parser.add_argument("--easy", action="store_true", help="mild conditions: the whole animal in view, little blur, no occluders, good JPEG "
                             "(default: the full range of camera-trap conditions)")
    parser.add_argument("--same-place", action="store_true",
                        help="fixed cameras: every sighting at a station shows that station's background; "
                        "each individual has a home station it returns to")
    parser.add_argument("--closeup", action="store_true",
                        help="close-ups: every photo framed tight on the flank (every third sighting the face), "
                        "the coat filling the frame, as photos cropped by hand are")
    parser.add_argument("--home-share", type=float, default=0.5,
                        help="with --same-place: share of an individual's later sightings at its home station "
                        "(default 0.5)")
    try:
        args = parser.parse_args(argv)
        if args.season is not None:
            return _season(args.season, args.seed)
        if args.out is None:
            parser.error("--out (or --season OUT) is required")
        if args.individuals < 1:
            parser.error(f"--individuals must be >= 1, not {args.individuals}")
        if args.per_individual < 1:
            parser.error(f"--per-individual must be >= 1, not {args.per_individual}")
        if not all(16 <= v <= 4096 for v in args.size):
            parser.error(f"--size W H must be between 16 and 4096, not {args.size[0]} {args.size[1]}")
        if not 0.0 <= args.night_prob <= 1.0:
            parser.error(f"--night-prob must be in [0, 1], not {args.night_prob}")
        if not 0.0 <= args.home_share <= 1.0:
            parser.error(f"--home-share must be in [0, 1], not {args.home_share}")
        if args.out.exists() and not args.out.is_dir():
            parser.error(f"--out {args.out} exists and is not a folder")
    except SystemExit as exc:  # argparse exits on bad arguments; report the status instead
        return exc.code if isinstance(exc.code, int) else 2
    cfg = RenderConfig(size=(args.size[0], args.size[1]), night_prob=args.night_prob, hard=not args.easy,
                       closeup=args.closeup)
    try:
        labels = write_dataset(args.out, args.individuals, args.per_individual, seed=args.seed,
                               first_individual=args.first_individual, config=cfg, same_place=args.same_place,
                               home_share=args.home_share)
    except (OSError, ValueError) as exc:
        print(f"reid synth: error: {exc}", file=sys.stderr)
        return 1
    n = args.individuals * args.per_individual
    print(f"wrote {n} images of {args.individuals} individuals ({identity_name(args.first_individual)} .. "
          f"{identity_name(args.first_individual + args.individuals - 1)}) to {args.out / 'images'}")
    print(f"labels: {labels}")
    shown = f"all {n} images" if n <= 24 else f"a sample: at most 24 of the {n} images, mostly first frames of bursts"
    print(f"contact sheet: {args.out / 'contact_sheet.png'} ({shown})")
    return 0


def _season(out: Path, seed: int) -> int:
    from reid.training.synth.season import write_season

    try:
        counts = write_season(out, seed=seed)
    except (OSError, ValueError) as exc:
        print(f"reid synth: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote a synthetic season to {out}: {counts['photos']} photos ({out / 'images'}), "
          f"megadetector.json, deployments.csv, known.csv ({counts['known_photos']} photos to enroll first), truth.csv")
    return 0

