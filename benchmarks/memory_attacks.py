#!/usr/bin/env python
"""Peak server memory under the two memory attacks of issue 11, and a normal request.

    python benchmarks/memory_attacks.py

Starts the real service (uvicorn, laptop mode, the shipped model) on a fresh data dir,
enrolls two synthetic coats, then sends:

- "evidence strip": one 100000x16 PNG (a few KB) to /v1/identify/evidence;
- "sighting bomb": 32 blank 80-megapixel PNGs (~300 KB in all) to /v1/identify/sighting.

For each it prints the HTTP status and how much the server's peak resident memory rose
above its level before the request (VmHWM from /proc/PID/status, reset between requests
through /proc/PID/clear_refs; RSS is also sampled every 20 ms in case the kernel does not
allow the reset). Before issue 11 these cost +2.4 GB and +8.7 GB (the issue's numbers).
tests/test_memory.py runs the same attacks and asserts a ceiling.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "imagenet-lite0.pt"
GIB = 2**30


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs "5"); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def coat(seed: int, size: tuple[int, int] = (480, 360)) -> bytes:
    """A tawny picture with dark rosette-like blobs (enough for keypoints and an embedding)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, (205, 150, 70))
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x, y, r = int(rng.integers(0, size[0])), int(rng.integers(0, size[1])), int(rng.integers(5, 18))
        draw.ellipse((x - r, y - r, x + r, y + int(r * 0.7)), fill=(30, 25, 20))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def strip_png() -> bytes:
    return png(Image.new("L", (100_000, 16), 128))


def blank_80mp_png() -> bytes:
    return png(Image.new("1", (10_000, 8_000), 0))


class Server:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        full_env = {**os.environ, "REID_DATA_DIR": str(data_dir), "REID_MODEL": str(MODEL), **(env or {})}
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited: {self.log.read().decode(errors='replace')[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not come up")
            time.sleep(0.3)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def peak_rise(pid: int, send: Callable[[], httpx.Response]) -> tuple[int, int]:
    """(status code, bytes the server's peak RSS rose above its RSS before the request)."""
    time.sleep(0.5)
    before = status_kib(pid, "VmRSS")
    reset = reset_peak(pid)
    sampled = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                sampled.append(status_kib(pid, "VmRSS"))
            except (OSError, KeyError):
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        code = send().status_code
    finally:
        done.set()
        sampler.join()
    peak = max(sampled)
    if reset:
        peak = max(peak, status_kib(pid, "VmHWM"))
    return code, (peak - before) * 1024


def run(server: Server) -> dict[str, tuple[int, int]]:
    client = httpx.Client(base_url=server.url, timeout=600)
    for k in range(2):  # two enrolled individuals, so the evidence has a candidate to draw
        ident = client.post("/v1/individuals", json={"name": f"coat-{k}"}).json()["id"]
        for j in range(2):
            resp = client.post(f"/v1/individuals/{ident}/images",
                               files={"image": (f"c{k}{j}.jpg", coat(10 * k + j), "image/jpeg")})
            assert resp.status_code == 201, resp.text
    normal = coat(1)
    pid = server.proc.pid
    # warm up: the first requests load the keypoint index and saliency model
    for _ in range(2):
        client.post("/v1/identify/evidence", files={"image": ("n.jpg", normal, "image/jpeg")})
    strip, blank = strip_png(), blank_80mp_png()
    out = {
        "normal evidence": peak_rise(pid, lambda: client.post(
            "/v1/identify/evidence", files={"image": ("n.jpg", normal, "image/jpeg")})),
        "evidence strip 100000x16": peak_rise(pid, lambda: client.post(
            "/v1/identify/evidence", files={"image": ("strip.png", strip, "image/png")})),
        "sighting 32 x 80 MP": peak_rise(pid, lambda: client.post(
            "/v1/identify/sighting", files=[("images", (f"b{i}.png", blank, "image/png")) for i in range(32)])),
    }
    out["sizes"] = (len(strip), len(blank) * 32)
    client.close()
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="reid-memory-") as tmp:
        server = Server(Path(tmp) / "data")
        try:
            results = run(server)
        finally:
            server.close()
    strip_bytes, bomb_bytes = results.pop("sizes")
    print(f"payloads: strip PNG {strip_bytes} bytes, 32 blank 80-MP PNGs {bomb_bytes} bytes in all")
    print(f"{'request':<28} {'status':>6} {'peak RSS rise':>14}")
    for name, (code, rise) in results.items():
        print(f"{name:<28} {code:>6} {rise / 2**20:>11.0f} MiB")


if __name__ == "__main__":
    main()
