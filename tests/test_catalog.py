"""SQLite catalogue and FAISS gallery: persistence, dedupe, audit, rebuild when stale."""

import sqlite3

import numpy as np
import pytest

from reid.catalog import Catalog, normalise_viewpoint
from reid.errors import NotFoundError, ReidError
from reid.gallery import Gallery


def _vec(seed, dim=8):
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _add(cat, ind, n, data=b"img", viewpoint="left", model="m@1"):
    sha, rel = cat.store_file(data + str(n).encode(), ".jpg")
    return cat.add_image(individual_id=ind.id, sha256=sha, stored_path=rel, box=None, viewpoint=viewpoint,
                         model_id=model, vector=_vec(n))


def test_individuals_and_images(tmp_path):
    cat = Catalog(tmp_path)
    tau = cat.create_individual("Tau Sheri", sex="male")
    assert cat.get_individual("Tau Sheri").id == tau.id == cat.get_individual(tau.id).id
    with pytest.raises(ReidError, match="already exists"):
        cat.create_individual("Tau Sheri")
    with pytest.raises(NotFoundError):
        cat.get_individual("nobody")
    with pytest.raises(NotFoundError):
        cat.get_individual(999)
    rec, created = _add(cat, tau, 1)
    assert created and rec.individual == "Tau Sheri" and rec.viewpoint == "left"
    assert (tmp_path / rec.stored_path).read_bytes() == b"img1"
    rec2, created2 = _add(cat, tau, 1)  # same bytes again
    assert not created2 and rec2.id == rec.id
    assert cat.counts() == {"individuals": 1, "images": 1}
    other = cat.create_individual("Ayu")
    with pytest.raises(ReidError, match="already enrolled as 'Tau Sheri'"):
        _add(cat, other, 1)
    actions = [r["action"] for r in cat.audit_rows()]
    assert actions.count("enroll_image") == 1 and actions.count("create_individual") == 2


def test_catalog_is_wal_and_survives_reopen(tmp_path):
    cat = Catalog(tmp_path)
    ind = cat.create_individual("A")
    _add(cat, ind, 1)
    cat.close()
    con = sqlite3.connect(tmp_path / "catalog.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = Catalog(tmp_path)
    entries, vectors = again.gallery("m@1")
    assert [e.individual for e in entries] == ["A"] and vectors.shape == (1, 8)


def test_failed_transaction_leaves_nothing(tmp_path):
    cat = Catalog(tmp_path)
    with pytest.raises(RuntimeError), cat.transaction() as con:
        con.execute("INSERT INTO individuals(name, created_at) VALUES('ghost', 'now')")
        raise RuntimeError("boom")
    assert cat.list_individuals() == []


def test_viewpoints_normalised():
    assert normalise_viewpoint("Left ") == "left"
    assert normalise_viewpoint("left flank, partly") == "unknown"
    assert normalise_viewpoint(None) == "unknown"


def test_gallery_search_persist_and_rebuild(tmp_path):
    cat = Catalog(tmp_path)
    a, b = cat.create_individual("A"), cat.create_individual("B")
    recs = [_add(cat, a, i)[0] for i in range(3)] + [_add(cat, b, i)[0] for i in range(3, 6)]
    gallery = Gallery.open(cat, "m@1", 8)
    assert len(gallery) == 6 and gallery.check(cat, "m@1").ok
    sims, ids = gallery.search(_vec(4)[None], 2)
    assert ids[0, 0] == recs[4].id and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    # A crash between the catalogue commit and the index save leaves the index stale...
    _add(cat, b, 6)
    reopened = Gallery(8, Gallery.index_path(tmp_path, "m@1"))
    assert reopened.load() and not reopened.check(cat, "m@1").ok
    # ... and opening it again rebuilds from the catalogue.
    assert Gallery.open(cat, "m@1", 8).check(cat, "m@1").ok
    # A corrupt index file is rebuilt too.
    Gallery.index_path(tmp_path, "m@1").write_bytes(b"garbage")
    assert len(Gallery.open(cat, "m@1", 8)) == 7


def test_gallery_add_skips_repeats_within_one_call(tmp_path):
    gallery = Gallery(8, tmp_path / "i.faiss")
    gallery.add([5, 5, 6], np.stack([_vec(1), _vec(1), _vec(2)]))
    gallery.add([6, 7], np.stack([_vec(2), _vec(3)]))
    assert sorted(gallery.ids().tolist()) == [5, 6, 7]


OPEN_MANY_TIMES = """
import sys, time
from pathlib import Path
from reid.catalog import Catalog
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
for _ in range(20):
    Catalog(sys.argv[1]).close()
"""


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
def test_processes_opening_one_catalogue_at_once_all_succeed(tmp_path, existing):
    """Ray workers and a second CLI open the same catalogue at the same moment: each waits for the
    lock (CI once saw a worker told "damaged (database is locked)" and a season run fail)."""
    import subprocess
    import sys

    data = tmp_path / "data"
    if existing:
        Catalog(data).close()
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_MANY_TIMES, str(data), str(go)],
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    go.touch()
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, "\n".join(e for e in errors if e)
    assert Catalog(data).counts() == {"individuals": 0, "images": 0}


def test_a_lock_held_past_the_timeout_is_busy_not_damaged(tmp_path, monkeypatch, capsys):
    """Telling a ranger to restore a backup over a sound catalogue would lose data: a lock held too
    long is a BusyError (CLI exit 2, HTTP 503 with Retry-After) saying to try again."""
    from fastapi.testclient import TestClient

    import reid.catalog
    from reid.cli import main
    from reid.errors import BusyError
    from service.app import create_app
    from service.settings import ServerSettings

    Catalog(tmp_path).create_individual("Tau Sheri")
    monkeypatch.setattr(reid.catalog, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(tmp_path / "catalog.sqlite", isolation_level=None)
    app = create_app(ServerSettings(data_dir=tmp_path, embed_backend="fp32"))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than the timeout
        with pytest.raises(BusyError, match="is busy.*try again") as err:  # opening
            Catalog(tmp_path)
        assert "damaged" not in str(err.value)
        assert main(["keys", "add", "ranger", "--role", "viewer", "--data-dir", str(tmp_path)]) == 2
        said = capsys.readouterr().err
        assert "is busy" in said and "restore" not in said, said
        holder.execute("ROLLBACK")
        # the lock taken after the CLI opened the catalogue: its write fails inside the command
        real_init = Catalog.__init__

        def open_then_lose_the_lock(self, *args, **kwargs):
            real_init(self, *args, **kwargs)
            holder.execute("BEGIN IMMEDIATE")

        monkeypatch.setattr(Catalog, "__init__", open_then_lose_the_lock)
        assert main(["keys", "add", "ranger", "--role", "viewer", "--data-dir", str(tmp_path)]) == 2
        monkeypatch.setattr(Catalog, "__init__", real_init)
        said = capsys.readouterr().err
        assert f"catalogue {tmp_path / 'catalog.sqlite'} is busy" in said and "restore" not in said, said
        r = client.post("/v1/individuals", json={"name": "Aybala"})  # the service's open catalogue, writing
        assert r.status_code == 503 and "is busy" in r.json()["detail"] and r.headers["retry-after"], r.text
        holder.execute("ROLLBACK")
        assert client.post("/v1/individuals", json={"name": "Aybala"}).status_code == 201
    holder.close()
    assert [i.name for i in Catalog(tmp_path).list_individuals()] == ["Aybala", "Tau Sheri"]
