"""Background jobs' state in the data dir's catalogue (table `jobs`), so that it outlives a restart.

GET /v1/jobs/{id} answers from here for any job this data dir has run, finished or not, and
the one-at-a-time rule is checked here (in one write transaction), so it holds across a
restart and across server processes sharing the data dir.

A row names the process running its job: its pid and a token drawn once per process. A
row still `running` whose process is gone was cut off by a crash, a kill or a restart: it
is marked `interrupted` (never left `running` forever) and no longer blocks the next job.
Gone means: the pid is no longer alive, or it is now this process's pid under another
token (a restarted server in a container gets the same pid), or it has written no
heartbeat for STALE_S (a pid reused by some unrelated process).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OWNER_TOKEN = uuid.uuid4().hex  # this process
HEARTBEAT_S = 15.0  # a running job's process says it is alive this often
STALE_S = 180.0  # silent this long: its process is gone, whatever holds its pid now
INTERRUPTED = ("the server process running this job ended before it finished (a restart, a crash or a kill); "
               "for a retraining, POST /v1/jobs/retrain again: it resumes from the saved training state")


@dataclass
class Job:
    id: str
    kind: str
    status: str = "running"  # running | done | failed | interrupted
    phase: str = "starting"
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)
    phase_started: float = field(default_factory=time.time)
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    actor: str | None = None

    def progress(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self.phase, self.phase_started = phase, time.time()
        self.done, self.total = done, total

    def eta_s(self) -> float | None:
        """Seconds left in the current phase at its pace so far."""
        if self.status != "running" or not self.done or not self.total:
            return None
        pace = (time.time() - self.phase_started) / self.done
        return round(pace * max(0, self.total - self.done), 1)


_COLUMNS = ("id", "kind", "status", "phase", "done", "total", "started", "phase_started", "finished", "actor",
            "result", "error")


def _row(job: Job) -> dict[str, Any]:
    d = {c: getattr(job, c) for c in _COLUMNS}
    d["result"] = None if job.result is None else json.dumps(job.result)
    return d


def _job(row: sqlite3.Row) -> Job:
    d = {c: row[c] for c in _COLUMNS}
    d["result"] = None if row["result"] is None else json.loads(row["result"])
    return Job(**d)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _owner_alive(row: sqlite3.Row, now: float) -> bool:
    if row["owner_token"] == OWNER_TOKEN:
        return True  # ours: the runner's thread saves its end, whatever happens
    pid = int(row["owner_pid"])
    return pid != os.getpid() and now - float(row["heartbeat"]) < STALE_S and _pid_alive(pid)


class JobStore:
    """The `jobs` table of `<data_dir>/catalog.sqlite`; a short connection per call (any thread)."""

    def __init__(self, data_dir: str | Path) -> None:
        from reid.catalog import Catalog

        Catalog(data_dir).close()  # creates the table in a catalogue made before it existed
        self.path = Path(data_dir) / "catalog.sqlite"

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        from reid.catalog import BUSY_TIMEOUT_S, immediate_transaction

        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            with immediate_transaction(con):
                yield con
        finally:
            con.close()

    def _reap(self, con: sqlite3.Connection) -> None:
        """Mark `running` jobs whose process is gone as interrupted (ended at their last heartbeat)."""
        now = time.time()
        for row in con.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall():
            if not _owner_alive(row, now):
                con.execute("UPDATE jobs SET status = 'interrupted', finished = heartbeat, error = ? WHERE id = ?",
                            (INTERRUPTED, row["id"]))

    def claim(self, job: Job) -> Job | None:
        """Record `job` as running in this process, unless another job runs: then that one."""
        with self._write() as con:
            self._reap(con)
            row = con.execute("SELECT * FROM jobs WHERE status = 'running' ORDER BY started LIMIT 1").fetchone()
            if row is not None:
                return _job(row)
            d = _row(job) | {"heartbeat": time.time(), "owner_pid": os.getpid(), "owner_token": OWNER_TOKEN}
            con.execute(f"INSERT INTO jobs({', '.join(d)}) VALUES({', '.join('?' * len(d))})", tuple(d.values()))
        return None

    def save(self, job: Job) -> None:
        d = {k: v for k, v in _row(job).items() if k not in ("id", "kind", "started", "actor")}
        with self._write() as con:
            con.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in d)}, heartbeat = ? WHERE id = ?",
                        (*d.values(), time.time(), job.id))

    def heartbeat(self, job_id: str) -> None:
        with self._write() as con:
            con.execute("UPDATE jobs SET heartbeat = ? WHERE id = ? AND status = 'running'", (time.time(), job_id))

    def get(self, job_id: str) -> Job | None:
        with self._write() as con:
            self._reap(con)
            row = con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)
