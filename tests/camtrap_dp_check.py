"""Validate a Camtrap DP 1.0.2 package offline against the official schemas vendored in
tests/data/standards (MIT; see the LICENSE files there): datapackage.json against the profile
(JSON Schema), every table against its table schema with frictionless. The same checks as
the standard's validator, without the network."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

STANDARDS = Path(__file__).resolve().parent / "data" / "standards"
CAMTRAP = STANDARDS / "camtrap-dp-1.0.2"
SPECS = STANDARDS / "frictionless-v1"
BASE = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/"


def _registry():
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4, DRAFT7

    def read(name: str) -> dict:
        return json.loads((SPECS / name).read_text(encoding="utf-8"))

    dictionary = "https://specs.frictionlessdata.io/schemas/dictionary.json"
    return Registry().with_resources([
        ("https://specs.frictionlessdata.io/schemas/data-package.json",
         Resource(contents={"$ref": dictionary + "#/definitions/dataPackage"}, specification=DRAFT7)),
        (dictionary, Resource(contents=read("dictionary.json"), specification=DRAFT4)),
        ("http://json.schemastore.org/geojson.json", Resource(contents=read("geojson.json"), specification=DRAFT4)),
    ])


@contextmanager
def _cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def validate_camtrap_dp(datapackage: Path) -> list[str]:
    """Problems found (empty = valid)."""
    import jsonschema
    from frictionless import Package, system

    descriptor = json.loads(datapackage.read_text(encoding="utf-8"))
    problems = []
    if descriptor.get("profile") != BASE + "camtrap-dp-profile.json":
        problems.append(f"profile is {descriptor.get('profile')!r}")
    profile = json.loads((CAMTRAP / "camtrap-dp-profile.json").read_text(encoding="utf-8"))
    for err in jsonschema.Draft7Validator(profile, registry=_registry()).iter_errors(descriptor):
        problems.append(f"datapackage.json {'/'.join(map(str, err.absolute_path))}: {err.message[:200]}")
    descriptor.pop("profile", None)
    for res in descriptor["resources"]:
        schema = res.get("schema")
        if isinstance(schema, str):
            assert schema.startswith(BASE), schema  # a schema we have offline, never a download
            res["schema"] = str(CAMTRAP / schema[len(BASE):])
    with _cwd(datapackage.parent), system.use_context(trusted=True):
        report = Package(descriptor, basepath=str(datapackage.parent)).validate()
    problems += [f"{task.name}: {err.type}: {err.message[:200]}" for task in report.tasks for err in task.errors]
    problems += [f"package: {err.type}: {err.message[:200]}" for err in report.errors]
    return problems
