"""The HTTP service end to end: a real uvicorn server in a subprocess, real multipart uploads.

One server per module (model load + first ONNX export take seconds). It runs with an API
token and a small upload limit, so auth and 413 are tested on the same server. Test images
are drawn here: per individual a tawny coat with dark rosettes; photos are warped crops of
it, JPEG-encoded. The tests run in file order and build on each other's catalogue.
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from live import live_server

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "imagenet-lite0.pt"
TOKEN = "test-token-123"
MAX_UPLOAD = 300_000  # bytes; test photos are ~30-60 kB
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAMES = ["Tau Sheri", "Kyzyl", "Aisha"]

pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="shipped model models/imagenet-lite0.pt missing")


# -- test images ----------------------------------------------------------------------------------------
def draw_coat(seed: int, size: tuple[int, int] = (600, 800)) -> np.ndarray:
    """A BGR coat: tawny ground, rosettes (dark broken rings round a darker centre), solid spots."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (int(rng.integers(50, 100)), int(rng.integers(120, 170)), int(rng.integers(180, 230)))
    noise = cv2.resize(rng.normal(0, 12, (h // 8, w // 8)).astype(np.float32), (w, h))
    img = np.clip(img + noise[..., None], 0, 255).astype(np.uint8)
    scale = rng.uniform(0.6, 1.6)
    for _ in range(int(rng.integers(30, 60) / scale)):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(14, 30) * scale)
        cv2.ellipse(img, (cx, cy), (r, int(r * rng.uniform(0.6, 1.0))), float(rng.uniform(0, 180)), 0, 360,
                    (40, 100, 160), -1)
        for _ in range(int(rng.integers(3, 7))):
            a = rng.uniform(0, 2 * np.pi)
            cv2.ellipse(img, (int(cx + r * np.cos(a)), int(cy + r * np.sin(a))),
                        (int(rng.integers(4, 9)), int(rng.integers(3, 7))), float(np.degrees(a)), 0, 360,
                        (20, 25, 30), -1)
    for _ in range(int(rng.integers(30, 60))):
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(3, 8)), (20, 25, 30), -1)
    return img


def jpeg(bgr: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def camera_view(bgr: np.ndarray, seed: int, strength: float = 0.6, out: tuple[int, int] = (480, 360)) -> np.ndarray:
    """A camera-trap-like view: perspective warp, rotation, crop, exposure change, sensor noise."""
    rng = np.random.default_rng(seed)
    h, w = bgr.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + (rng.uniform(-0.08, 0.08, (4, 2)) * strength * np.float32([w, h])).astype(np.float32)
    img = cv2.warpPerspective(bgr, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REFLECT)
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-10, 10) * strength), float(rng.uniform(1, 1.1)))
    img = cv2.warpAffine(img, rot, (w, h), borderMode=cv2.BORDER_REFLECT)
    s = 1 - rng.uniform(0.1, 0.25) * strength
    cw, ch = int(w * s), int(h * s)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img[y0:y0 + ch, x0:x0 + cw].astype(np.float32)
    img = img * (1 + rng.uniform(-0.1, 0.08)) + rng.normal(0, 2, img.shape)
    return cv2.resize(np.clip(img, 0, 255).astype(np.uint8), out, interpolation=cv2.INTER_AREA)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (1-bit); no pixel data. Pillow reads the size
    from the header, so the decoder must refuse it before trying to decode 400 MP."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A tiny real JPEG with its SOF0 frame header patched to claim width x height."""
    data = bytearray(jpeg(np.full((32, 32, 3), 128, np.uint8)))
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.fixture(scope="module")
def photos() -> dict[str, list[bytes]]:
    """Three enrollment photos per individual."""
    coats = {name: draw_coat(i) for i, name in enumerate(NAMES)}
    return {name: [jpeg(camera_view(coats[name], 100 * i + k)) for k in range(3)] for i, name in enumerate(NAMES)}


# -- the server -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    env = {"REID_API_TOKEN": TOKEN, "REID_MAX_UPLOAD_BYTES": str(MAX_UPLOAD)}
    with live_server(tmp_path_factory.mktemp("reid-data"), env=env, model=MODEL) as live:
        yield live.url, live.process, live.log_path


