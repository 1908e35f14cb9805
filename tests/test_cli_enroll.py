"""`reid enroll --individual NAME PHOTO...` and the first-hour mistakes it answers in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MODEL, LeopardSet

from reid.catalog import Catalog
from reid.cli import main


def test_a_photo_without_a_name_is_a_helpful_one_line_error(leopard_images: LeopardSet,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    photo = leopard_images.root / "img/kyzyl/left_1.jpg"
    assert main(["enroll", str(photo)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("reid: error: ")
    assert "--individual" in err and "is a photo" in err and "UTF-8" not in err


@pytest.mark.parametrize("argv,words", [
    (["--individual", "Kyzyl", "labels.csv"], "without it"),
    (["--individual", "Kyzyl", "no-such-photo.jpg"], "no such file"),
    (["--individual", "  ", "x.jpg"], "needs a name"),
    (["--viewpoint", "left", "labels.csv"], "--viewpoint goes with --individual"),
])
def test_enroll_argument_mistakes_are_one_line(argv: list[str], words: str, leopard_images: LeopardSet,
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(leopard_images.root)
    if "x.jpg" in argv:
        (leopard_images.root / "x.jpg").write_bytes(b"not used")
    assert main(["enroll", *argv, "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and words in err, err


def test_enroll_photos_of_one_named_animal(leopard_images: LeopardSet, fresh_data_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    photos = [str(leopard_images.root / f"img/aybala/right_{k}.jpg") for k in (1, 2)]
    common = ["--data-dir", str(fresh_data_dir), "--model", str(MODEL), "-q"]
    assert main(["enroll", "--individual", "Aybala", "--viewpoint", "right", *photos, *common]) == 0
    out = capsys.readouterr()
    # one summary, on stdout (it used to be printed twice, once as a log line)
    assert out.out.count("enrolled") == 1 and "enrolled 2 new images" in out.out and "enrolled" not in out.err
    cat = Catalog(fresh_data_dir)
    images = cat.images_of(cat.individual_by_name("Aybala").id)
    assert [r.viewpoint for r in images] == ["right", "right"]
    assert main(["enroll", "--individual", "Aybala", "--viewpoint", "right", photos[0], *common]) == 0
    assert "enrolled 0 new images (1 already there" in capsys.readouterr().out
    # the same photo under another name is refused and reported, the catalogue keeps it as Aybala
    assert main(["enroll", "--individual", "Kyzyl", photos[0], *common]) == 1
    assert "already enrolled as 'Aybala'" in capsys.readouterr().err
    assert cat.find_image(images[0].sha256).individual == "Aybala"
    cat.close()


def test_synth_help_speaks_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--easy" in text and "RenderConfig" not in text


def test_synth_says_when_the_contact_sheet_is_a_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--individuals", "5", "--per-individual", "6", "--size", "64", "64", "--easy",
                 "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "wrote 30 images" in out and "at most 24 of the 30 images" in out
