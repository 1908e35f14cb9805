"""Verdicts explain themselves (the flank note) and evidence pictures a person can judge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from conftest import MODEL, LeopardSet
from live import live_server

from reid import evidence
from reid.cli import main
from reid.explain import flank_note
from reid.identify import Identification, Pipeline


def test_a_flank_never_enrolled_is_named(leopard_images: LeopardSet, pipeline: Pipeline) -> None:
    """Righty is enrolled from the right only: a left-flank photo cannot confirm it, and says so."""
    query = pipeline.load_query(leopard_images.righty_left[0], viewpoint="left")
    (res,) = pipeline.identify([query], audit=False)
    assert "Righty" not in [c.identity for c in res.candidates]  # left never meets right
    assert res.decision != "match"
    assert res.flank_note == "no left-flank photo of Righty enrolled: cannot confirm"
    assert flank_note(res, pipeline.catalog) == res.flank_note  # the library function batch results reuse
    # a right-flank photo: every individual has right-flank photos, so nothing to say
    right = pipeline.load_query(leopard_images.root / "img/kyzyl/right_3.jpg", viewpoint="right")
    (res_r,) = pipeline.identify([right], audit=False)
    assert res_r.flank_note is None
    # an unknown flank is compared with both: nothing is hidden from it
    assert flank_note(Identification("x", "new", [], viewpoint="unknown"), pipeline.catalog) is None
    # a match needs no excuse
    assert flank_note(Identification("x", "match", [], viewpoint="left"), pipeline.catalog) is None


def test_the_cli_prints_the_note_and_writes_it_on_the_picture(leopard_images: LeopardSet, enrolled_dir: Path,
                                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = leopard_images.righty_left[1]
    out = tmp_path / "ev.png"
    code = main(["identify", str(photo), "--viewpoint", "left", "--evidence", str(out), "--evidence-lines", "off",
                 "--data-dir", str(enrolled_dir), "--model", str(MODEL)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "note: no left-flank photo of Righty enrolled: cannot confirm" in captured.out
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[1] == evidence.WIDTH
    code = main(["identify", str(photo), "--viewpoint", "left", "--json",
                 "--data-dir", str(enrolled_dir), "--model", str(MODEL)])
    assert json.loads(capsys.readouterr().out)[0]["flank_note"].startswith("no left-flank photo of Righty")


def _pairs(n: int, q: tuple[int, int], g: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0.3, 0.6, n) * q[0], rng.uniform(0.3, 0.6, n) * q[1],
                            rng.uniform(0.3, 0.6, n) * g[0], rng.uniform(0.3, 0.6, n) * g[1]]).astype(np.float32)


@pytest.mark.parametrize("qsize,gsize", [((320, 240), (640, 480)), ((4000, 60), (50, 3000)), ((12, 9), (9000, 9000))])
def test_evidence_picture_has_a_bounded_size_whatever_the_aspect_ratio(qsize, gsize) -> None:
    rng = np.random.default_rng(1)
    q = rng.integers(0, 255, (qsize[1], qsize[0], 3), dtype=np.uint8)
    g = rng.integers(0, 255, (gsize[1], gsize[0], 3), dtype=np.uint8)
    text = evidence.EvidenceText(title="Tau Sheri - right flank - P = 0.97 - match", detail="23 matched spots",
                                 note="no left-flank photo of Aybala enrolled: cannot confirm")
    pic = evidence.evidence_picture(q, g, _pairs(12, qsize, gsize), text)
    assert pic.dtype == np.uint8 and pic.shape[1] == evidence.WIDTH and pic.shape[0] <= 1100


def test_evidence_without_lines_leaves_the_coats_clean_and_zooms_the_matched_region() -> None:
    rng = np.random.default_rng(2)
    q = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    g = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    pairs = _pairs(20, (320, 240), (640, 480))
    text = evidence.EvidenceText(title="Kyzyl - left flank - P = 0.80 - review", gallery_caption="Kyzyl, photo 3")
    with_lines = evidence.evidence_picture(q, g, pairs, text, lines=True)
    clean = evidence.evidence_picture(q, g, pairs, text, lines=False)
    assert with_lines.shape == clean.shape
    top = with_lines.shape[0] - evidence.GAP - evidence.ZOOM[1] - evidence.CAPTION - evidence.GAP - evidence.PANEL[1]
    gap = slice(evidence.GAP + evidence.PANEL[0] + 2, 2 * evidence.GAP + evidence.PANEL[0] - 2)
    band = slice(top, top + evidence.PANEL[1])
    # lines cross the gap between the two photos; without lines it is plain background
    assert (clean[band, gap] == evidence.BACKGROUND).all()
    assert not (with_lines[band, gap] == evidence.BACKGROUND).all()
    # the zoom shows the matched region enlarged: its panel is filled by the photo, not letterboxed
    zoom = clean[-evidence.GAP - evidence.ZOOM[1]:-evidence.GAP, evidence.GAP:evidence.GAP + evidence.ZOOM[0]]
    assert (zoom != evidence.PANEL_BACKGROUND).any(axis=2).mean() > 0.9
    # the verdict is drawn on the picture: another name changes the header
    other = evidence.evidence_picture(q, g, pairs, evidence.EvidenceText(title="Aybala - left flank - P = 0.80"),
                                      lines=False)
    assert not np.array_equal(other[:40], clean[:40])
    assert (clean[:40] != evidence.BACKGROUND).any()


def test_http_answers_carry_the_note_and_evidence_without_lines(leopard_images: LeopardSet, enrolled_dir: Path,
                                                                tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(enrolled_dir, data_dir)
    photo = leopard_images.righty_left[0]
    form = {"files": {"image": (photo.name, photo.read_bytes())}, "data": {"viewpoint": "left"}, "timeout": 120}
    with live_server(data_dir) as server:
        r = httpx.post(server.url + "/v1/identify", **form)
        assert r.status_code == 200, r.text
        assert r.json()["flank_note"] == "no left-flank photo of Righty enrolled: cannot confirm"
        schema = httpx.get(server.url + "/openapi.json").json()["components"]["schemas"]["IdentifyOut"]
        assert "flank_note" in schema["properties"]
        pictures = {}
        for lines in ("1", "0"):
            r = httpx.post(server.url + "/v1/identify/evidence", params={"lines": lines}, **form)
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            pictures[lines] = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        assert pictures["0"].shape == pictures["1"].shape and pictures["0"].shape[1] == evidence.WIDTH
        assert not np.array_equal(pictures["0"], pictures["1"])
