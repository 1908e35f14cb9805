"""The one file-writing helper: complete files or none, never a collision between writers."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reid.fileio import atomic_write_bytes, atomic_write_text, atomic_writer


def test_many_threads_writing_one_path_never_collide(tmp_path: Path) -> None:
    target = tmp_path / "index.bin"
    payloads = [bytes([i]) * (200_000 + i) for i in range(16)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(payloads))

    def write(data: bytes) -> None:
        try:
            start.wait()
            for _ in range(5):
                atomic_write_bytes(target, data)
        except BaseException as exc:  # collected: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in payloads  # one writer's whole file, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["index.bin"]  # no temp file left behind


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "calibration.json"
    atomic_write_text(target, '{"old": true}')
    with pytest.raises(RuntimeError), atomic_writer(target, "w") as fh:
        fh.write('{"new": ')
        raise RuntimeError("disk full halfway")
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["calibration.json"]


def test_only_whole_file_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whole files"), atomic_writer(tmp_path / "x", "a"):
        pass
