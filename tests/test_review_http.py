"""The review loop over HTTP: a real server on a real catalogue, end to end, and the role checks.

Done-when flow: a batch leaves pending items; a person confirms one; another photo of that
animal now ranks it first with a higher probability than before; `new` creates the
individual and the same photo identified again is a `match`; merge and undo restore exactly;
two people deciding one item at once: one wins, the other gets 409.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import pytest
from conftest import MODEL, LeopardSet, run_cli
from fastapi.testclient import TestClient
from live import live_server
from review_helpers import copy_catalog

from reid.settings import Settings
from service.app import create_app
from service.deps import Actor, Role, authenticate
from service.settings import ServerSettings

TOKEN = "review-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def identify(client: httpx.Client, path: Path, viewpoint: str = "left") -> dict:
    with open(path, "rb") as fh:
        r = client.post("/v1/identify", files={"image": (path.name, fh, "image/jpeg")}, data={"viewpoint": viewpoint})
    assert r.status_code == 200, r.text
    return r.json()


def score_of(result: dict, individual_id: int) -> tuple[int | None, float]:
    for c in result["candidates"]:
        if c["individual_id"] == individual_id:
            return c["rank"], c["score"]
    return None, 0.0


def assert_evidence_joins_the_counted_spots(data: Path) -> None:
    """The page lists "N spots" per candidate (the identification's verified spots); its evidence
    picture must join those same spots, not a pairwise match of its own that finds others or none."""
    from reid import review
    from reid.identify import open_pipeline
    from service.routers.reviews import evidence_match

    pipe = open_pipeline(data_dir=data, model_path=MODEL)
    try:
        items, total = review.list_items(pipe.catalog)
        assert total == len(items) == 3
        counted = 0
        for item in items:
            for cand in item.candidates:  # what evidence_png draws for each candidate
                drawn = evidence_match(pipe, item, cand.image_id)[1]
                assert drawn.inliers == cand.inliers, (item.file_name, cand.identity)
                counted += cand.inliers > 0
        assert counted  # some candidates have spots to join
    finally:
        pipe.close()


def test_review_loop_end_to_end_over_http(enrolled_dir, pipeline, leopard_images: LeopardSet, tmp_path: Path):
    data = copy_catalog(enrolled_dir, pipeline, tmp_path / "data")
    season = tmp_path / "season"
    season.mkdir()
    names = ("stranger-1.jpg", "stranger-2.jpg", "righty-left-1.jpg")
    for p, name in zip([*leopard_images.strangers, leopard_images.righty_left[0]], names, strict=True):
        shutil.copy(p, season / name)
    # a season batch leaves pending items (right-flank-only Righty is no candidate for left flanks)
    proc = run_cli("batch", season, "--out", tmp_path / "results.csv", "--data-dir", data, "-q")
    assert proc.returncode == 0, proc.stderr
    assert_evidence_joins_the_counted_spots(data)
    with live_server(data, env={"REID_API_TOKEN": TOKEN}) as server, \
            httpx.Client(base_url=server.url, headers=AUTH, timeout=300) as client:
        listed = client.get("/v1/reviews", params={"status": "all", "limit": 500}).json()
        assert listed["total"] == 3 and listed["counts"]["pending"] == 3, listed["counts"]
        by_name = {Path(it["file_name"]).name: it for it in listed["items"]}
        stranger_item, other_item, righty_item = (by_name[n] for n in names)
        assert stranger_item["candidates"] and {"individual_id", "identity", "probability", "evidence_url"} <= set(
            stranger_item["candidates"][0])
        assert client.get(stranger_item["photo_url"]).content == leopard_images.strangers[0].read_bytes()
        ev = client.get(stranger_item["candidates"][0]["evidence_url"])
        assert ev.status_code == 200 and ev.content[:8] == b"\x89PNG\r\n\x1a\n"

        # anonymous callers may not decide or curate when a token is set
        anon = httpx.Client(base_url=server.url, timeout=60)
        assert anon.post(f"/v1/reviews/{righty_item['id']}/decision", json={"action": "skip"}).status_code == 401
        assert anon.post("/v1/individuals/1/merge", json={"into_id": 2}).status_code == 401

        # confirm: the next photo of that animal ranks it first, with a higher probability
        righty = client.get("/v1/individuals", params={"name": "Righty"}).json()[0]
        before = identify(client, leopard_images.righty_left[1])
        rank0, p0 = score_of(before, righty["id"])
        r = client.post(f"/v1/reviews/{righty_item['id']}/decision",
                        json={"action": "confirm", "individual_id": righty["id"], "version": righty_item["version"]})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "decided" and r.json()["individual"] == "Righty"
        after = identify(client, leopard_images.righty_left[1])
        rank1, p1 = score_of(after, righty["id"])
        assert rank0 is None and rank1 == 1 and p1 > p0
        # the review page tells an admin what a retrain would learn from
        page = client.get("/review")
        assert page.status_code == 200 and "1 confirmation\n    since the model was trained: retrain" in page.text
        again = client.post(f"/v1/reviews/{righty_item['id']}/decision", json={"action": "skip"})
        assert again.status_code == 409 and "already decided" in again.json()["detail"]

        # new: the individual exists, and the same photo identified again is a match
        r = client.post(f"/v1/reviews/{stranger_item['id']}/decision", json={"action": "new", "name": "Stranger"})
        assert r.status_code == 200, r.text
        same = identify(client, leopard_images.strangers[0])
        assert same["decision"] == "match" and same["candidates"][0]["identity"] == "Stranger"

        # two reviewers decide one item at once: one wins, the other gets 409
        kyzyl = client.get("/v1/individuals", params={"name": "Kyzyl"}).json()[0]
        boran = client.get("/v1/individuals", params={"name": "Boran"}).json()[0]
        codes: list[int] = []
        barrier = threading.Barrier(2)

        def decide(individual_id: int) -> None:
            with httpx.Client(base_url=server.url, headers=AUTH, timeout=300) as c:
                barrier.wait()
                codes.append(c.post(f"/v1/reviews/{other_item['id']}/decision",
                                    json={"action": "confirm", "individual_id": individual_id}).status_code)

        threads = [threading.Thread(target=decide, args=(i,)) for i in (kyzyl["id"], boran["id"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) == [200, 409]
        won = client.get(f"/v1/reviews/{other_item['id']}").json()
        counts = [client.get(f"/v1/individuals/{i}").json()["image_count"] for i in (kyzyl["id"], boran["id"])]
        assert sorted(counts) == [4, 5] and won["individual_id"] in (kyzyl["id"], boran["id"])

        # merge, then undo: both individuals exactly as before
        kyzyl, boran = (client.get(f"/v1/individuals/{i}").json() for i in (kyzyl["id"], boran["id"]))
        merged = client.post(f"/v1/individuals/{kyzyl['id']}/merge", json={"into_id": boran["id"]})
        assert merged.status_code == 200, merged.text
        # a stale link to the merged-away animal says where it went, on every route of it
        gone = client.get(f"/v1/individuals/{kyzyl['id']}")
        assert gone.status_code == 404, gone.text
        assert gone.json()["detail"] == f"individual {kyzyl['id']} was merged into individual {boran['id']} ('Boran')"
        for r in (client.patch(f"/v1/individuals/{kyzyl['id']}", json={"notes": "x"}),
                  client.post(f"/v1/individuals/{boran['id']}/merge", json={"into_id": kyzyl["id"]})):
            assert r.status_code == 404 and "was merged into individual" in r.json()["detail"], r.text
        assert client.get("/v1/individuals/99999").json()["detail"] == "no individual with id 99999 in the catalogue"
        assert client.get(f"/v1/individuals/{boran['id']}").json()["image_count"] == kyzyl["image_count"] + boran[
            "image_count"]
        undone = client.post(f"/v1/curation/{merged.json()['id']}/undo")
        assert undone.status_code == 200, undone.text
        assert client.get(f"/v1/individuals/{kyzyl['id']}").json() == kyzyl
        assert client.get(f"/v1/individuals/{boran['id']}").json() == boran
        assert client.post(f"/v1/curation/{merged.json()['id']}/undo").status_code == 409

        # move, rename: clear errors for what cannot be done
        image_id = kyzyl["images"][0]["id"]
        assert client.post(f"/v1/images/{image_id}/move", json={"individual_id": 99999}).status_code == 404
        assert client.post(f"/v1/images/{image_id}/move", json={"individual_id": kyzyl["id"]}).status_code == 409
        moved = client.post(f"/v1/images/{image_id}/move", json={"individual_id": boran["id"]})
        assert moved.status_code == 200 and client.post(f"/v1/curation/{moved.json()['id']}/undo").status_code == 200
        assert client.patch(f"/v1/individuals/{kyzyl['id']}", json={"name": "Boran"}).status_code == 409
        assert client.patch(f"/v1/individuals/{kyzyl['id']}", json={"sex": "tomcat"}).status_code == 422
        renamed = client.patch(f"/v1/individuals/{kyzyl['id']}", json={"name": "Kyzyl-1", "sex": "female"})
        assert renamed.status_code == 200 and client.get("/v1/individuals", params={"name": "Kyzyl-1"}).json()[0]["sex"] == "female"
        assert client.post(f"/v1/individuals/{kyzyl['id']}/merge", json={"into_id": kyzyl["id"]}).status_code == 409
        for bad in ({"action": "confirm"}, {"action": "new"}, {"action": "maybe"},
                    {"action": "confirm", "individual_id": 1, "name": "Kyzyl"}):
            r = client.post(f"/v1/reviews/{other_item['id']}/decision", json=bad)
            assert r.status_code == 422 and "detail" in r.json()
        assert client.post("/v1/reviews/99999/decision", json={"action": "skip"}).status_code == 404
        r = client.post(f"/v1/reviews/{righty_item['id']}/undo")
        assert r.status_code == 200 and r.json()["status"] == "pending"
        r = client.post(f"/v1/reviews/{righty_item['id']}/decision", json={"action": "confirm", "name": "no such"})
        assert r.status_code == 404
        assert client.get("/v1/reviews", params={"limit": 501}).status_code == 422


@pytest.fixture
def app_client(enrolled_dir, pipeline, tmp_path: Path):
    data = copy_catalog(enrolled_dir, pipeline, tmp_path / "data")
    app = create_app(ServerSettings.from_env(data_dir=data, model_path=MODEL, api_token=TOKEN))
    with TestClient(app, base_url="http://127.0.0.1") as client:  # a Host the service answers to
        yield app, client


def test_roles_viewer_cannot_decide_reviewer_cannot_curate(app_client, leopard_images: LeopardSet):
    app, client = app_client
    with open(leopard_images.strangers[0], "rb") as fh:
        assert client.post("/v1/identify", files={"image": ("s.jpg", fh, "image/jpeg")}, data={
            "viewpoint": "left", "station": "ST-7"}, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    as_role = {}
    for role in Role:
        as_role[role] = (lambda r=role: Actor(f"{r.name}-user", r))
    app.dependency_overrides[authenticate] = as_role[Role.viewer]
    listed = client.get("/v1/reviews").json()
    item = listed["items"][0]
    assert item["station"] is None  # a viewer does not see locations
    assert client.post(f"/v1/reviews/{item['id']}/decision", json={"action": "skip"}).status_code == 403
    assert client.post(f"/v1/reviews/{item['id']}/undo").status_code == 403
    app.dependency_overrides[authenticate] = as_role[Role.reviewer]
    assert client.get("/v1/reviews").json()["items"][0]["station"] == "ST-7"
    r = client.post(f"/v1/reviews/{item['id']}/decision", json={"action": "skip"})
    assert r.status_code == 200 and r.json()["decisions"][-1]["actor"] == "reviewer-user"
    assert client.post("/v1/individuals/1/merge", json={"into_id": 2}).status_code == 403
    assert client.patch("/v1/individuals/1", json={"notes": "x"}).status_code == 403
    assert client.post("/v1/images/1/move", json={"individual_id": 2}).status_code == 403
    assert client.post("/v1/reviews/archive", json={}).status_code == 403
    app.dependency_overrides[authenticate] = as_role[Role.admin]
    assert client.patch("/v1/individuals/1", json={"notes": "x"}).status_code == 200
    # a sighting's photos are queued one item each
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in leopard_images.righty_left]
    assert client.post("/v1/identify/sighting", files=files, data={"viewpoint": "left"}).status_code == 200
    sighted = [i for i in client.get("/v1/reviews", params={"status": "all"}).json()["items"] if i["sighting"]]
    assert len(sighted) == 2 and len({i["sighting"] for i in sighted}) == 1
    app.dependency_overrides.clear()


def test_a_multi_photo_item_over_http_shows_every_photo_and_new_enrolls_them_all(
        enrolled_dir, pipeline, leopard_images: LeopardSet, tmp_path: Path):
    """A season's putative new individual (reid.review.record_group): one item, its photos
    listed and served, one `new` decision enrolls all of them, each with its own flank."""
    from reid import review
    from reid.identify import Pipeline

    data = copy_catalog(enrolled_dir, pipeline, tmp_path / "data")
    files = [*leopard_images.strangers[:2]]
    local = Pipeline(Settings.from_env(data_dir=data, model_path=MODEL), checkpoint=pipeline.checkpoint)
    try:
        item = review.record_group(local, [
            review.GroupPhoto(name=f"ST01/CAM-A/{files[0].name}", path=files[0], viewpoint="left", station="ST01"),
            review.GroupPhoto(name=f"ST01/CAM-B/{files[1].name}", path=files[1], viewpoint="right", station="ST01",
                              box=(10, 10, 200, 150))], label="season U001")
    finally:
        local.close()
    assert item is not None
    with live_server(data, env={"REID_API_TOKEN": TOKEN}) as server, \
            httpx.Client(base_url=server.url, headers=AUTH, timeout=300) as client:
        listed = client.get("/v1/reviews").json()
        (got,) = [it for it in listed["items"] if it["id"] == item.id]
        assert got["verdict"] == "new" and got["sighting"] == "season U001"
        assert [(p["position"], p["viewpoint"], p["box"]) for p in got["photos"]] == [
            (0, "left", ""), (1, "right", "10,10,200,150")]
        for p, f in zip(got["photos"], files, strict=True):
            r = client.get(p["photo_url"])
            assert r.status_code == 200 and r.content == f.read_bytes()
        r = client.get(f"/v1/reviews/{item.id}/photos/2")
        assert r.status_code == 404 and "has no photo 2" in r.json()["detail"]
        r = client.post("/v1/reviews/new-individual", json={"item_ids": [item.id], "name": "Newcomer"})
        assert r.status_code == 200, r.text
        ind_id = r.json()[0]["individual_id"]
        images = client.get(f"/v1/individuals/{ind_id}").json()
    flanks = sorted(im["viewpoint"] for im in images["images"])
    assert flanks == ["left", "right"]


def test_out_of_range_paging_and_version_names_are_422_not_500(app_client):
    """Found by the API fuzzer: an offset past SQLite's integers was a 500 (OverflowError), and
    a retrain `base` the schema allowed was refused: both now bounded in the schema itself."""
    _app, client = app_client
    r = client.get("/v1/reviews", params={"offset": 10**26}, headers=AUTH)
    assert r.status_code == 422 and "offset" in r.json()["detail"], r.text
    r = client.post("/v1/jobs/retrain", json={"base": "../elsewhere", "dry_run": True}, headers=AUTH)
    assert r.status_code == 422 and "base" in r.json()["detail"], r.text
    assert client.get("/v1/reviews", params={"offset": 2**53 - 1}, headers=AUTH).json()["items"] == []
