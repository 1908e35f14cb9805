"""Exports of the catalogue and a season's identifications: one registered writer per format.

    from reid.exports import create_exporter, list_exporters, run_export
    list_exporters()                      # ['camtrap-dp', 'camtrapr', 'secr']
    run_export("secr", catalog, out_dir, options=ExportOptions(occasion_days=2))

A writer is a class with `name`, `description` and `write(data, out_dir) -> list[Path]`,
registered with `@register_exporter`; the built-in ones register the same way a plugin would.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reid.errors import ReidError

#: Modules whose import registers the built-in writers.
BUILTIN_EXPORTERS = ("reid.exports.camtrap_dp", "reid.exports.secr", "reid.exports.camtrapr")

_REGISTRY: dict[str, type] = {}


class Exporter(Protocol):
    name: str
    description: str

    def write(self, data: Any, out_dir: Path) -> list[Path]: ...


def register_exporter(cls: type) -> type:
    """Class decorator: make `cls` available under `cls.name`."""
    name = getattr(cls, "name", "")
    if not name or not callable(getattr(cls, "write", None)):
        raise TypeError(f"{cls.__name__}: an exporter needs a `name` and a `write(data, out_dir)` method")
    _REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    for module in BUILTIN_EXPORTERS:
        importlib.import_module(module)


def list_exporters() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def exporter_descriptions() -> dict[str, str]:
    _load_builtins()
    return {name: _REGISTRY[name].description for name in sorted(_REGISTRY)}


def create_exporter(name: str, **kwargs: Any) -> Exporter:
    _load_builtins()
    if name not in _REGISTRY:
        raise ReidError(f"unknown export format {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)


@dataclass(frozen=True)
class ExportResult:
    files: list[Path]
    warnings: list[str]


def run_export(name: str, catalog: Any, out_dir: str | Path, *, season_dir: str | Path | None = None,
               options: Any = None, progress: Callable[[str], None] | None = None) -> ExportResult:
    """Load the catalogue (and season results), write format `name` into `out_dir`."""
    from reid.exports.records import load_export_data

    exporter = create_exporter(name)
    data = load_export_data(catalog, season_dir=season_dir, options=options)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ReidError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    files = exporter.write(data, out)
    return ExportResult(files=files, warnings=data.warnings())
