"""Pixel budgets: how much decoded image one request, and all requests together, may hold.

A 300 KB PNG can decode to 80 megapixels (240 MB of RGB). The upload limit cannot see that;
the decoder can, from the header, before it allocates anything. Each request gets a
`PixelBudget` (the sum over all its images); every budget draws from one `PixelPool` for
the whole process, so a burst of heavy requests is refused (the service answers 503 with
Retry-After) instead of pushing the machine into swap.
"""

from __future__ import annotations

import threading
from types import TracebackType

from reid.errors import BusyError, ImageError


class PixelBudgetError(ImageError):
    """One request's images decode to more pixels than it may use."""


class PixelPool:
    """A process-wide allowance of decoded pixels (thread-safe)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.in_use = 0
        self._cond = threading.Condition()

    def acquire(self, n: int, timeout: float) -> bool:
        """Take `n` pixels, waiting up to `timeout` s for others to finish; False if they did not."""
        n = min(int(n), self.capacity)  # one image larger than the pool still runs, alone
        with self._cond:
            ok = self._cond.wait_for(lambda: self.in_use + n <= self.capacity, timeout=timeout)
            if ok:
                self.in_use += n
            return ok

    def release(self, n: int) -> None:
        with self._cond:
            self.in_use = max(0, self.in_use - min(int(n), self.capacity))
            self._cond.notify_all()


class PixelBudget:
    """One request's decoded-pixel allowance; use as a context manager so the pool gets it back."""

    def __init__(self, limit: int, pool: PixelPool | None = None, wait_s: float = 10.0) -> None:
        self.limit = int(limit)
        self.pool = pool
        self.wait_s = wait_s
        self.used = 0
        self._held = 0
        self._lock = threading.Lock()

    def charge(self, pixels: int, name: str) -> None:
        """Account for one image about to be decoded at `pixels` pixels, or raise."""
        with self._lock:
            if self.used + pixels > self.limit:
                raise PixelBudgetError(
                    f"{name}: the images of this request decode to more than {self.limit / 1e6:.0f} MP in total "
                    f"({(self.used + pixels) / 1e6:.0f} MP with this one; REID_MAX_REQUEST_PIXELS): send fewer "
                    "or smaller images per request")
            self.used += pixels
        if self.pool is not None:
            if not self.pool.acquire(pixels, self.wait_s):
                raise BusyError("the service is busy decoding other large images; try again in a few seconds")
            with self._lock:
                self._held += pixels

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, 0
        if self.pool is not None and held:
            self.pool.release(held)

    def __enter__(self) -> PixelBudget:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
