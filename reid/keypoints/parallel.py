"""A chunk's per-photo keypoint work on a few threads (REID_KEYPOINT_THREADS).

OpenCV's SIFT and RANSAC and most of NumPy release the GIL, so a chunk's photos can be
extracted and verified side by side in threads of one process: no copies of the gallery's
keypoint index (GBs at 10,000 images), as worker processes would need. Results come back in
input order and do not depend on the number of threads (tests/test_throughput.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

THREAD_NAME = "reid-keypoints"


def map_in_order(fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
    """`fn` over `items` in this thread, one at a time."""
    return [fn(item) for item in items]


def resolved_threads(setting: int) -> int:
    """REID_KEYPOINT_THREADS: 0 means one per core."""
    return setting if setting > 0 else (os.cpu_count() or 1)


def thread_map(threads: int) -> Callable[[Callable[[Any], T], Iterable[Any]], list[T]]:
    """A `map` giving results in input order: on `threads` threads (a pool made per call, so
    nothing lingers between chunks), or in this thread when `threads` is 1."""

    def run(fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        items = list(items)
        if threads <= 1 or len(items) <= 1:
            return map_in_order(fn, items)
        with ThreadPoolExecutor(max_workers=min(threads, len(items)), thread_name_prefix=THREAD_NAME) as pool:
            return list(pool.map(fn, items))

    return run
