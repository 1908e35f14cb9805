"""Model versions of one data directory: `D/models/<version>.pt`, which one is in force, promotion.

Layout (everything beside the checkpoint travels with it, so `--model D/models/<v>.pt` in
another data dir answers with its own calibration):

    D/models/<version>.pt                    the checkpoint (leopard-reid-checkpoint/1)
    D/models/<version>.pt.calibration.json   its calibration (reid.calibrate.calibration_path)
    D/models/<version>.run.json              run record: data counts, recipe, held-out table, parent, commit
    D/models/current.json                    {"version": ..., "history": [...]}; absent = the shipped model

Promotion is crash-safe by order: the new model's embeddings of every catalogue image (in
this process, or on Ray workers: reid.reembed) and its FAISS index are written first (under
its own model id, beside the old model's), and only then is `current.json` replaced atomically. A crash before the swap leaves the old
pointer, whose embeddings and index are untouched: the old model goes on answering.

This module imports nothing heavy at import time: `reid.settings` asks it which checkpoint
a data dir uses.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reid.errors import NotFoundError, ReidError
from reid.fileio import atomic_write_text

log = logging.getLogger(__name__)

MODELS_DIR = "models"
POINTER = "current.json"
SHIPPED = "shipped"  # the version name of "no data-dir model": models/DEFAULT of the installed copy
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"  # also the HTTP schema's pattern
_VERSION_RE = re.compile(VERSION_PATTERN)
#: Test hook for crash safety: REID_KILL_AT=<point> kills this process (SIGKILL) at that point.
KILL_ENV = "REID_KILL_AT"


def models_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / MODELS_DIR


def checkpoint_path(data_dir: str | Path, version: str) -> Path:
    return models_dir(data_dir) / f"{version}.pt"


def run_record_path(checkpoint: str | Path) -> Path:
    """`<version>.run.json` beside `<version>.pt`."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".run.json")


def check_version_name(version: str) -> str:
    if version != SHIPPED and not _VERSION_RE.match(version or ""):
        raise ReidError(f"{version!r} is not a valid model version name (letters, digits, '.', '_', '-')")
    return version


def _read_pointer(data_dir: str | Path) -> dict[str, Any]:
    path = models_dir(data_dir) / POINTER
    if not path.is_file():
        return {"version": None, "history": []}
    try:
        d = json.loads(path.read_text())
        return {"version": d.get("version"), "history": list(d.get("history") or [])}
    except (OSError, ValueError, AttributeError) as exc:
        # a damaged pointer must not silently switch models: say so, and answer with the shipped one
        log.warning("%s is unreadable (%s): using the shipped model", path, exc)
        return {"version": None, "history": []}


def _write_pointer(data_dir: str | Path, version: str | None, history: list[str]) -> None:
    """Atomic: a temp file in the same folder, fsynced, renamed over the old pointer."""
    folder = models_dir(data_dir)
    atomic_write_text(folder / POINTER, json.dumps({"version": version, "history": history[-50:]}, indent=2))


def current_version(data_dir: str | Path) -> str | None:
    """The data dir's model version in force, or None for the shipped model."""
    version = _read_pointer(data_dir)["version"]
    return None if version in (None, SHIPPED) else str(version)


def current_checkpoint(data_dir: str | Path) -> Path | None:
    """The checkpoint a data dir answers with when no --model / REID_MODEL is given (None: shipped).

    A pointer naming a missing file falls back to the shipped model with a warning, rather
    than leaving the service unable to start."""
    version = current_version(data_dir)
    if version is None:
        return None
    path = checkpoint_path(data_dir, version)
    if not path.is_file():
        log.warning("model version %s named by %s is missing: using the shipped model", version,
                    models_dir(data_dir) / POINTER)
        return None
    return path


@dataclass(frozen=True)
class VersionInfo:
    version: str
    path: Path | None
    current: bool
    record: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        held = (self.record.get("held_out") or {}).get("candidate", {})
        gate = self.record.get("gate") or {}
        return {"version": self.version, "current": self.current, "path": str(self.path) if self.path else None,
                "created": self.record.get("created"), "parent": self.record.get("parent"),
                "fused_top1": (held.get("fused") or {}).get("top1"),
                "fused_auroc": (held.get("fused") or {}).get("new_auroc"),
                "gate": gate.get("passed"), "promoted": self.record.get("promoted")}