@pytest.fixture(scope="module")
def client(server: tuple[str, subprocess.Popen, Path]) -> Iterator[httpx.Client]:
    """With the token: once a key or REID_API_TOKEN exists, every route with data needs one."""
    with httpx.Client(base_url=server[0], timeout=60, headers=AUTH) as c:
        yield c


def ids_by_name(client: httpx.Client) -> dict[str, int]:
    return {i["name"]: i["id"] for i in client.get("/v1/individuals").json()}


def upload(data: bytes, name: str = "photo.jpg", **fields: str) -> dict:
    return {"files": {"image": (name, data, "image/jpeg")}, "data": fields}


def assert_error(resp: httpx.Response, code: int, *fragments: str) -> str:
    assert resp.status_code == code, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    detail = resp.json()["detail"]
    for fragment in fragments:
        assert fragment in str(detail), detail
    return str(detail)


# -- tests --------------------------------------------------------------------------------------------------
def test_docs_and_openapi(client: httpx.Client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get("/openapi.json").json()
    for path in ("/v1/identify", "/v1/individuals", "/v1/individuals/{individual_id}",
                 "/v1/individuals/{individual_id}/images", "/v1/images/{image_id}/file", "/healthz"):
        assert path in spec["paths"], path


def test_healthz_on_empty_catalogue(client: httpx.Client) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["model_id"].startswith("imagenet-lite0@")
    assert body["calibrated"] is True and "reid synth" in body["calibration"]  # the shipped one, and says so
    assert body["calibration_source"] == "shipped"
    assert body["counts"] == {"individuals": 0, "images": 0}
    assert body["index"]["ok"] is True


def test_identify_against_empty_catalogue_is_new(client: httpx.Client, photos: dict[str, list[bytes]]) -> None:
    resp = client.post("/v1/identify", **upload(photos[NAMES[0]][0]))
    assert resp.status_code == 200, resp.text
    assert resp.json()["candidates"] == [] and resp.json()["decision"] == "new"


def test_every_route_needs_the_token(server: tuple[str, subprocess.Popen, Path],
                                     photos: dict[str, list[bytes]]) -> None:
    with httpx.Client(base_url=server[0], timeout=60) as anon:
        resp = anon.post("/v1/individuals", json={"name": "Nobody"})
        assert_error(resp, 401, "Bearer")
        assert resp.headers["www-authenticate"] == "Bearer"
        assert_error(anon.post("/v1/individuals", json={"name": "Nobody"}, headers={"Authorization": "Bearer nope"}),
                     401)
        assert_error(anon.post("/v1/individuals", json={"name": "Nobody"}, headers={"Authorization": TOKEN}), 401)
        assert_error(anon.post("/v1/individuals/1/images", **upload(photos[NAMES[0]][0])), 401)
        assert_error(anon.get("/v1/individuals"), 401)
        assert_error(anon.post("/v1/identify", **upload(photos[NAMES[0]][0])), 401)
        health = anon.get("/healthz").json()  # up, but nothing about the catalogue
        assert health["status"] == "ok" and "counts" not in health and "model_id" not in health
        assert anon.get("/docs").status_code == 200 and anon.get("/openapi.json").status_code == 200
    assert httpx.get(server[0] + "/v1/individuals", headers=AUTH).json() == []


def test_create_individuals(client: httpx.Client) -> None:
    for name in NAMES:
        resp = client.post("/v1/individuals", json={"name": name, "sex": "male", "notes": "test"}, headers=AUTH)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["name"] == name and body["image_count"] == 0 and isinstance(body["id"], int)
    assert_error(client.post("/v1/individuals", json={"name": NAMES[0]}, headers=AUTH), 409, "already exists")
    assert client.post("/v1/individuals", json={"name": "  "}, headers=AUTH).status_code == 422
    assert client.post("/v1/individuals", json={"nom": "x"}, headers=AUTH).status_code == 422
    listed = client.get("/v1/individuals").json()
    assert sorted(i["name"] for i in listed) == sorted(NAMES)


def test_enroll_images(client: httpx.Client, photos: dict[str, list[bytes]]) -> None:
    ids = ids_by_name(client)
    for name in NAMES:
        for k, data in enumerate(photos[name]):
            # by numeric id (names are looked up with ?name=), with and without metadata
            ref = str(ids[name])
            fields = {"viewpoint": "left", "station": "KZ-07", "sighting": f"{name}-s1",
                      "timestamp": "2024-06-01T21:14:05"} if k == 0 else {}
            resp = client.post(f"/v1/individuals/{ref}/images", headers=AUTH,
                               **upload(data, f"{name.replace(' ', '_')}_{k}.jpg", **fields))
            assert resp.status_code == 201, resp.text
            body = resp.json()
            assert body["created"] is True
            image = body["image"]
            assert image["individual_id"] == ids[name] and image["individual"] == name
            assert (image["width"], image["height"]) == (480, 360)
            assert image["file_url"] == f"/v1/images/{image['id']}/file"
            if k == 0:
                assert image["viewpoint"] == "left" and image["station"] == "KZ-07"
                assert image["timestamp"] == "2024-06-01T21:14:05"
    detail = client.get(f"/v1/individuals/{ids['Tau Sheri']}").json()
    assert detail["image_count"] == 3 and len(detail["images"]) == 3
    assert [i["id"] for i in client.get("/v1/individuals", params={"name": "Tau Sheri"}).json()] == [ids["Tau Sheri"]]
    assert client.get("/v1/individuals", params={"name": "Tau"}).json() == []
    # the stored file comes back byte for byte
    first = detail["images"][0]
    resp = client.get(first["file_url"])
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    assert resp.content == photos["Tau Sheri"][0]
    health = client.get("/healthz").json()
    assert health["counts"] == {"individuals": 3, "images": 9} and health["index"]["ok"]


def test_reupload_is_not_duplicated(client: httpx.Client, photos: dict[str, list[bytes]]) -> None:
    ids = ids_by_name(client)
    before = client.get(f"/v1/individuals/{ids['Kyzyl']}").json()
    resp = client.post(f"/v1/individuals/{ids['Kyzyl']}/images", headers=AUTH,
                       **upload(photos["Kyzyl"][1], "again.jpg"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] is False
    assert resp.json()["image"]["id"] in {im["id"] for im in before["images"]}
    assert client.get(f"/v1/individuals/{ids['Kyzyl']}").json()["image_count"] == before["image_count"]
    # the same photo cannot silently become another animal
    assert_error(client.post(f"/v1/individuals/{ids['Aisha']}/images", headers=AUTH, **upload(photos["Kyzyl"][1])),
                 409, "Kyzyl")


def test_identify_ranks_the_right_individual_first(client: httpx.Client, photos: dict[str, list[bytes]]) -> None:
    for name in NAMES:
        # another view of an enrolled photo: rotated, cropped, re-encoded at a different size/quality
        enrolled = cv2.imdecode(np.frombuffer(photos[name][0], np.uint8), cv2.IMREAD_COLOR)
        view = camera_view(enrolled, seed=7, strength=0.5, out=(400, 300))
        resp = client.post("/v1/identify", **upload(jpeg(view, quality=75), "trap_0042.jpg", viewpoint="left",
                                                    station="KZ-09"))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body) >= {"name", "decision", "candidates", "model_id", "timing_ms", "calibrated"}
        assert body["name"] == "trap_0042.jpg" and body["viewpoint"] == "left"
        assert body["decision"] in {"match", "new", "review"}
        assert body["model_id"].startswith("imagenet-lite0@")
        assert body["timing_ms"]["total"] > 0
        cands = body["candidates"]
        assert [c["rank"] for c in cands] == list(range(1, len(NAMES) + 1))
        assert cands[0]["identity"] == name, cands
        scores = [c["score"] for c in cands]
        assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
        for c in cands:
            assert set(c) == {"rank", "individual_id", "identity", "score", "cosine", "image_id", "viewpoint",
                              "inliers", "local_score", "image_url"}
        assert cands[0]["inliers"] > 0  # the spots of the right animal were verified
    top2 = client.post("/v1/identify", params={"top_k": 2}, **upload(photos["Aisha"][2])).json()["candidates"]
    assert len(top2) == 2


def test_evidence_picture(client: httpx.Client, photos: dict[str, list[bytes]]) -> None:
    name = NAMES[0]
    enrolled = cv2.imdecode(np.frombuffer(photos[name][0], np.uint8), cv2.IMREAD_COLOR)
    view = jpeg(camera_view(enrolled, seed=3, strength=0.5, out=(400, 300)))
    resp = client.post("/v1/identify/evidence", **upload(view, viewpoint="left"))
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    picture = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape[1] > picture.shape[0] > 100  # two images side by side
    ids = ids_by_name(client)
    resp = client.post("/v1/identify/evidence", params={"individual": ids[NAMES[1]]}, **upload(view, viewpoint="left"))
    assert resp.status_code == 200
    assert_error(client.post("/v1/identify/evidence", params={"individual": 999999}, **upload(view)), 404, "999999")
    assert client.post("/v1/identify/evidence", params={"individual": "nobody"}, **upload(view)).status_code == 422


def test_a_sighting_is_identified_jointly(client: httpx.Client, photos: dict[str, list[bytes]]) -> None:
    name = NAMES[1]
    enrolled = cv2.imdecode(np.frombuffer(photos[name][0], np.uint8), cv2.IMREAD_COLOR)
    frames = [jpeg(camera_view(enrolled, seed=s, strength=0.5, out=(400, 300))) for s in (11, 12)]
    hidden = cv2.imdecode(np.frombuffer(frames[1], np.uint8), cv2.IMREAD_COLOR)
    hidden[:, : int(hidden.shape[1] * 0.8)] = 40  # most of the animal behind a dark bush
    files = [("images", ("burst_1.jpg", frames[0], "image/jpeg")), ("images", ("burst_2.jpg", jpeg(hidden), "image/jpeg"))]
    resp = client.post("/v1/identify/sighting", files=files, data={"viewpoint": "left"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["sighting"].startswith("upload-") and len(body["images"]) == 2
    assert body["candidates"][0]["identity"] == name
    assert [im["name"] for im in body["images"]] == ["burst_1.jpg", "burst_2.jpg"]
    assert all(im["sighting"] == body["sighting"] and im["candidates"][0]["identity"] == name for im in body["images"])
    alone = client.post("/v1/identify", **upload(jpeg(hidden), viewpoint="left")).json()
    pooled = body["images"][1]["candidates"][0]
    assert pooled["score"] >= alone["candidates"][0]["score"]  # the hidden frame gains from its burst
    # bad input: a text file among the photos is named; no photo at all is a 422
    bad = [("images", ("ok.jpg", frames[0], "image/jpeg")), ("images", ("notes.jpg", b"hello", "image/jpeg"))]
    assert_error(client.post("/v1/identify/sighting", files=bad), 422, "notes.jpg")
    assert client.post("/v1/identify/sighting", data={"viewpoint": "left"}).status_code == 422


def test_oversize_uploads_are_refused(client: httpx.Client, server: tuple[str, subprocess.Popen, Path]) -> None:
    big = os.urandom(MAX_UPLOAD + 50_000)
    # with Content-Length (httpx computes it for in-memory files): refused before reading
    assert_error(client.post("/v1/identify", **upload(big)), 413, "limit")
    # file above the limit but body within the form slack: refused while reading the upload
    assert_error(client.post("/v1/identify", **upload(os.urandom(MAX_UPLOAD + 1000))), 413, "limit")
    # chunked, no Content-Length: refused while the body streams in
    boundary = "reidtestboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()

    def body() -> Iterator[bytes]:
        yield head
        for start in range(0, len(big), 64 * 1024):
            yield big[start:start + 64 * 1024]
        yield f"\r\n--{boundary}--\r\n".encode()

    with httpx.Client(base_url=server[0], timeout=60) as fresh:
        resp = fresh.post("/v1/identify", content=body(),
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **AUTH})
    assert_error(resp, 413, "limit")
    assert_error(client.post(f"/v1/individuals/{ids_by_name(client)['Kyzyl']}/images", headers=AUTH, **upload(big)),
                 413)


@pytest.mark.parametrize(("case", "data", "filename", "fragment"), [
    ("empty", b"", "empty.jpg", "empty"),
    ("text named .jpg", b"station,time\nKZ-07,2024-06-01\n" * 20, "notes.jpg", "not a readable image"),
    ("truncated jpeg", None, "cut.jpg", "truncated"),
    ("jpeg header claiming 20000x20000", jpeg_claiming(20000, 20000), "huge.jpg", "MP limit"),
    ("png header claiming 20000x20000", png_header_only(20000, 20000), "huge.png", "MP limit"),
])
def test_bad_images_are_422(client: httpx.Client, photos: dict[str, list[bytes]], case: str, data: bytes | None,
                            filename: str, fragment: str) -> None:
    if data is None:
        data = photos["Aisha"][0][: len(photos["Aisha"][0]) // 2]
    detail = assert_error(client.post("/v1/identify", **upload(data, filename)), 422, fragment)
    assert filename in detail  # the message names the file
    aisha = ids_by_name(client)["Aisha"]
    assert_error(client.post(f"/v1/individuals/{aisha}/images", headers=AUTH, **upload(data, filename)), 422, fragment)


def test_bad_form_fields_are_422(client: httpx.Client, photos: dict[str, list[bytes]]) -> None:
    good = photos["Aisha"][0]
    assert client.post("/v1/identify", **upload(good, viewpoint="sideways")).status_code == 422
    assert_error(client.post("/v1/identify", **upload(good, box="1,2,3")), 422, "x,y,w,h")
    assert_error(client.post("/v1/identify", **upload(good, box="a,b,c,d")), 422, "x,y,w,h")
    assert_error(client.post("/v1/identify", **upload(good, box="10,10,0,50")), 422)
    assert_error(client.post("/v1/identify", **upload(good, box="5000,5000,100,100")), 422, "outside")
    assert_error(client.post("/v1/identify", **upload(good, timestamp="yesterday")), 422, "ISO 8601")
    assert client.post("/v1/identify", data={"viewpoint": "left"}).status_code == 422  # no file field
    assert client.post("/v1/identify", files={"other": ("x.jpg", good)}).status_code == 422
    assert client.post("/v1/identify", content=b"raw bytes", headers={"Content-Type": "image/jpeg"}).status_code == 422
    # a box inside the image is fine and is kept
    resp = client.post("/v1/identify", **upload(good, box="40,30,400,300", viewpoint="right"))
    assert resp.status_code == 200, resp.text


def test_unknown_ids_are_404(client: httpx.Client, photos: dict[str, list[bytes]]) -> None:
    assert_error(client.get("/v1/individuals/999999"), 404, "999999")
    # ids too large for SQLite's 64-bit integers are no id at all: a 4xx naming it, never a 500
    assert_error(client.get("/v1/individuals/99999999999999999999999"), 404)
    assert_error(client.get("/v1/images/99999999999999999999999/file"), 422, "image_id")
    # names are not ids: a name in the path is a 422 (look names up with ?name=)
    assert client.get("/v1/individuals/No Such Cat").status_code == 422
    assert client.get("/v1/individuals/²").status_code == 422
    assert client.get("/v1/individuals", params={"name": "²"}).json() == []
    assert_error(client.post("/v1/individuals/999999/images", headers=AUTH, **upload(photos["Aisha"][0])),
                 404, "999999")
    assert_error(client.get("/v1/images/999999/file"), 404)
    assert client.get("/v1/images/abc/file").status_code == 422
    assert client.get("/v1/nothing-here").status_code == 404


def test_concurrent_identify(server: tuple[str, subprocess.Popen, Path], photos: dict[str, list[bytes]]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def one(k: int) -> int:
        name = NAMES[k % len(NAMES)]
        with httpx.Client(base_url=server[0], timeout=60, headers=AUTH) as c:
            return c.post("/v1/identify", **upload(photos[name][k % 3])).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(one, range(6))) == [200] * 6


def test_server_survived_everything(client: httpx.Client, server: tuple[str, subprocess.Popen, Path]) -> None:
    _, proc, log_path = server
    assert proc.poll() is None
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["counts"] == {"individuals": 3, "images": 9}
    log = log_path.read_text()
    assert "Traceback" not in log and " 500 " not in log, log[-3000:]
