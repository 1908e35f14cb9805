"""Season batch and enrollment through the one pipeline (in-process, on the session's catalogue)."""

from __future__ import annotations

import csv
import statistics
import zipfile
from pathlib import Path

import pytest
from conftest import MODEL, LeopardSet

from reid.batch import enroll_labels, open_source, run_batch, safe_extract_zip
from reid.errors import ReidError
from reid.labels import read_labels


def read_results(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _top(pipeline, path: Path, viewpoint: str) -> list[tuple[str, float, str]]:
    res = pipeline.identify([pipeline.load_query(path, viewpoint=viewpoint)], audit=False)[0]
    return [(c.identity, c.score, c.viewpoint) for c in res.candidates]


def test_left_flank_query_never_gets_a_right_flank_only_individual(pipeline, leopard_images: LeopardSet) -> None:
    for left_view in leopard_images.righty_left:
        candidates = _top(pipeline, left_view, "left")
        assert candidates, "six individuals have left flanks enrolled"
        assert "Righty" not in [identity for identity, _, _ in candidates]
        assert {flank for _, _, flank in candidates} == {"left"}
    # ...while a right-flank view of Righty finds it: the filter, not the model, kept it out above.
    right_view = leopard_images.root / "img/righty/right_1.jpg"
    assert _top(pipeline, right_view, "right")[0][0] == "Righty"


def test_unseen_individual_scores_lower_than_a_known_one(pipeline, leopard_images: LeopardSet) -> None:
    known = [_top(pipeline, leopard_images.root / f"img/{slug}/left_3.jpg", "left")
             for slug in ("tau-sheri", "aybala", "kyzyl", "ustyurt-2", "boran", "sary")]
    assert all(c[0][0] == name for c, name in zip(known, leopard_images.individuals, strict=True))
    known_median = statistics.median(c[0][1] for c in known)
    for stranger in leopard_images.strangers:
        assert _top(pipeline, stranger, "left")[0][1] < known_median


def test_reenrolling_the_same_csv_adds_nothing(pipeline, leopard_images: LeopardSet) -> None:
    before, index_size = pipeline.catalog.counts(), len(pipeline.gallery)
    summary = enroll_labels(pipeline, leopard_images.gallery_csv, progress=False)
    assert (summary.enrolled, summary.already, summary.errors) == (0, 24, [])
    assert pipeline.catalog.counts() == before and len(pipeline.gallery) == index_size
    assert pipeline.gallery.check(pipeline.catalog, pipeline.model_id).ok


def test_enroll_skips_bad_images_and_keeps_going(leopard_images: LeopardSet, fresh_data_dir: Path,
                                                 tmp_path: Path) -> None:
    from reid.identify import open_pipeline

    img = leopard_images.root / "img"
    (tmp_path / "broken.jpg").write_text("not a jpeg")
    rows = [
        ("ok1.jpg", img / "kyzyl/left_1.jpg", "Kyzyl"),
        ("broken.jpg", None, "Kyzyl"),
        ("missing.jpg", None, "Kyzyl"),
        ("ok2.jpg", img / "aybala/left_1.jpg", "Aybala"),
        ("dup.jpg", img / "kyzyl/left_1.jpg", "Kyzyl"),  # the same file twice: stored once
        ("other.jpg", img / "kyzyl/left_1.jpg", "Aybala"),  # ...but never under two names
    ]
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "identity", "viewpoint"])
        for name, src, identity in rows:
            if src is not None:
                (tmp_path / name).write_bytes(src.read_bytes())
            w.writerow([name, identity, "left"])
    pipe = open_pipeline(data_dir=fresh_data_dir, model_path=MODEL)
    summary = enroll_labels(pipe, tmp_path / "labels.csv", progress=False)
    assert summary.enrolled == 2 and summary.already == 1
    assert [p for p, _ in summary.errors] == ["broken.jpg", "missing.jpg", "other.jpg"]
    assert "Kyzyl" in dict(summary.errors)["other.jpg"]
    assert pipe.catalog.counts() == {"individuals": 2, "images": 2}
    assert pipe.gallery.check(pipe.catalog, pipe.model_id).ok
    # the metadata of the CSV reached the catalogue
    rec = pipe.catalog.images_of(pipe.catalog.get_individual("Kyzyl").id)[0]
    assert rec.viewpoint == "left" and rec.source_path == "ok1.jpg"


