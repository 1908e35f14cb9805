"""Issue 11: no single request raises the server's peak memory by more than the stated ceiling.

The two attacks of the issue (before: +2.4 GB and +8.7 GB) against a real server, measured
from /proc/PID (benchmarks/memory_attacks.py prints the same numbers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import memory_attacks  # noqa: E402

#: The stated ceiling on how much one request may raise the server's peak RSS (issue 11: 2 GiB).
CEILING = int(1.5 * 2**30)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_memory_attacks_stay_under_the_ceiling(tmp_path: Path) -> None:
    server = memory_attacks.Server(tmp_path / "data")
    try:
        results = memory_attacks.run(server)
        alive = server.proc.poll() is None
    finally:
        server.close()
    strip_bytes, bomb_bytes = results.pop("sizes")
    assert strip_bytes < 10_000 and bomb_bytes < 1_000_000  # tiny uploads...
    assert results["normal evidence"][0] == 200
    assert results["evidence strip 100000x16"][0] == 200  # drawn, at a bounded size
    assert results["sighting 32 x 80 MP"][0] == 413  # refused by the per-request pixel budget
    for name, (_, rise) in results.items():
        assert rise < CEILING, f"{name}: peak RSS rose {rise / 2**20:.0f} MiB"
    assert alive
