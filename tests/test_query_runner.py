"""reid.runner.run_queries, the one query runner, and video frames through the one loader."""

from __future__ import annotations

import csv
import hashlib
import os
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from conftest import LeopardSet

from reid.labels import read_labels
from reid.runner import run_queries


def test_runner_keeps_order_sightings_whole_and_gives_an_unreadable_file_an_error_row(
        pipeline, leopard_images: LeopardSet, tmp_path: Path, monkeypatch) -> None:
    rows = sorted(read_labels(leopard_images.queries_csv), key=lambda r: r.sighting)[:8]  # bursts of 2
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    items = [(r.path, r.file, r.sighting, r.viewpoint) for r in rows]
    items.insert(4, ("broken.jpg", broken, None, None))  # between two sightings
    calls: list[list[str | None]] = []
    real_identify = pipeline.identify

    def recording_identify(queries, **kw):
        calls.append([q.sighting for q in queries])
        return real_identify(queries, **kw)

    def load(item):
        path, file, sighting, viewpoint = item
        return [pipeline.load_query(file, name=path, viewpoint=viewpoint, sighting=sighting)]

    monkeypatch.setattr(pipeline, "identify", recording_identify)
    errors: list[str] = []
    outcomes = list(run_queries(pipeline, items, load, path=lambda i: i[0], chunk=3, top_k=3, audit=False,
                                sighting=lambda i: i[2], on_error=errors.append))

    assert [o.path for o in outcomes] == [i[0] for i in items]  # input order, the error row in its place
    bad = outcomes[4]
    assert bad.query is None and bad.item == items[4]
    assert bad.identification.decision == "error" and bad.identification.candidates == []
    assert "broken.jpg" in bad.identification.error and "not a readable image" in bad.identification.error
    assert errors == [bad.identification.error]
    good = [o for o in outcomes if o.query is not None]
    assert all(o.identification.decision in ("match", "new", "review") for o in good)
    assert [o.query.sighting for o in good] == [r.sighting for r in rows]
    assert len(calls) > 1 and sum(map(len, calls)) == len(rows)
    for earlier, later in zip(calls, calls[1:], strict=False):
        assert not set(earlier) & set(later)  # no sighting split across two identify calls

    # max_group_chunks=None (`reid identify --sighting`): one sighting is one call however long
    calls.clear()
    list(run_queries(pipeline, items, load, path=lambda i: i[0], chunk=1, audit=False,
                     sighting=lambda i: "one", max_group_chunks=None, on_error=errors.append))
    assert calls == [[r.sighting for r in rows]]


def _write_clip(path: Path, photo: Path, *, fps: float = 2.0, frames: int = 6) -> None:
    import cv2

    bgr = cv2.imread(str(photo))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (bgr.shape[1], bgr.shape[0]))
    assert writer.isOpened()
    for n in range(frames):  # 3 s at 2 fps: frames 0, 2, 4 are sampled (t = 0, 1, 2 s)
        writer.write(np.clip(bgr.astype(np.int16) + n, 0, 255).astype(np.uint8))
    writer.release()


def test_video_frame_rows_carry_sha256_and_timestamp(pipeline, leopard_images: LeopardSet, tmp_path: Path) -> None:
    from reid.batch import BatchItem, iter_identified, run_batch

    folder = tmp_path / "in"
    folder.mkdir()
    clip = folder / "clip.mp4"
    _write_clip(clip, leopard_images.root / "img/tau-sheri/left_3.jpg")
    start = datetime(2024, 5, 27, 6, 14, 47)
    os.utime(clip, (start.timestamp(), start.timestamp()))  # no recording time in the file: its mtime

    outcomes = list(iter_identified(pipeline, [BatchItem("clip.mp4", clip)], progress=False, audit=False))
    assert [o.path for o in outcomes] == ["clip.mp4#t=0.0s", "clip.mp4#t=1.0s", "clip.mp4#t=2.0s"]
    data = clip.read_bytes()
    for o, frame in zip(outcomes, (0, 2, 4), strict=True):
        assert o.query.sha256 == hashlib.sha256(data + f"#frame={frame}".encode()).hexdigest()
    assert len({o.query.sha256 for o in outcomes}) == 3
    assert [o.query.timestamp for o in outcomes] == [(start + timedelta(seconds=s)).isoformat() for s in (0, 1, 2)]
    assert {o.query.sighting for o in outcomes} == {"clip.mp4"}  # one video is one encounter

    out = tmp_path / "results.csv"
    run_batch(pipeline, folder, out, progress=False)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["timestamp"] for r in rows] == ["2024-05-27T06:14:47", "2024-05-27T06:14:48", "2024-05-27T06:14:49"]
    assert all(r["decision"] in ("match", "new", "review") for r in rows)

    # a queries CSV that gives the clip's start time: frames are timed from it
    queries = tmp_path / "q.csv"
    queries.write_text(f"path,viewpoint,timestamp\n{clip},left,2023-01-02T03:04:05\n", encoding="utf-8")
    run_batch(pipeline, queries, out, progress=False)
    with open(out, newline="", encoding="utf-8") as fh:
        assert [r["timestamp"] for r in csv.DictReader(fh)] == [
            "2023-01-02T03:04:05", "2023-01-02T03:04:06", "2023-01-02T03:04:07"]

    # in a zip the member's own time is the file time (not the extraction's), so reruns agree
    archive = tmp_path / "clips.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo("clip.mp4", date_time=(2022, 1, 2, 3, 4, 6)), data)
    run_batch(pipeline, archive, out, progress=False)
    with open(out, newline="", encoding="utf-8") as fh:
        assert [r["timestamp"] for r in csv.DictReader(fh)] == [
            "2022-01-02T03:04:06", "2022-01-02T03:04:07", "2022-01-02T03:04:08"]
