"""The review queue and catalogue curation (reid.review, reid.curation) on a real catalogue copy.

Real generated photos through the real model, keypoints and calibration; each test works on
its own copy of the session's enrolled data dir, so decisions and merges never leak.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from conftest import MODEL, LeopardSet, run_cli
from review_helpers import copy_catalog

from reid import curation, review
from reid.errors import ConflictError, NotFoundError, ReidError
from reid.identify import Identification, Pipeline
from reid.settings import Settings


@pytest.fixture
def pipe(enrolled_dir: Path, pipeline: Pipeline, tmp_path: Path):
    """A pipeline on a private copy of the enrolled catalogue (the loaded model is shared)."""
    data = copy_catalog(enrolled_dir, pipeline, tmp_path / "data")
    p = Pipeline(Settings.from_env(data_dir=data, model_path=MODEL), checkpoint=pipeline.checkpoint)
    yield p
    p.close()


def identify(p: Pipeline, path: Path, viewpoint: str = "unknown", **kw) -> tuple[Identification, review.ReviewItem]:
    q = p.load_query(path, viewpoint=viewpoint, **kw)
    (res,) = p.identify([q])
    item = review.record_identification(p, q, res, path=path, source="test")
    assert item is not None
    return res, item


def snapshot(p: Pipeline) -> dict[str, list[tuple]]:
    """Everything curation may touch, as plain rows."""
    con = p.catalog._connect()
    return {t: [tuple(r) for r in con.execute(f"SELECT * FROM {t} ORDER BY 1, 2")]
            for t in ("individuals", "images", "best_photos")} | {
        "items": [tuple(r) for r in con.execute("SELECT id, individual_id FROM review_items ORDER BY id")],
        "decisions": [tuple(r) for r in con.execute("SELECT id, individual_id FROM review_decisions ORDER BY id")]}


def score_of(res: Identification, individual_id: int) -> tuple[int | None, float]:
    for c in res.candidates:
        if c.individual_id == individual_id:
            return c.rank, c.score
    return None, 0.0


def test_identifications_queue_once_per_photo_and_matches_are_auto_accepted(pipe, leopard_images: LeopardSet):
    res, item = identify(pipe, leopard_images.strangers[0], "left")
    assert res.decision != "match" and item.status == "pending" and item.verdict == res.decision
    assert [c.individual_id for c in item.candidates] == [c.individual_id for c in res.candidates]
    assert (pipe.catalog.data_dir / item.stored_path).read_bytes() == leopard_images.strangers[0].read_bytes()
    assert item.file_name == str(leopard_images.strangers[0]) and item.model_id == pipe.model_id
    _, again = identify(pipe, leopard_images.strangers[0], "left")
    assert again.id == item.id and review.counts(pipe.catalog)["pending"] == 1
    # a confident match is stored auto-accepted, and enrolls nothing
    images_before = pipe.catalog.counts()["images"]
    match = Identification(name="m.jpg", decision="match", candidates=res.candidates[:1])
    q = pipe.load_query(leopard_images.strangers[1])
    auto = review.record_identification(pipe, q, match, path=leopard_images.strangers[1])
    assert auto.status == "auto" and pipe.catalog.counts()["images"] == images_before
    assert review.record_identification(pipe, q, Identification("e", "error", [])) is None


def test_confirm_enrolls_at_once_and_the_next_photo_ranks_it_first(pipe, leopard_images: LeopardSet):
    righty = pipe.catalog.individual_by_name("Righty")
    before, _ = identify(pipe, leopard_images.righty_left[1], "left")
    rank0, p0 = score_of(before, righty.id)
    assert rank0 is None  # only right flanks enrolled: a left-flank photo cannot be compared
    _, item = identify(pipe, leopard_images.righty_left[0], "left")
    decided = review.decide(pipe, item.id, "confirm", individual_id=righty.id, actor="ana")
    assert decided.status == "decided" and decided.individual_id == righty.id and decided.image_id
    assert pipe.catalog.get_image(decided.image_id).individual_id == righty.id
    dec = decided.decisions[-1]
    assert dec["actor"] == "ana" and dec["proposed_verdict"] == item.verdict
    assert dec["proposed_individual_id"] == (item.candidates[0].individual_id if item.candidates else None)
    after, _ = identify(pipe, leopard_images.righty_left[1], "left")  # same process: no restart
    rank1, p1 = score_of(after, righty.id)
    assert rank1 == 1 and p1 > p0
    # deciding again is a conflict, not a second enrollment
    with pytest.raises(ConflictError):
        review.decide(pipe, item.id, "confirm", individual_id=righty.id)
    # undo: the photo leaves the catalogue and the index; the item is pending again
    undone = review.undo(pipe, item.id, actor="ana")
    assert undone.status == "pending" and undone.image_id is None
    with pytest.raises(NotFoundError):
        pipe.catalog.get_image(decided.image_id)
    assert decided.image_id not in set(pipe.gallery.ids().tolist())
    again, _ = identify(pipe, leopard_images.righty_left[1], "left")
    assert score_of(again, righty.id)[0] is None
    assert any(r["action"] == "remove_image" for r in pipe.catalog.audit_rows())


def test_confirm_by_exact_name_digits_are_a_name(pipe, leopard_images: LeopardSet):
    digits = pipe.catalog.create_individual("1")  # id 1 is someone else
    assert digits.id != 1
    _, item = identify(pipe, leopard_images.strangers[0], "left")
    decided = review.decide(pipe, item.id, "confirm", name="1")
    assert decided.individual_id == digits.id
    with pytest.raises(NotFoundError):
        review.decide(pipe, identify(pipe, leopard_images.strangers[1], "left")[1].id, "confirm", name="no such")
    with pytest.raises(ReidError):
        review.decide(pipe, item.id, "confirm")


def test_new_individual_then_the_same_photo_is_a_match_and_undo_removes_it(pipe, leopard_images: LeopardSet):
    _, item = identify(pipe, leopard_images.strangers[0], "left")
    (decided,) = review.decide_new(pipe, [item.id], "Stranger", actor="ana")
    stranger = pipe.catalog.individual_by_name("Stranger")
    assert decided.action == "new" and decided.individual_id == stranger.id and stranger.image_count == 1
    res, _ = identify(pipe, leopard_images.strangers[0], "left")
    assert res.decision == "match" and res.candidates[0].individual_id == stranger.id
    with pytest.raises(ConflictError):  # the name is taken now
        review.decide(pipe, identify(pipe, leopard_images.strangers[1], "left")[1].id, "new", name="Stranger")
    review.undo(pipe, item.id)
    with pytest.raises(NotFoundError):
        pipe.catalog.individual_by_name("Stranger")


def test_several_items_become_one_new_individual(pipe, leopard_images: LeopardSet):
    items = [identify(pipe, p, "left")[1] for p in leopard_images.strangers]
    decided = review.decide_new(pipe, [i.id for i in items], "Stranger")
    ind = pipe.catalog.individual_by_name("Stranger")
    assert {d.individual_id for d in decided} == {ind.id} and ind.image_count == 2


def test_not_identifiable_skip_and_their_undo(pipe, leopard_images: LeopardSet):
    _, a = identify(pipe, leopard_images.strangers[0], "left")
    _, b = identify(pipe, leopard_images.strangers[1], "left")
    images = pipe.catalog.counts()["images"]
    skipped = review.decide(pipe, a.id, "skip", actor="ana")
    assert skipped.status == "pending" and skipped.skips == 1
    pending, total = review.list_items(pipe.catalog)
    assert total == 2 and [i.id for i in pending] == [b.id, a.id]  # skipped ones last
    blurred = review.decide(pipe, b.id, "not_identifiable", actor="ana")
    assert blurred.status == "decided" and blurred.action == "not_identifiable"
    assert pipe.catalog.counts()["images"] == images
    assert review.list_items(pipe.catalog, status="decided")[1] == 1
    assert review.undo(pipe, b.id).status == "pending"
    assert review.undo(pipe, a.id).skips == 0
    with pytest.raises(ConflictError):
        review.undo(pipe, a.id)  # nothing left to undo


def test_concurrent_decisions_one_wins_the_other_conflicts(pipe, leopard_images: LeopardSet):
    _, item = identify(pipe, leopard_images.strangers[0], "left")
    kyzyl, boran = pipe.catalog.individual_by_name("Kyzyl"), pipe.catalog.individual_by_name("Boran")
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def decide(ind_id: int) -> None:
        barrier.wait()
        try:
            outcomes.append(review.decide(pipe, item.id, "confirm", individual_id=ind_id))
        except ConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=decide, args=(i,)) for i in (kyzyl.id, boran.id)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [o for o in outcomes if isinstance(o, review.ReviewItem)]
    assert len(wins) == 1 and sum(isinstance(o, ConflictError) for o in outcomes) == 1
    image = pipe.catalog.get_image(wins[0].image_id)
    assert image.individual_id == wins[0].individual_id  # filed under the winner only
    assert len(pipe.catalog.images_of(kyzyl.id)) + len(pipe.catalog.images_of(boran.id)) == 9
    with pytest.raises(ConflictError):  # a stale version is refused too
        review.decide(pipe, item.id, "skip", version=0)


def test_merge_moves_everything_and_undo_restores_exactly(pipe, leopard_images: LeopardSet):
    kyzyl, boran = pipe.catalog.individual_by_name("Kyzyl"), pipe.catalog.individual_by_name("Boran")
    _, item = identify(pipe, leopard_images.strangers[0], "left")
    review.decide(pipe, item.id, "confirm", individual_id=kyzyl.id)
    curation.set_best_photo(pipe.catalog, kyzyl.id, pipe.catalog.images_of(kyzyl.id)[0].id)
    before = snapshot(pipe)
    rec = curation.merge(pipe, kyzyl.id, boran.id, actor="admin")
    with pytest.raises(NotFoundError):
        pipe.catalog.individual_by_id(kyzyl.id)
    assert len(pipe.catalog.images_of(boran.id)) == 4 + 5
    assert review.get_item(pipe.catalog, item.id).individual_id == boran.id
    assert curation.best_photos(pipe.catalog, boran.id)  # Boran had none: Kyzyl's follows
    res, _ = identify(pipe, leopard_images.root / "img/kyzyl/left_3.jpg", "left")
    assert kyzyl.id not in [c.individual_id for c in res.candidates]  # the keypoint index knows too
    assert all(c.individual_id != kyzyl.id for c in review.get_item(pipe.catalog, item.id).candidates)
    newcomer = pipe.catalog.create_individual("After merge")
    assert newcomer.id > kyzyl.id  # the merged id is never reused
    curation.undo(pipe, rec.id, actor="admin")
    after = snapshot(pipe)
    after["individuals"] = [r for r in after["individuals"] if r[1] != "After merge"]
    after["items"] = [r for r in after["items"] if r in before["items"] or r[0] not in dict(before["items"])]
    after["items"] = [r for r in after["items"] if r[0] in dict(before["items"])]
    assert after == before
    with pytest.raises(ConflictError):
        curation.undo(pipe, rec.id)
    with pytest.raises(ReidError):
        curation.merge(pipe, boran.id, boran.id)


def test_move_rename_best_photo_each_undone_exactly(pipe):
    kyzyl, boran = pipe.catalog.individual_by_name("Kyzyl"), pipe.catalog.individual_by_name("Boran")
    before = snapshot(pipe)
    image = pipe.catalog.images_of(kyzyl.id)[0]
    best = curation.set_best_photo(pipe.catalog, kyzyl.id, image.id)
    moved = curation.move_image(pipe, image.id, boran.id)
    assert pipe.catalog.get_image(image.id).individual_id == boran.id
    assert curation.best_photos(pipe.catalog, kyzyl.id) == {}
    renamed = curation.update_individual(pipe.catalog, kyzyl.id, name="Kyzyl-1", sex="female", notes="scar")
    assert pipe.catalog.individual_by_id(kyzyl.id).name == "Kyzyl-1"
    with pytest.raises(ConflictError):
        curation.update_individual(pipe.catalog, kyzyl.id, name="Boran")
    for rec in (renamed, moved, best):
        curation.undo(pipe, rec.id)
    assert snapshot(pipe) == before
    assert {r["action"] for r in pipe.catalog.audit_rows(limit=20)} >= {"move", "best_photo", "update_individual",
                                                                         "undo_move", "undo_update"}


def test_archive_retention_and_confirmations_since(pipe, leopard_images: LeopardSet):
    start = "2000-01-01T00:00:00+00:00"
    _, a = identify(pipe, leopard_images.strangers[0], "left")
    _, b = identify(pipe, leopard_images.strangers[1], "left")
    review.decide(pipe, a.id, "confirm", individual_id=pipe.catalog.individual_by_name("Sary").id)
    review.decide(pipe, b.id, "not_identifiable")
    assert review.confirmations_since(pipe.catalog, start) == 1
    assert review.confirmations_since(pipe.catalog, "2999-01-01T00:00:00+00:00") == 0
    assert review.archive_decided(pipe.catalog) == 2
    assert review.counts(pipe.catalog)["archived"] == 2 and review.list_items(pipe.catalog)[1] == 0
    assert review.purge_expired(pipe.catalog, 30) == 0  # decided just now: kept
    pipe.catalog._connect().execute("UPDATE review_items SET decided_at = '2001-01-01T00:00:00+00:00'")
    assert review.purge_expired(pipe.catalog, 30) == 2
    assert review.counts(pipe.catalog)["archived"] == 0
    assert len(pipe.catalog.audit_rows("review_purge")) == 2
    assert pipe.catalog.counts()["images"] == 27  # the confirmed photo stays in the catalogue


def test_batch_and_cli_queue_decide_and_undo(pipe, leopard_images: LeopardSet, tmp_path: Path):
    data = pipe.catalog.data_dir
    pipe.close()
    folder = tmp_path / "season"
    folder.mkdir()
    for p in leopard_images.strangers:
        shutil.copy(p, folder / p.name)
    one = run_cli("identify", folder / leopard_images.strangers[0].name, "--viewpoint", "left", "--data-dir", data)
    assert one.returncode == 0, one.stderr
    proc = run_cli("batch", folder, "--out", tmp_path / "results.csv", "--data-dir", data, "-q")
    assert proc.returncode == 0, proc.stderr
    listed = run_cli("review", "list", "--json", "--data-dir", data)
    assert listed.returncode == 0, listed.stderr
    import json

    items = json.loads(listed.stdout)["items"]
    # `reid identify` and `reid batch` of the same photo: one item (its source says who came first)
    assert len(items) == 2 and {i["status"] for i in items} == {"pending"}
    assert sorted(i["source"] for i in items) == ["batch", "cli"]
    assert run_cli("batch", folder, "--out", tmp_path / "r2.csv", "--data-dir", data, "-q").returncode == 0
    assert json.loads(run_cli("review", "list", "--json", "--data-dir", data).stdout)["items"][0]["id"] == items[0]["id"]
    ids = [str(i["id"]) for i in items]
    new = run_cli("review", "decide", *ids, "new", "--name", "Stranger", "--data-dir", data)
    assert new.returncode == 0, new.stderr
    assert "-> Stranger" in new.stdout
    bad = run_cli("review", "decide", ids[0], "confirm", "--data-dir", data)
    assert bad.returncode == 2 and bad.stderr.startswith("reid: error:")
    assert run_cli("review", "undo", ids[0], "--data-dir", data).returncode == 0
    status = json.loads(run_cli("review", "list", "--status", "all", "--json", "--data-dir", data).stdout)
    assert sorted(i["status"] for i in status["items"]) == ["decided", "pending"]
    again = run_cli("review", "undo", ids[0], "--data-dir", data)
    assert again.returncode == 2 and "no decision to undo" in again.stderr
