"""One way to write a file that must survive a crash or a power cut: all of it, or none of it.

The bytes go to a uniquely named temporary file in the destination folder (so two threads or
processes writing the same path never share a temp file), are flushed and fsynced, and the
temp file is renamed over the destination (atomic on POSIX and Windows); the folder is then
fsynced so the rename itself is durable. A failure leaves the old file untouched and no
temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _fsync_dir(folder: Path) -> None:
    # Windows cannot open a folder for fsync; there the rename is as durable as it gets.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None,
                  newline: str | None = None) -> Iterator[IO]:
    """`with atomic_writer(p, "w") as fh: fh.write(...)`: `p` appears complete when the block ends."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer writes whole files ('w' or 'wb'), not mode {mode!r}")
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        text_args = {"encoding": encoding or "utf-8", "newline": newline} if mode == "w" else {}
        with os.fdopen(fd, mode, **text_args) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results, models and photos are meant to be read
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_writer(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_writer(path, "w") as fh:
        fh.write(text)
