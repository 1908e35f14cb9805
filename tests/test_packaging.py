"""`pip install .` (not only -e) ships what a user needs: every package, the templates and
static files, and the default model with its calibration (offline: no index, no isolation)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO

#: What the build reads; copied so that building leaves no build/ or egg-info in the checkout.
SOURCES = ("pyproject.toml", "README.md", "reid", "service", "models")

PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import reid, reid_models
from reid.settings import default_model_path
from reid.model import load_checkpoint
path = default_model_path()
print(json.dumps({"reid": reid.__file__, "models": list(reid_models.__path__), "model": str(path),
                  "version": load_checkpoint(path).model_id}))
"""


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_non_editable_install_finds_the_default_model(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    _pip("wheel", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src))
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()

    # every package of the checkout is in it (a new subpackage missing from pyproject.toml fails here)
    packages = {str(p.parent.relative_to(REPO)) for top in ("reid", "service") for p in (REPO / top).rglob("__init__.py")}
    assert packages <= {str(Path(n).parent) for n in names if n.endswith("__init__.py")}
    assert {"service/templates/base.html", "reid/exports/templates/report.html.j2"} <= set(names)
    # and nothing that is not the program: no tests, no evaluation photos
    assert not [n for n in names if n.startswith("tests/") or "nyala" in n.lower() or n.endswith(".jpg")]

    site = tmp_path / "site"
    _pip("install", "--target", str(site), str(wheel))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REID_MODEL")}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(site)], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert Path(found["reid"]).is_relative_to(site)  # the installed copy, not the checkout
    model = Path(found["model"])
    assert model.is_relative_to(site) and model.is_file()
    assert model.name == (REPO / "models" / "DEFAULT").read_text().strip()
    assert model.with_name(model.name + ".calibration.json").is_file()  # its calibration ships beside it
    run_record = REPO / "models" / (model.stem + ".run.json")
    assert not run_record.exists() or (model.parent / run_record.name).is_file()
    assert found["version"]