def test_batch_over_a_queries_csv_keeps_its_paths(pipeline, leopard_images: LeopardSet, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    summary = run_batch(pipeline, leopard_images.queries_csv, out, top_k=5, progress=False, fmt="ranks")
    rows = read_results(out)
    truth = {r.path: r.identity for r in read_labels(leopard_images.queries_csv)}
    assert summary.queries == 24 and summary.files == 24 and len(rows) == 24 * 5
    assert [r["path"] for r in rows[::5]] == list(truth)  # input order, paths exactly as in the CSV
    top1 = [r for r in rows if r["rank"] == "1"]
    assert sum(r["identity"] == truth[r["path"]] for r in top1) == 24
    # flank filtering through the CSV's viewpoint column: right-flank queries see Righty, left never do
    assert not any(r["identity"] == "Righty" for r in rows if "/left_" in r["path"])
    assert out.with_suffix(".summary.json").is_file()


def test_batch_over_a_zip_uses_member_paths(pipeline, leopard_images: LeopardSet, tmp_path: Path) -> None:
    archive = tmp_path / "season.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(leopard_images.root / "img/sary/left_4.jpg", "cam1/a.jpg")
        zf.writestr("cam1/empty.jpg", b"")
        zf.writestr("__MACOSX/cam1/._a.jpg", b"resource fork")
    out = tmp_path / "r.csv"
    summary = run_batch(pipeline, archive, out, progress=False, fmt="ranks")
    rows = read_results(out)
    assert [r["path"] for r in rows] == ["cam1/a.jpg"] * 5 + ["cam1/empty.jpg"]
    assert rows[0]["identity"] == "Sary" and rows[-1]["decision"] == "error"
    assert summary.decisions["error"] == 1


@pytest.mark.parametrize("member", ["../evil.jpg", "/etc/evil.jpg", "a/../../evil.jpg", "C:/evil.jpg"])
def test_zip_slip_members_are_refused(member: str, tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(member, b"x")
    dest = tmp_path / "x" / "y"
    dest.mkdir(parents=True)
    with pytest.raises(ReidError, match="unsafe"):
        safe_extract_zip(archive, dest)
    assert not list(tmp_path.rglob("evil.jpg"))


def test_not_a_zip_and_missing_sources(tmp_path: Path) -> None:
    (tmp_path / "fake.zip").write_text("nope")
    with pytest.raises(ReidError, match="not a readable zip"):
        open_source(tmp_path / "fake.zip")
    with pytest.raises(ReidError, match="no such file"):
        open_source(tmp_path / "nowhere")


def test_a_failed_batch_leaves_no_partial_results(pipeline, leopard_images: LeopardSet, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.csv"
    out.write_text("previous results\n")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "identify", boom)
    with pytest.raises(KeyboardInterrupt):
        run_batch(pipeline, leopard_images.queries_csv, out, progress=False)
    assert out.read_text() == "previous results\n"  # untouched: the rename never happened
    assert not list(tmp_path.glob(".*tmp"))


def test_a_burst_is_not_cut_between_embedding_chunks(pipeline, leopard_images: LeopardSet,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import reid.batch as batch

    rows = sorted(read_labels(leopard_images.queries_csv), key=lambda r: r.sighting)[:9]  # bursts of 2
    items = [batch.BatchItem(path=r.path, file=r.file, row=r) for r in rows]
    calls: list[list[str | None]] = []
    real_identify = pipeline.identify

    def recording_identify(queries, **kw):
        calls.append([q.sighting for q in queries])
        return real_identify(queries, **kw)

    monkeypatch.setattr(pipeline, "identify", recording_identify)
    outcomes = list(batch.iter_identified(pipeline, items, chunk=3, progress=False, audit=False))
    assert [o.path for o in outcomes] == [r.path for r in rows]  # input order kept
    assert len(calls) > 1 and sum(map(len, calls)) == len(rows)
    for earlier, later in zip(calls, calls[1:], strict=False):
        assert not set(earlier) & set(later)  # no sighting split across two identify calls
