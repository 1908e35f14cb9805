"""The API contract tells the truth: an independent API fuzzer, run against the live service's
own /openapi.json, finds nothing.

Schemathesis (property-based, not written here) generates valid and invalid requests for every
operation in the document, including routers added later, in four phases (schema examples,
boundary coverage, random fuzzing, stateful sequences that follow the ids one response hands to
the next request) and applies every check it has (`--checks all`): no 5xx, only documented
status codes, response bodies and headers as declared, valid requests accepted, invalid ones
refused, auth enforced where declared, 405 with a correct Allow header, ...

It runs twice against a real server over a small synthetic catalogue: in laptop mode (no key; the
document must then require none) and with an admin key (REID_API_TOKEN; the document must then
declare bearer auth wherever the server enforces it). A fixed seed and a bounded number of
examples keep it repeatable and bounded. Photos for requests the fuzzer considers valid, and the
custom timestamp format, come from tests/fuzz_hooks.py.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import LeopardSet, run_cli
from live import ROOT, live_server

pytestmark = pytest.mark.fuzz

SEED = 19
#: Test cases per operation and phase: enough for every field's boundaries and a few random
#: combinations; the run stays near a minute of CPU for both modes.
MAX_EXAMPLES = 8
TOKEN = "fuzz-admin-token-0123456789"


@pytest.fixture(scope="module")
def catalogue(leopard_images: LeopardSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three individuals with one left-flank photo each, enrolled through the CLI, and two review
    items (photos of a stranger identified through the CLI), so the review routes have data."""
    with open(leopard_images.gallery_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    chosen = [next(r for r in rows if r["identity"] == name and r["viewpoint"] == "left")
              for name in leopard_images.individuals[:3]]
    labels = leopard_images.root / "fuzz-gallery.csv"
    with open(labels, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(chosen[0]))
        writer.writeheader()
        writer.writerows(chosen)
    data_dir = tmp_path_factory.mktemp("fuzz-catalogue")
    proc = run_cli("enroll", labels, "--data-dir", data_dir)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("identify", *leopard_images.strangers[:2], "--data-dir", data_dir)
    assert proc.returncode == 0, proc.stderr
    return data_dir


@pytest.fixture(scope="module")
def photo(leopard_images: LeopardSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The photo sent in requests the fuzzer generates as valid: a small one (the model's cost
    per request hardly depends on it, keypoint extraction does)."""
    import cv2

    image = cv2.imread(str(leopard_images.strangers[0]))
    path = tmp_path_factory.mktemp("fuzz-photo") / "stranger.jpg"
    cv2.imwrite(str(path), cv2.resize(image, (96, 72), interpolation=cv2.INTER_AREA))
    return path


def run_schemathesis(url: str, photo: Path, *extra: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks", "FUZZ_PHOTO": str(photo)}
    # --checks all includes a 10 s response-time check: speed is not under test here (CI machines
    # are busy), so it and the request timeout are set to catch a hang, nothing slower; likewise
    # hypothesis' too_slow health check measures the test machine's load, not the API
    proc = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json", "--checks", "all",
         "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--workers", "1",
         "--generation-database", "none", "--request-timeout", "600", "--max-response-time", "600",
         "--suppress-health-check", "too_slow",
         # ST302 takes a 404 after a creation for a lost resource unless a DELETE removed it;
         # here an individual is removed by POST .../merge (its id then answers 404 naming the
         # individual it went into), which the check cannot know
         "--exclude-checks", "ensure_resource_availability", "--no-color", *extra],
        capture_output=True, text=True, env=env, cwd=photo.parent,
    )
    return proc.returncode, proc.stdout + proc.stderr


def assert_clean_run(url: str, returncode: int, output: str, server_log: str) -> None:
    operations = sum(len(item) for item in httpx.get(f"{url}/openapi.json").json()["paths"].values())
    assert returncode == 0, output
    # No check failed. A schemathesis *warning* (e.g. an operation that only ever answered 404
    # because the small fuzz catalogue has nothing for its generated ids) is not a finding.
    assert "No issues found" in output or (" failed" not in output and "FAILURES" not in output), output
    tested = re.search(r"Tested: (\d+)", output)
    # every operation in the document was exercised: routers added later are fuzzed too
    assert tested is not None and int(tested.group(1)) == operations, output
    assert "Traceback" not in server_log and "unexpected error" not in server_log, server_log[-5000:]


def assert_errors_documented(document: dict) -> None:
    """Every error response of every operation is the one shape; FastAPI's list is gone."""
    assert "HTTPValidationError" not in str(document)
    for item in document["paths"].values():
        for operation in item.values():
            for code, response in operation["responses"].items():
                if code[0] in "45":
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
            assert "500" in operation["responses"]
            if operation.get("security") == [{"HTTPBearer": []}]:
                assert "401" in operation["responses"]


def test_laptop_mode_contract(catalogue: Path, photo: Path, tmp_path: Path) -> None:
    data_dir = shutil.copytree(catalogue, tmp_path / "data")
    with live_server(data_dir, env={"REID_API_TOKEN": ""}) as server:
        document = httpx.get(f"{server.url}/openapi.json").json()
        assert_errors_documented(document)
        # no key exists: nothing may claim one is needed
        assert "securitySchemes" not in document.get("components", {})
        assert not any("security" in op or "401" in op["responses"] for item in document["paths"].values()
                       for op in item.values())
        # the findings of issue 19, one by one: an optional form field sent empty is absent, "null"
        # is refused (the document declares a number, not a nullable one) in a sentence naming it
        jpeg = photo.read_bytes()
        assert httpx.post(f"{server.url}/v1/identify", data={"lat": "", "timestamp": ""},
                          files={"image": ("a.jpg", jpeg)}).status_code == 200
        refused = httpx.post(f"{server.url}/v1/identify", data={"lat": "null"}, files={"image": ("a.jpg", jpeg)})
        assert refused.status_code == 422 and "form field 'lat'" in refused.json()["detail"], refused.text
        unreadable = httpx.post(f"{server.url}/v1/individuals", content=b"\xff",
                                headers={"Content-Type": "application/json"})
        assert unreadable.status_code == 400 and "could not be read" in unreadable.json()["detail"]
        assert "400" in document["paths"]["/v1/individuals"]["post"]["responses"]
        wrong_method = httpx.request("DELETE", f"{server.url}/v1/individuals")
        assert wrong_method.status_code == 405 and {"GET", "POST"} <= set(wrong_method.headers["allow"].split(", "))
        too_big = httpx.get(f"{server.url}/v1/images/{2**70}/file")  # was a 500 (SQLite overflow)
        assert too_big.status_code == 422 and "image_id" in too_big.json()["detail"]

        returncode, output = run_schemathesis(server.url, photo)
        assert_clean_run(server.url, returncode, output, server.log())


def test_admin_key_contract(catalogue: Path, photo: Path, tmp_path: Path) -> None:
    data_dir = shutil.copytree(catalogue, tmp_path / "data")
    with live_server(data_dir, env={"REID_API_TOKEN": TOKEN}) as server:
        document = httpx.get(f"{server.url}/openapi.json").json()
        assert_errors_documented(document)
        assert "HTTPBearer" in document["components"]["securitySchemes"]
        create = document["paths"]["/v1/individuals"]["post"]
        assert create["security"] == [{"HTTPBearer": []}] and "401" in create["responses"]
        refused = httpx.post(f"{server.url}/v1/individuals", json={"name": "Sary"})
        assert refused.status_code == 401 and isinstance(refused.json()["detail"], str)
        returncode, output = run_schemathesis(server.url, photo, "--header", f"Authorization: Bearer {TOKEN}")
        assert_clean_run(server.url, returncode, output, server.log())
