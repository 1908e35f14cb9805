"""End to end through the model users get (models/DEFAULT), not the ImageNet baseline the other
tests pin: enroll with the CLI without --model or REID_MODEL, identify over HTTP."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import LeopardSet, run_cli
from fastapi.testclient import TestClient

from reid.model import load_checkpoint
from reid.settings import default_model_path
from service.app import create_app
from service.settings import ServerSettings

ENROLLED = ("Tau Sheri", "Aybala", "Kyzyl")


def test_the_shipped_default_model_enrolls_and_identifies(leopard_images: LeopardSet, tmp_path: Path) -> None:
    shipped = load_checkpoint(default_model_path())
    assert shipped.version != "imagenet-lite0"  # the trained model, not the baseline

    # left flanks of three individuals, sightings 1-2
    with leopard_images.gallery_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["identity"] in ENROLLED and r["viewpoint"] == "left"]
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "path": str(leopard_images.root / r["path"])} for r in rows)
    data = tmp_path / "data"
    proc = run_cli("enroll", labels, "--data-dir", data, env={"REID_MODEL": ""})  # empty: not set
    assert proc.returncode == 0, proc.stderr
    assert f"enrolled {len(rows)} new images" in proc.stdout

    settings = ServerSettings(data_dir=data)  # no model given: the data dir's, i.e. the shipped default
    assert settings.model_path is None
    query = leopard_images.root / "img/kyzyl/left_3.jpg"  # a later sighting, never enrolled
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        resp = client.post("/v1/identify", files={"image": ("left_3.jpg", query.read_bytes(), "image/jpeg")},
                           data={"viewpoint": "left"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model_id"] == shipped.model_id and body["calibrated"]  # its calibration shipped beside it
    cands = body["candidates"]
    assert [c["identity"] for c in cands][:1] == ["Kyzyl"] and len(cands) == len(ENROLLED)
    assert cands[0]["score"] > cands[1]["score"] and cands[0]["inliers"] > 0
    assert body["decision"] == "match"