def list_versions(data_dir: str | Path) -> list[VersionInfo]:
    """The shipped model first, then every version in the data dir, oldest first."""
    current = current_version(data_dir)
    out = [VersionInfo(SHIPPED, None, current is None, {"note": "the installed copy's models/DEFAULT"})]
    folder = models_dir(data_dir)
    paths = sorted(folder.glob("*.pt"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    for path in paths:
        record: dict[str, Any] = {}
        rec_path = run_record_path(path)
        if rec_path.is_file():
            try:
                record = json.loads(rec_path.read_text())
            except (OSError, ValueError):
                record = {"note": f"{rec_path.name} unreadable"}
        out.append(VersionInfo(path.stem, path, path.stem == current, record))
    return out


def next_version_name(data_dir: str | Path, when: str) -> str:
    """`r<n>-<YYYYmmdd-HHMM>`: n counts this data dir's versions, the time says when its data were read."""
    taken = [int(m.group(1)) for p in models_dir(data_dir).glob("r*-*.pt") if (m := re.match(r"r(\d+)-", p.name))]
    stamp = re.sub(r"[^0-9T]", "", when)[:13].replace("T", "-")
    return f"r{max(taken, default=0) + 1}-{stamp}"


def kill_point(name: str) -> None:
    """Crash-safety tests: die here, as a power cut would, when REID_KILL_AT names this point."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def prepare(settings: Any, version: str, *, embed: Callable[[Any], Any] | None = None) -> Any:
    """Open a pipeline on `version` over the data dir: every catalogue image gets its embedding
    for this model and the FAISS index is built and saved, without touching what is in force.
    Returns the pipeline (reid.identify.Pipeline), ready to answer.

    `embed(settings)`: writes the missing vectors first, elsewhere than in this process (e.g.
    reid.reembed.reembed_on_ray); the pipeline then embeds whatever is still missing itself."""
    from reid.identify import Pipeline
    from reid.settings import default_model_path

    path = default_model_path() if version == SHIPPED else checkpoint_path(settings.data_dir, version)
    if not path.is_file():
        raise NotFoundError(f"no model version {version!r} in {models_dir(settings.data_dir)} "
                            "(`reid models list` shows them)")
    settings = settings.replace(model_path=path)
    if embed is not None:
        embed(settings)
    return Pipeline(settings)


def use(settings: Any, version: str, *, actor: str = "cli", rollback: bool = False,
        embed: Callable[[Any], Any] | None = None) -> Any:
    """Make `version` the data dir's model: prepare it (embeddings + index), then swap the pointer.

    Returns the prepared pipeline. `rollback` pops the pointer's history instead of pushing."""
    check_version_name(version)
    data_dir = settings.data_dir
    pointer = _read_pointer(data_dir)
    before = pointer["version"] or SHIPPED
    pipeline = prepare(settings, version, embed=embed)
    kill_point("promote:index-ready")
    history = pointer["history"][:-1] if rollback else [*pointer["history"], before]
    _write_pointer(data_dir, None if version == SHIPPED else version, history)
    pipeline.catalog.audit("rollback-model" if rollback else "use-model", actor=actor,
                           detail={"version": version, "previous": before, "model_id": pipeline.model_id})
    log.info("model %s is now in force in %s (was %s)", version, data_dir, before)
    return pipeline


def rollback(settings: Any, *, actor: str = "cli", embed: Callable[[Any], Any] | None = None) -> Any:
    """Back to the version that was in force before the current one."""
    pointer = _read_pointer(settings.data_dir)
    if not pointer["history"]:
        raise ReidError(f"nothing to roll back to in {models_dir(settings.data_dir)}: no earlier model was in force")
    return use(settings, pointer["history"][-1], actor=actor, rollback=True, embed=embed)


def confirmations_since_model(data_dir: str | Path) -> dict[str, Any]:
    """How many catalogue images were confirmed (enrolled) after the model in force read its
    training data: what the review page shows as "N confirmations since the model was trained".

    Counts a person's standing review confirmations (confirm and new) after that time; for the
    shipped model (never trained on this catalogue) every one counts."""
    from reid.catalog import Catalog

    version = current_version(data_dir)
    since = None
    if version is not None:
        rec_path = run_record_path(checkpoint_path(data_dir, version))
        try:
            since = json.loads(rec_path.read_text()).get("data", {}).get("as_of")
        except (OSError, ValueError, AttributeError):
            since = None
    if not (Path(data_dir) / "catalog.sqlite").is_file():
        return {"version": version or SHIPPED, "since": since, "confirmations": 0}
    from reid.review import confirmations_since

    catalog = Catalog(data_dir)
    try:
        count = confirmations_since(catalog, since)
    finally:
        catalog.close()
    return {"version": version or SHIPPED, "since": since, "confirmations": int(count)}
