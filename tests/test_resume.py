"""Resume after a kill: the shared runner (reid.runner) under `reid batch`, killed with SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import MODEL, LeopardSet, run_cli

from reid.labels import read_labels
from reid.runner import Journal, journal_path, plan_chunks, run_chunks


def _journal_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_when_journal_has(cmd: list[str], journal: Path, chunks: int, env: dict[str, str]) -> int:
    """Start `cmd`, SIGKILL it as soon as its journal holds `chunks` finished chunks; return how many it had."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        while proc.poll() is None and _journal_lines(journal) < 1 + chunks:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        rc = proc.wait()
    assert rc == -signal.SIGKILL, f"the run ended by itself before it could be killed: {proc.stderr.read()}"
    return _journal_lines(journal) - 1


def test_batch_killed_with_sigkill_resumes_to_the_same_output(leopard_images: LeopardSet, enrolled_dir: Path,
                                                              tmp_path: Path) -> None:
    common = ["--data-dir", str(enrolled_dir), "-q", "--chunk", "4"]
    full = tmp_path / "full" / "results.csv"
    proc = run_cli("batch", leopard_images.queries_csv, "--out", full, *common)
    assert proc.returncode == 0, proc.stderr

    out = tmp_path / "killed" / "results.csv"
    journal = journal_path(out)
    cmd = [sys.executable, "-m", "reid.cli", "batch", str(leopard_images.queries_csv), "--out", str(out), *common]
    done = kill_when_journal_has(cmd, journal, 2, {**os.environ, "REID_MODEL": str(MODEL)})
    assert done >= 2 and not out.exists()  # killed midway: no results file yet, a journal

    proc = run_cli("batch", leopard_images.queries_csv, "--out", out, *common)
    assert proc.returncode == 0, proc.stderr
    assert f"resumed: {4 * done} files" in proc.stdout  # finished chunks were not identified again
    assert out.read_bytes() == full.read_bytes()  # byte for byte what the uninterrupted run wrote
    assert not journal.exists()
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["resumed_files"] == 4 * done and summary["queries"] == 24
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 24 and len({r["path"] for r in rows}) == 24  # one row per photo, none twice


def test_batch_rows_format_is_one_row_per_photo(pipeline, leopard_images: LeopardSet, tmp_path: Path) -> None:
    from reid.batch import ROW_COLUMNS, run_batch

    out = tmp_path / "r.csv"
    run_batch(pipeline, leopard_images.queries_csv, out, progress=False)
    with open(out, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == ROW_COLUMNS
        rows = list(reader)
    assert len(rows) == 24
    for r in rows:
        assert Path(r["resolved_path"]).is_absolute() and Path(r["resolved_path"]).is_file()
        assert r["flank"] in ("left", "right")
        if r["decision"] == "new":
            assert r["identity"] == "" and r["runner_up"] == ""  # a new row names no individual
        if r["decision"] == "match":
            assert r["identity"] and int(r["matched_spots"]) >= 0 and float(r["probability"]) >= 0.5
    truth = {r.path: r.identity for r in read_labels(leopard_images.queries_csv)}
    assert sum(r["identity"] == truth[r["path"]] for r in rows if r["decision"] == "match") >= 20


def test_journal_drops_a_torn_line_and_refuses_another_runs(tmp_path: Path) -> None:
    path = tmp_path / ".r.journal"
    chunks = plan_chunks(list(range(10)), size=3)
    assert [len(c.items) for c in chunks] == [3, 3, 3, 1]
    j = Journal(path, {"run": 1})
    calls: list[str] = []
    list(run_chunks(chunks[:2], lambda c: (calls.append(c.key), sum(c.items))[1], j))
    j.close()
    with open(path, "ab") as fh:
        fh.write(b'{"key":"000002-torn","da')  # a kill in the middle of a write
    j = Journal(path, {"run": 1})
    assert j.resumed == 2
    results = [d for _, d in run_chunks(chunks, lambda c: (calls.append(c.key), sum(c.items))[1], j)]
    assert results == [3, 12, 21, 9] and len(calls) == 4  # chunks 0-1 not recomputed
    j.close()
    j = Journal(path, {"run": 2})  # another run's journal: started over, never mixed in
    assert j.resumed == 0 and not j.done
    j.remove()


def test_plan_keeps_a_group_together() -> None:
    items = ["a1", "a2", "b1", "b2", "b3", "c1"]
    chunks = plan_chunks(items, size=2, group=lambda s: s[0])
    assert [c.items for c in chunks] == [["a1", "a2"], ["b1", "b2", "b3"], ["c1"]]
    assert [c.key for c in chunks] == [c.key for c in plan_chunks(items, size=2, group=lambda s: s[0])]


def test_ctrl_c_keeps_finished_chunks(pipeline, leopard_images: LeopardSet, tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C (KeyboardInterrupt) in the third chunk: the rerun identifies only what was not finished."""
    from reid.batch import run_batch

    real_identify = pipeline.identify
    calls: list[int] = []

    def interrupted(queries, **kw):
        calls.append(len(queries))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_identify(queries, **kw)

    out = tmp_path / "r.csv"
    monkeypatch.setattr(pipeline, "identify", interrupted)
    try:
        run_batch(pipeline, leopard_images.queries_csv, out, progress=False, chunk=4)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the batch was not interrupted")
    assert not out.exists() and _journal_lines(journal_path(out)) == 3  # header + two finished chunks
    calls.clear()
    monkeypatch.setattr(pipeline, "identify", lambda queries, **kw: (calls.append(len(queries)),
                                                                      real_identify(queries, **kw))[1])
    summary = run_batch(pipeline, leopard_images.queries_csv, out, progress=False, chunk=4)
    assert summary.resumed_files == 8 and summary.queries == 24
    assert sum(calls) == 16  # only the four unfinished chunks were identified
    assert len(_read_rows(out)) == 24


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
