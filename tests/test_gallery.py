"""reid.gallery above its switch size: a trained IVF that finds what exact search finds, and
keeps adding, removing, looking up by id, saving and reloading as the exact index does."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from reid import gallery as gallery_module
from reid.catalog import Catalog
from reid.gallery import Gallery

DIM = 32


def _clustered(n: int, seed: int, per: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // per + 1, DIM)).astype(np.float32)
    x = centres[np.arange(n) // per] + 0.4 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _exact(vectors: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    flat.add_with_ids(vectors, ids)
    return flat.search(q, k)


def test_ivf_above_the_switch_finds_what_exact_search_finds_and_adds_and_removes(tmp_path: Path) -> None:
    x = _clustered(400, 0)
    ids = np.arange(1000, 1400, dtype=np.int64)
    g = Gallery(DIM, tmp_path / "i.faiss", ivf_switch=200)
    g.add(ids[:150], x[:150])
    assert g.kind == "exact"
    g.add(ids[150:250], x[150:250])  # past the switch: trained IVF, 4 sqrt(250) = 63 lists
    assert g.kind == "ivf" and g.index.nlist == 63 and g.nprobe == gallery_module.NPROBE
    q = _clustered(40, 1)
    sims, found = g.search(q, 10)
    want_sims, want = _exact(x[:250], ids[:250], q, 10)
    assert (found == want).all() and np.allclose(sims, want_sims, atol=1e-5)  # 64 probes cover all 63 lists

    # adds and removals by catalogue id, lookups by id, as before the switch
    g.add(ids[250:300], x[250:300])
    g.remove([int(ids[0]), int(ids[260])])
    held = np.setdiff1d(ids[:300], [ids[0], ids[260]])
    assert g.kind == "ivf" and np.array_equal(g.ids(), held) and len(g) == 298
    assert g.vector(int(ids[0])) is None and np.allclose(g.vector(int(ids[299])), x[299], atol=1e-6)
    sims, found = g.search(x[[0, 260, 299]], 1)
    assert found[0, 0] != ids[0] and found[1, 0] != ids[260] and found[2, 0] == ids[299]
    keep = np.isin(ids[:300], held)
    _, want = _exact(x[:300][keep], ids[:300][keep], q, 10)
    assert (g.search(q, 10)[1] == want).all()

    # saved and read back: the same IVF, the same answers
    g.save()
    again = Gallery(DIM, tmp_path / "i.faiss", ivf_switch=200)
    assert again.load() and again.kind == "ivf" and np.array_equal(again.ids(), held)
    assert (again.search(q, 10)[1] == want).all()

    # grown 4x past what its lists were trained for: retrained with more lists
    g.add(ids[300:], x[300:])
    assert g.kind == "ivf" and g.index.nlist == 63  # 398 < 4 * 248
    big = _clustered(1200, 2)
    g.add(np.arange(5000, 6200), big)
    assert g.kind == "ivf" and g.index.nlist == int(4 * np.sqrt(len(g)))
    # shrunk below the switch: exact again
    g.remove(g.ids()[150:].tolist())
    assert g.kind == "exact" and len(g) == 150


def test_rebuild_from_the_catalogue_switches_at_the_module_setting(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cat = Catalog(tmp_path)
    ind = cat.create_individual("A")
    x = _clustered(120, 3)
    for n, v in enumerate(x):
        sha, rel = cat.store_file(b"img" + str(n).encode(), ".jpg")
        cat.add_image(individual_id=ind.id, sha256=sha, stored_path=rel, box=None, viewpoint="left",
                      model_id="m@1", vector=v)
    exact = Gallery.open(cat, "m@1", DIM)
    assert exact.kind == "exact"
    monkeypatch.setattr(gallery_module, "IVF_SWITCH", 100)
    Gallery.index_path(tmp_path, "m@1").unlink()
    ivf = Gallery.open(cat, "m@1", DIM)
    assert ivf.kind == "ivf" and ivf.check(cat, "m@1").ok
    q = _clustered(20, 4)
    assert (ivf.search(q, 5)[1] == exact.search(q, 5)[1]).all()  # 43 lists, all probed
    reopened = Gallery.open(cat, "m@1", DIM)  # read from disk, not rebuilt
    assert reopened.kind == "ivf" and (reopened.search(q, 5)[1] == exact.search(q, 5)[1]).all()
