"""One query runner (`run_queries`: `reid identify`, `reid batch`, `reid eval`, the HTTP routes)
and one resumable chunk runner (`run_chunks`: `reid batch`, `reid season run`).

`run_queries` loads each input (a photo, or a video's sampled frames), identifies the queries
in chunks that never cut a sighting short, turns a file that cannot be used into one `error`
row, and yields the results in input order. Every entry point goes through it, so chunking,
sighting grouping and error rows are written once.

A long run is cut into chunks planned from the whole input up front (consecutive items of one
sighting or encounter stay in one chunk, so they are identified jointly). Each finished chunk
is appended to a journal (JSON lines, flushed and fsynced) before the next one starts. Killed,
even with kill -9, and started again with the same inputs, the run reads the journal, skips the
chunks already there and computes only the rest: the same chunks with the same members as an
uninterrupted run, so the same answers. The final outputs are written from the journal, in
input order, atomically; the journal is removed once they are.

The journal's first line says what the run is (a fingerprint: inputs, model, catalogue
size, settings). A journal made for anything else is set aside and the run starts over, so
results computed against another catalogue are never mixed in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from reid.errors import ReidError
from reid.stages.decide import Identification

if TYPE_CHECKING:
    from reid.identify import Pipeline
    from reid.stages.decode import QueryImage

log = logging.getLogger(__name__)

T = TypeVar("T")
JOURNAL_VERSION = 1


@dataclass
class Chunk(Generic[T]):
    """A slice of the input identified in one call; `key` is stable across runs."""

    key: str
    items: list[T]


def plan_chunks(items: Sequence[T], *, size: int, group: Callable[[T], Hashable | None] | None = None,
                weight: Callable[[T], int] | None = None, max_group_chunks: int = 4) -> list[Chunk[T]]:
    """Cut `items` (in order) into chunks of about `size` weight units.

    A run of consecutive items with the same non-None `group` is not cut until it reaches
    `max_group_chunks * size` (a long burst must still fit in memory). The plan depends only
    on the items, so a resumed run recomputes exactly the chunks it did not finish.
    """
    chunks: list[Chunk[T]] = []
    current: list[T] = []
    load = 0

    def close() -> None:
        nonlocal current, load
        if current:
            digest = hashlib.sha1(json.dumps([repr(_item_key(i)) for i in current]).encode()).hexdigest()[:12]
            chunks.append(Chunk(f"{len(chunks):06d}-{digest}", current))
        current, load = [], 0

    for item in items:
        w = weight(item) if weight is not None else 1
        same_group = (group is not None and current and group(item) is not None
                      and group(current[-1]) == group(item))
        if load + w > size and current and (not same_group or load >= max_group_chunks * size):
            close()
        current.append(item)
        load += w
    close()
    return chunks


def _item_key(item: Any) -> Any:
    for attr in ("key", "path"):
        value = getattr(item, attr, None)
        if value is not None:
            return value
    return item


def fingerprint_digest(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


class Journal:
    """Append-only JSON lines beside the outputs: a header, then one line per finished chunk."""

    def __init__(self, path: str | Path, fingerprint: dict[str, Any]) -> None:
        self.path = Path(path)
        self.header = {"journal": JOURNAL_VERSION, "run": fingerprint_digest(fingerprint)}
        self.done: dict[str, Any] = {}
        self._resumed = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mode = "a" if self.path.exists() and self._load() else "w"
        self._fh = open(self.path, mode, encoding="utf-8")  # noqa: SIM115 (kept open for the run)
        if mode == "w":
            self._append(self.header)
            _fsync_dir(self.path.parent)

    @property
    def resumed(self) -> int:
        """Chunks found finished in the journal when the run started."""
        return self._resumed

    def _load(self) -> bool:
        """Read finished chunks; drop a torn last line (a kill in mid-write). False: start over."""
        raw = self.path.read_bytes()
        good = 0  # bytes of complete, parseable lines
        entries: list[dict[str, Any]] = []
        for line in raw.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                entries.append(json.loads(line))
            except ValueError:
                break
            good += len(line)
        if not entries or entries[0] != self.header:
            log.warning("%s belongs to another run (other inputs, model, catalogue or settings): starting over",
                        self.path)
            return False
        if good < len(raw):
            with open(self.path, "r+b") as fh:
                fh.truncate(good)
        for entry in entries[1:]:
            self.done[entry["key"]] = entry["data"]
        self._resumed = len(self.done)
        if self.done:
            log.info("resuming: %d finished chunks found in %s", len(self.done), self.path)
        return True

    def _append(self, obj: dict[str, Any]) -> None:
        self._fh.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def record(self, key: str, data: Any) -> None:
        """Persist one finished chunk (durable when this returns)."""
        self._append({"key": key, "data": data})
        self.done[key] = data

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: Computes chunks elsewhere (reid.cluster: Ray worker processes): given the chunks not finished
#: yet, yields (chunk, result) as each one finishes, in any order. None: `work` in this process.
Executor = Callable[[Sequence[Chunk[Any]]], Iterable[tuple[Chunk[Any], Any]]]


def run_chunks(chunks: Sequence[Chunk[T]], work: Callable[[Chunk[T]], Any], journal: Journal, *,
               on_chunk: Callable[[Chunk[T]], None] | None = None,
               executor: Executor | None = None) -> Iterator[tuple[Chunk[T], Any]]:
    """Each chunk's result, in plan order: from the journal when finished before, else `work(chunk)`
    (recorded in the journal before it is yielded). `on_chunk` is called after each (progress).
    With an `executor` the unfinished chunks are computed by it instead of `work`; each is journaled
    as it arrives and results are still yielded in plan order, so the outputs are the same."""
    if executor is not None:
        yield from _run_elsewhere(chunks, journal, executor, on_chunk)
        return
    for chunk in chunks:
        if chunk.key in journal.done:
            data = journal.done[chunk.key]
        else:
            data = work(chunk)
            journal.record(chunk.key, data)
        if on_chunk is not None:
            on_chunk(chunk)
        yield chunk, data


def _run_elsewhere(chunks: Sequence[Chunk[T]], journal: Journal, executor: Executor,
                   on_chunk: Callable[[Chunk[T]], None] | None) -> Iterator[tuple[Chunk[T], Any]]:
    todo = [c for c in chunks if c.key not in journal.done]
    stream = iter(executor(todo)) if todo else iter(())
    try:
        for chunk in chunks:
            while chunk.key not in journal.done:  # results arrive out of order: journal them, wait
                arrived = next(stream, None)
                if arrived is None:
                    raise RuntimeError(f"the executor ended without chunk {chunk.key}")
                journal.record(arrived[0].key, arrived[1])
            if on_chunk is not None:
                on_chunk(chunk)
            yield chunk, journal.done[chunk.key]
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # stop the remote work when the caller stops early (error, Ctrl-C)


@dataclass
class Outcome(Generic[T]):
    """One query of a run: an image, a video frame, or a file that failed (`query` None)."""

    path: str
    identification: Identification
    item: T | None = None  # the input it came from (a video gives several outcomes)
    query: QueryImage | None = None  # what was identified (None for a file that failed)


def error_message(path: str, exc: Exception) -> str:
    """One line naming the file (a crop or box error does not name it by itself)."""
    return str(exc) if path in str(exc) else f"{path}: {exc}"


def error_outcome(path: str, message: str, item: Any = None) -> Outcome[Any]:
    """The row of a file that could not be used: decision `error`, no candidates."""
    return Outcome(path, Identification(name=path, decision="error", candidates=[], error=message), item)


def run_queries(pipeline: Pipeline, items: Iterable[T], load: Callable[[T], list[QueryImage]], *,
                path: Callable[[T], str], chunk: int, top_k: int | None = None, audit: bool = True,
                sighting: Callable[[T], str | None] | None = None, max_group_chunks: int | None = 4,
                on_error: Callable[[str], None] = log.warning, raise_errors: bool = False,
                on_item: Callable[[T], None] | None = None) -> Iterator[Outcome[T]]:
    """Identify `items` in input order, about `chunk` queries per Pipeline.identify call.

    `load(item)` gives the item's queries (one per photo, one per sampled video frame); a
    ReidError there becomes one `error` outcome (its line passed to `on_error`) and the run
    goes on (`raise_errors`: the ReidError propagates instead, e.g. an HTTP 422). A chunk is not cut inside a run of consecutive items of one `sighting` until it
    holds `max_group_chunks * chunk` queries (None: never), so a burst is pooled as one sighting.
    `on_item` is called after each item is loaded (progress)."""
    pending: list[tuple[T, QueryImage | None, str | None]] = []  # (item, query, error) in order
    group = sighting or (lambda _: None)

    def flush() -> Iterator[Outcome[T]]:
        queries = [q for _, q, _ in pending if q is not None]
        results = iter(pipeline.identify(queries, top_k=top_k, audit=audit)) if queries else iter(())
        done = list(pending)
        pending.clear()
        for item, q, err in done:
            if q is None:
                yield error_outcome(path(item), err or "unreadable", item)
            else:
                yield Outcome(q.name, next(results), item, q)

    for item in items:
        loaded = sum(q is not None for _, q, _ in pending)
        same = bool(pending) and group(item) is not None and group(pending[-1][0]) == group(item)
        if loaded >= chunk and (not same or (max_group_chunks is not None and loaded >= max_group_chunks * chunk)):
            yield from flush()
        try:
            queries = load(item)
        except ReidError as exc:
            if raise_errors:
                raise
            message = error_message(path(item), exc)
            on_error(message)
            pending.append((item, None, message))
        else:
            pending.extend((item, q, None) for q in queries)
        if on_item is not None:
            on_item(item)
    if pending:
        yield from flush()


def journal_path(output: str | Path) -> Path:
    """results.csv -> .results.csv.journal (hidden, beside it)."""
    output = Path(output)
    return output.with_name(f".{output.name}.journal")


__all__ = ["Chunk", "Executor", "Journal", "Outcome", "error_message", "error_outcome", "fingerprint_digest",
           "journal_path", "plan_chunks", "run_chunks", "run_queries"]
