"""The `reid` command line.

The main verbs run as a user runs them (a subprocess: enroll in conftest, identify, batch,
eval); quick checks call `reid.cli.main(argv)` in-process, which is the same code without
the ~3 s interpreter start.
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import INDIVIDUALS, MODEL, LeopardSet, make_coat, photograph, run_cli

from reid.cli import main

VERBS = ("enroll", "identify", "batch", "eval", "split", "serve", "check", "fit-verdicts")


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"reid {verb}" in out and "--data-dir" in out and "--model" in out


def test_top_level_help_lists_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in (*VERBS, "synth"):
        assert verb in out


def test_check_agrees_after_enroll(enrolled_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--data-dir", str(enrolled_dir), "--model", str(MODEL)]) == 0
    out = capsys.readouterr().out
    assert "7 individuals, 26 images" in out  # 6 x 2 flanks x 2 sightings + Righty's 2
    assert "index matches catalogue" in out


def test_check_finds_and_rebuilds_a_stale_index(leopard_images: LeopardSet, fresh_data_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from reid.batch import enroll_labels
    from reid.identify import open_pipeline

    pipe = open_pipeline(data_dir=fresh_data_dir, model_path=MODEL)
    enroll_labels(pipe, leopard_images.right_only_csv, progress=False)
    index = next((fresh_data_dir / "index").glob("*.faiss"))
    index.unlink()  # as after a crash between the catalogue commit and the index save
    args = ["check", "--data-dir", str(fresh_data_dir), "--model", str(MODEL)]
    assert main(args) == 1
    assert "missing or unreadable" in capsys.readouterr().out
    assert main([*args, "--rebuild"]) == 0
    assert "rebuilt: index matches catalogue" in capsys.readouterr().out
    assert main(args) == 0


def test_check_without_a_catalogue_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--data-dir", str(tmp_path / "nothing")]) == 2
    assert "reid: error: no catalogue" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_identify_a_new_view_ranks_the_individual_first(leopard_images: LeopardSet, enrolled_dir: Path) -> None:
    query = leopard_images.root / "img/kyzyl/left_3.jpg"  # sighting 3: never enrolled
    proc = run_cli("identify", query, "--viewpoint", "left", "--data-dir", enrolled_dir)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    assert lines[header].split() == ["rank", "identity", "score", "flank", "decision"]
    first = lines[header + 1].split()
    assert first[:2] == ["1", "Kyzyl"] and first[3] == "left"
    assert len(lines) - header - 1 == 5  # top-5 by default (6 left-flank individuals enrolled)


def test_identify_images_of_one_sighting_jointly(leopard_images: LeopardSet, enrolled_dir: Path) -> None:
    shots = [leopard_images.root / f"img/boran/left_{k}.jpg" for k in (3, 4)]
    proc = run_cli("identify", *shots, "--viewpoint", "left", "--sighting", "visit-7", "--json",
                   "--data-dir", enrolled_dir)
    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout)
    assert [a["sighting"] for a in answers] == ["visit-7", "visit-7"]
    assert {a["candidates"][0]["identity"] for a in answers} == {"Boran"}
    # pooled: each photo's score for Boran is the sighting's best evidence, so they agree
    assert answers[0]["candidates"][0]["score"] == answers[1]["candidates"][0]["score"]


def test_identify_json_still_answers_for_good_images_when_one_is_missing(
        leopard_images: LeopardSet, enrolled_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    good = leopard_images.root / "img/boran/right_4.jpg"
    missing = tmp_path / "no-such-photo.jpg"
    code = main(["identify", str(good), str(missing), "--json", "--viewpoint", "right", "--top-k", "3",
                 "--data-dir", str(enrolled_dir), "--model", str(MODEL)])
    captured = capsys.readouterr()
    assert code == 2
    assert "reid: error:" in captured.err and "no-such-photo.jpg" in captured.err
    results = json.loads(captured.out)
    assert [r["decision"] for r in results][1] == "error"
    assert results[0]["candidates"][0]["identity"] == "Boran"
    assert len(results[0]["candidates"]) == 3
    assert {c["viewpoint"] for c in results[0]["candidates"]} == {"right"}
    assert 0.0 <= results[0]["candidates"][0]["score"] <= 1.0


def test_identify_writes_an_evidence_picture(leopard_images: LeopardSet, enrolled_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    query = leopard_images.root / "img/kyzyl/left_3.jpg"
    out = tmp_path / "evidence.png"
    code = main(["identify", str(query), "--viewpoint", "left", "--json", "--evidence", str(out),
                 "--data-dir", str(enrolled_dir), "--model", str(MODEL)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    best = json.loads(captured.out)[0]["candidates"][0]
    assert best["identity"] == "Kyzyl" and best["inliers"] > 0
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[1] > picture.shape[0]  # query and gallery side by side


def _write_video(path: Path, seed: int) -> None:
    coat = make_coat(seed)
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 2.0, (320, 240))
    assert writer.isOpened()
    for _ in range(6):  # 3 s at 2 fps -> frames sampled at 0, 1, 2 s
        writer.write(photograph(coat, rng))
    writer.release()


def test_batch_over_a_folder(leopard_images: LeopardSet, enrolled_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "season"
    (folder / "station-a").mkdir(parents=True)
    (folder / "station-b" / "night").mkdir(parents=True)
    good = {
        "station-a/IMG_0001.JPG": leopard_images.root / "img/aybala/left_3.jpg",
        "station-b/night/IMG_0002.jpg": leopard_images.root / "img/sary/right_4.jpg",
    }
    for rel, src in good.items():
        (folder / rel).write_bytes(src.read_bytes())
    (folder / "station-a" / "notes.jpg").write_text("this is not a photo\n")
    data = (leopard_images.root / "img/tau-sheri/left_3.jpg").read_bytes()
    (folder / "station-b" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "station-a" / "readme.txt").write_text("ignored: not an image suffix")
    (folder / "station-a" / "._IMG_0001.JPG").write_bytes(b"macOS resource fork")  # skipped
    _write_video(folder / "station-b" / "clip.mp4", 1000 + 10 * INDIVIDUALS.index("Boran"))  # Boran's left coat
    out = tmp_path / "out" / "results.csv"

    proc = run_cli("batch", folder, "--out", out, "--data-dir", enrolled_dir, "-q", "--format", "ranks")
    assert proc.returncode == 0, proc.stderr

    with open(out, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["path", "decision", "rank", "identity", "score"]
        rows = list(reader)
    by_path: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    for rel in good:
        ranked = by_path[rel]
        assert [int(r["rank"]) for r in ranked] == [1, 2, 3, 4, 5]
        scores = [float(r["score"]) for r in ranked]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
        assert len({r["decision"] for r in ranked}) == 1 and ranked[0]["decision"] in ("match", "new", "review")
    assert by_path["station-a/IMG_0001.JPG"][0]["identity"] == "Aybala"
    assert by_path["station-b/night/IMG_0002.jpg"][0]["identity"] == "Sary"
    for bad in ("station-a/notes.jpg", "station-b/truncated.jpg"):
        assert by_path[bad] == [{"path": bad, "decision": "error", "rank": "", "identity": "", "score": ""}]
    frames = [p for p in by_path if p.startswith("station-b/clip.mp4#t=")]
    assert frames == ["station-b/clip.mp4#t=0.0s", "station-b/clip.mp4#t=1.0s", "station-b/clip.mp4#t=2.0s"]
    assert by_path[frames[0]][0]["identity"] == "Boran"
    assert not any("readme" in p or "._" in p for p in by_path)
    assert "truncated" in proc.stderr and "notes.jpg" in proc.stderr  # the messages go to the log

    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["files"] == 5 and summary["queries"] == 5
    assert summary["decisions"]["error"] == 2 and sum(summary["decisions"].values()) == 7
    assert {e["path"] for e in summary["errors"]} == {"station-a/notes.jpg", "station-b/truncated.jpg"}
    assert not list(out.parent.glob("*.tmp"))


def test_eval_prints_the_eval_md_metrics(leopard_images: LeopardSet, enrolled_dir: Path, tmp_path: Path) -> None:
    from reid.catalog import Catalog

    before = Catalog(enrolled_dir).counts()
    # REID_DATA_DIR is the user's catalogue: eval must use a temp one and leave this alone.
    proc = run_cli("eval", "--gallery", leopard_images.gallery_csv, "--queries", leopard_images.queries_csv,
                   "-q", env={"REID_DATA_DIR": str(enrolled_dir)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    for key in ("top1", "top5", "mrr", "new_auroc", "decision_accuracy", "n_known", "n_unknown",
                "throughput_images_per_s"):
        assert key in metrics
    assert metrics["n_known"] == 24 and metrics["n_unknown"] == 0 and metrics["new_auroc"] is None
    assert metrics["top1"] >= 0.95 and metrics["top5"] == 1.0
    assert metrics["gallery_individuals"] == 6  # a fresh catalogue: Righty is not in it
    assert Catalog(enrolled_dir).counts() == before
    assert not (tmp_path / "reid-data").exists()


def test_split_writes_disjoint_gallery_and_queries(leopard_images: LeopardSet, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from reid.labels import read_labels

    out = tmp_path / "split"
    assert main(["split", str(leopard_images.labels_csv), "--out-dir", str(out), "--new-fraction", "0.34",
                 "--seed", "3"]) == 0

    gallery = read_labels(out / "gallery.csv", require_identity=True)
    queries = read_labels(out / "queries.csv")
    assert len(gallery) + len(queries) == 48
    assert all(r.file.is_file() for r in gallery + queries)  # paths rewritten relative to the out dir
    g_sightings = {(r.identity, r.sighting) for r in gallery}
    q_sightings = {(r.identity, r.sighting) for r in queries}
    assert not g_sightings & q_sightings
    new = {r.identity for r in queries} - {r.identity for r in gallery}
    assert len(new) == 2  # round(0.34 * 6)
    assert "2 individuals not in the gallery" in capsys.readouterr().out


@pytest.mark.parametrize("verb", ["enroll", "batch"])
def test_csv_with_a_missing_column_names_it(verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_text("file,identity\nimg/a.jpg,Kyzyl\n" if verb == "batch" else "path,viewpoint\nimg/a.jpg,left\n")
    argv = [verb, str(bad), "--data-dir", str(tmp_path / "data")] + (["--out", str(tmp_path / "r.csv")]
                                                                      if verb == "batch" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("reid: error:") and ("identity" if verb == "enroll" else "path") in err
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def test_bad_labels_from_a_subprocess_exit_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_text("path,identity,lat\nimg/a.jpg,Kyzyl,north\n")
    proc = run_cli("enroll", bad, "--data-dir", tmp_path / "data")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"reid: error: {bad}, line 2: lat is 'north', not a number"


def test_a_projects_own_calibration_is_fitted_by_eval_and_used_through_reid_calibration(
        leopard_images: LeopardSet, enrolled_dir: Path, tmp_path: Path) -> None:
    from reid.calibrate import Calibrator

    cal_path = tmp_path / "calibration.json"
    proc = run_cli("eval", "--gallery", leopard_images.gallery_csv, "--queries", leopard_images.queries_csv,
                   "--ranking", "global", "--fit-calibration", cal_path, "-q", "--data-dir", tmp_path / "eval")
    assert proc.returncode == 0, proc.stderr
    cal = Calibrator.load(cal_path)
    assert cal.features == ["cosine"] and cal.model_id.startswith("imagenet-lite0@")
    query = leopard_images.root / "img/kyzyl/left_3.jpg"
    args = ("identify", query, "--viewpoint", "left", "--json", "--data-dir", enrolled_dir)
    shipped = json.loads(run_cli(*args).stdout)[0]["candidates"]
    own = json.loads(run_cli(*args, env={"REID_CALIBRATION": str(cal_path)}).stdout)[0]["candidates"]
    # the scores are the project's calibration applied to the same evidence, not the shipped one's
    assert [c["score"] for c in own] == pytest.approx(list(cal.predict([[c["cosine"]] for c in own])), abs=1e-5)
    assert [c["score"] for c in own] != [c["score"] for c in shipped]


def test_a_bad_setting_in_the_environment_is_one_line_naming_it(tmp_path: Path) -> None:
    proc = run_cli("check", "--data-dir", tmp_path / "data", env={"REID_SCENE_CHECK_SCOPE": "everywhere"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("reid: error: REID_SCENE_CHECK_SCOPE must be one of 'station', 'all', 'auto', not 'everywhere'")


def test_a_bad_number_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    proc = run_cli("check", "--data-dir", tmp_path / "data", env={"REID_TOP_K": "five"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("reid: error: REID_TOP_K='five' is not valid")


def test_an_unreadable_calibration_is_one_line_and_exit_2(tmp_path: Path, leopard_images: LeopardSet) -> None:
    bad = tmp_path / "calibration.json"
    bad.write_text("not json")
    photo = leopard_images.strangers[0]
    proc = run_cli("identify", photo, "--data-dir", tmp_path / "data", env={"REID_CALIBRATION": str(bad)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"reid: error: calibration {bad} cannot be read")


def test_zip_with_a_parent_path_member_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "season.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/photo.jpg", b"not really")
        zf.writestr("../evil.jpg", b"would land outside")
    assert main(["batch", str(archive), "--out", str(tmp_path / "r.csv"), "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "../evil.jpg" in err and "unsafe" in err
    assert not (tmp_path / "evil.jpg").exists()
    assert not (tmp_path / "r.csv").exists()


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["identify", "x.jpg", "--viewpoint", "sideways"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_calibrate_refits_on_the_catalogue_and_promotes_only_when_better(
        enrolled_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        leopard_images: LeopardSet) -> None:
    import shutil

    from reid.calibrate import Calibrator, project_calibration_path
    from reid.catalog import Catalog

    data_dir = tmp_path / "data"
    shutil.copytree(enrolled_dir, data_dir)
    # in use: a calibration that calls every candidate 98% certain (overconfident, like a
    # synthetic-data calibration on real photos)
    bad = tmp_path / "bad.json"
    Calibrator(features=["cosine", "local"], coef=[0.0, 0.0], intercept=4.0, fitted_on="test").save(bad)
    monkeypatch.setenv("REID_CALIBRATION", str(bad))
    args = ["calibrate", "--data-dir", str(data_dir), "--new-fraction", "0", "-q"]
    assert main(args) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["better"] and report["refit_held_out"]["log_loss"] < report["current"]["log_loss"]
    assert report["current"]["ece"] > 0.5 > report["refit_held_out"]["ece"]
    own = Path(report["written_to"])
    assert own.is_file() and own.parent == data_dir / "calibration"
    assert "REID_CALIBRATION" in out.err and "still wins" in out.err
    cal = Calibrator.load(own)
    assert cal.features == ["cosine", "local"] and cal.model_id and "reid calibrate on" in cal.fitted_on
    assert own == project_calibration_path(data_dir, cal.model_id)
    catalog = Catalog(data_dir)
    assert catalog.audit_rows("calibrate")[0]["actor"] == "cli"
    catalog.close()

    # without the variable, identify scores with the project's calibration
    monkeypatch.delenv("REID_CALIBRATION")
    query = leopard_images.root / "img/kyzyl/left_3.jpg"
    assert main(["identify", str(query), "--viewpoint", "left", "--json", "--data-dir", str(data_dir)]) == 0
    cands = json.loads(capsys.readouterr().out)[0]["candidates"]
    assert cands[0]["identity"] == "Kyzyl"
    from reid.identify import open_pipeline

    in_use = open_pipeline(data_dir=data_dir)
    assert in_use.calibration_source == "project" and in_use.calibrator.fitted_on == cal.fitted_on
    in_use.close()
    assert [c["score"] for c in cands] == pytest.approx(
        list(cal.predict([[c["cosine"], np.log1p(c["local_score"])] for c in cands])), abs=1e-3)

    # --dry-run measures against it and writes nothing
    before = own.read_bytes()
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["written_to"] is None and "--dry-run" in out.err
    assert own.read_bytes() == before


def test_calibrate_with_too_few_repeat_sightings_says_so(tmp_path: Path, leopard_images: LeopardSet,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    one = tmp_path / "one.csv"
    one.write_text("path,identity,viewpoint,sighting\n"
                   f"{leopard_images.root / 'img/kyzyl/left_1.jpg'},Kyzyl,left,a\n"
                   f"{leopard_images.root / 'img/kyzyl/left_2.jpg'},Kyzyl,left,b\n")
    assert main(["enroll", str(one), "--data-dir", str(tmp_path / "data"), "-q"]) == 0
    capsys.readouterr()
    assert main(["calibrate", "--data-dir", str(tmp_path / "data"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "queries of known individuals to calibrate on" in err and "Traceback" not in err
    assert not (tmp_path / "data" / "calibration").exists()
