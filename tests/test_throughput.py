"""Throughput (issue 17, item 3): a chunk of photos is identified stage by stage for all of them
at once (one batched saliency pass, keypoints and verification on threads, one search of the
keypoint index), and the answers are exactly those of one photo at a time, whatever the
number of threads. Real JPEGs through the real model and the real keypoint index."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import LeopardSet

from reid.keypoints import saliency as saliency_module
from reid.keypoints import store as store_module
from reid.keypoints.parallel import THREAD_NAME
from reid.labels import read_labels


def _queries(pipeline, leopard_images: LeopardSet) -> list:
    """Every query photo of the set, the strangers and the never-enrolled flank, without sighting
    ids (one call pools a sighting's photos by design; one by one cannot)."""
    rows = read_labels(leopard_images.queries_csv)
    photos = [(str(r.file), r.viewpoint) for r in rows]
    photos += [(str(p), "left") for p in leopard_images.strangers + leopard_images.righty_left]
    return [pipeline.load_query(path, name=path, viewpoint=side) for path, side in photos]


def _answers(results) -> list[tuple]:
    """Everything a result says, scores to the last bit."""
    return [(r.name, r.decision, [(c.rank, c.identity, c.score, c.cosine, c.image_id, c.viewpoint, c.inliers,
                                   c.local_score) for c in r.candidates]) for r in results]


@pytest.fixture
def threads(pipeline, monkeypatch):
    """Set REID_KEYPOINT_THREADS for the session pipeline's keypoint stage."""
    def use(n: int) -> None:
        monkeypatch.setattr(pipeline.keypoint_evidence, "settings", pipeline.settings.replace(keypoint_threads=n))
    return use


@pytest.mark.parametrize("search", ["exact", "ivf"])
def test_a_chunk_at_once_gives_the_answers_of_one_photo_at_a_time(pipeline, leopard_images, threads, monkeypatch,
                                                                  search) -> None:
    queries = _queries(pipeline, leopard_images)
    assert len(queries) >= 25
    one_by_one = _answers([pipeline.identify([q])[0] for q in queries])
    index = pipeline.keypoint_index()
    if search == "ivf":  # this small gallery's flank groups searched by a FAISS IVF index, as a season's are
        monkeypatch.setattr(index, "exact_limit", 500)
        one_by_one = _answers([pipeline.identify([q])[0] for q in queries])
        assert all(g._ivf is not None for g in index._groups.values() if g.size)
    threads(2)
    at_once = _answers(pipeline.identify(queries))
    assert at_once == one_by_one
    # the answers are not empty: most queries are ranked by verified spots, the right animal first
    known = [a for a in at_once if "stranger" not in a[0] and "righty" not in a[0]]
    assert sum(a[2][0][6] > 0 for a in known) >= len(known) // 2
    assert sum(a[2][0][1].lower().replace(" ", "-") in a[0] for a in known) >= len(known) // 2


def test_keypoint_threads_setting_is_respected(pipeline, leopard_images, threads, monkeypatch) -> None:
    queries = _queries(pipeline, leopard_images)[:8]
    seen: list[str] = []
    real_extract = store_module.extract

    def extract(*args, **kwargs):
        if not kwargs.get("outside"):  # a query's keypoints, not the scene check's surroundings
            seen.append(threading.current_thread().name)
        return real_extract(*args, **kwargs)

    monkeypatch.setattr(store_module, "extract", extract)
    threads(1)
    sequential = _answers(pipeline.identify(queries))
    assert len(seen) == len(queries) and all(name == threading.current_thread().name for name in seen)
    seen.clear()
    threads(3)
    parallel = _answers(pipeline.identify(queries))
    assert len(seen) == len(queries) and all(name.startswith(THREAD_NAME) for name in seen)
    assert len(set(seen)) <= 3
    assert parallel == sequential


def test_saliency_maps_of_a_chunk_equal_one_by_one(pipeline, leopard_images, monkeypatch) -> None:
    rgbs = [q.rgb for q in _queries(pipeline, leopard_images)[:10]]
    backbone = pipeline.keypoints.saliency._backbone()
    alone = [backbone.many([rgb])[0] for rgb in rgbs]
    monkeypatch.setattr(saliency_module, "SALIENCY_BATCH", 8)
    together = backbone.many(rgbs)  # two forward passes: 8 photos, then 2
    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))
    assert all(a.shape == (14, 14) and a.max() == pytest.approx(1.0) for a in together)
    # the cache hands the chunk's own maps back (a scene check after the keypoints)
    cache = pipeline.keypoints.saliency
    first = cache.many(rgbs)
    assert all(cache(rgb) is m for rgb, m in zip(rgbs, first, strict=True))


def test_vote_scan_setting_sets_how_many_ivf_lists_a_vote_probes(pipeline, leopard_images) -> None:
    from reid.keypoints.store import KeypointStore

    query = _queries(pipeline, leopard_images)[0]
    probed = {}
    for scan in (1, 12_000):
        settings = pipeline.settings.replace(vote_scan=scan)
        store = KeypointStore(settings, pipeline.catalog, pipeline.crop_of)
        index = store.index(pipeline.gallery)
        assert index.scan == scan
        index.exact_limit = 500  # this small gallery's groups on the IVF index, as a season's are
        votes = index.vote(store.extract(query.rgb), "left")
        assert len(votes.weights)
        probed[scan] = index._groups["left"]._ivf.nprobe
    assert probed[1] == 16 < probed[12_000]  # at least 16 lists; more for a larger budget
