"""Typed settings: every REID_ variable documented (docs/settings.md), parsed as before, bad
values refused in one line naming the variable, and handed to the app as an argument."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import MODEL, REPO, LeopardSet, run_cli
from fastapi.testclient import TestClient

from reid.errors import ImageError, ReidError
from reid.settings import Settings
from service.settings import ServerSettings

DOC = REPO / "docs" / "settings.md"
#: Variables that make a process exit at a chosen point for the crash tests: not settings.
TEST_HOOKS = {"REID_KILL_AT", "REID_TEST_WORKER_EXIT_ONCE", "REID_REPORT_SCREENSHOT"}


def _documented() -> dict[str, str]:
    """variable -> its default cell, from the tables of docs/settings.md."""
    rows = re.findall(r"^\| `(REID_[A-Z0-9_]+)` \| ([^|]*) \|", DOC.read_text(), flags=re.M)
    return {name: default.strip() for name, default in rows}


def _shown(value: object) -> str:
    if value is None:
        return "unset"
    if value == ():
        return "empty"
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    return f"`{value}`"


@pytest.mark.parametrize("field", list(ServerSettings.model_fields))
def test_every_setting_is_documented_with_its_default(field: str) -> None:
    documented = _documented()
    var = ServerSettings.env_name(field)
    assert var in documented, f"{var} ({field}) is missing from docs/settings.md"
    info = ServerSettings.model_fields[field]
    if info.default_factory is None:  # cache_dir depends on the machine
        assert documented[var].startswith(_shown(info.default)), (var, documented[var], info.default)


def test_no_document_names_a_setting_that_does_not_exist() -> None:
    known = {ServerSettings.env_name(f) for f in ServerSettings.model_fields} | {"REID_SCENE_CHECK_CANDIDATES"}
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "models" / "README.md"]
    named = {(doc.name, v) for doc in docs for v in re.findall(r"\bREID_[A-Z0-9_]*[A-Z0-9]\b", doc.read_text())}
    assert not {(doc, v) for doc, v in named if v not in known | TEST_HOOKS}


def test_environment_values_are_typed_and_old_names_still_work() -> None:
    env = {"REID_SCENE_CHECK": "2", "REID_LOCAL_MATCHING": "off", "REID_TOP_K": "7", "REID_MODEL": "/m.pt",
           "REID_ALLOWED_HOSTS": "Reid.Example.org, 10.0.0.1:8000", "REID_MATCH_THRESHOLD": "",
           "REID_CHUNK_SIZE": "8", "REID_MAX_FILE_BYTES": "1000"}
    s = ServerSettings.from_env(env)
    assert (s.scene_check_candidates, s.local_matching, s.top_k, s.model_path) == (2, False, 7, Path("/m.pt"))
    assert s.allowed_hosts == ("reid.example.org", "10.0.0.1:8000")
    assert s.match_threshold == 0.5  # empty: the default
    assert (s.chunk_size, s.max_file_bytes) == (8, 1000)
    assert Settings.from_env({"REID_SCENE_CHECK_CANDIDATES": "0"}).scene_check_candidates == 0
    assert Settings.from_env({"REID_LOCAL_MATCHING": "yes"}).local_matching is True
    # explicit values (command-line options) win over the environment
    assert Settings.from_env({"REID_TOP_K": "7"}, top_k=3, data_dir=None).top_k == 3
    assert Settings().replace(threads=1).threads == 1


@pytest.mark.parametrize(("env", "message"), [
    ({"REID_TOP_K": "abc"}, "REID_TOP_K='abc' is not valid: Input should be a valid integer"),
    ({"REID_MAX_UPLOAD_BYTES": "-1"}, "REID_MAX_UPLOAD_BYTES='-1' is not valid: Input should be greater than 0"),
    ({"REID_MAX_INFLIGHT_PIXELS": "0"}, "REID_MAX_INFLIGHT_PIXELS='0' is not valid"),
    ({"REID_SCENE_CHECK": "-3"}, "REID_SCENE_CHECK='-3' is not valid"),
    ({"REID_MODEL_CONCURRENCY": "0"}, "REID_MODEL_CONCURRENCY='0' is not valid"),
    ({"REID_LOCATION_ROLE": "boss"}, "REID_LOCATION_ROLE must be viewer, reviewer or admin, not 'boss'"),
    ({"REID_SCENE_CHECK_ANIMAL": "2"}, "REID_SCENE_CHECK_ANIMAL must be in [0, 1], not 2.0"),
])
def test_a_bad_value_is_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ReidError) as err:
        ServerSettings.from_env(env)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_values_set_in_code_are_checked_too() -> None:
    with pytest.raises(ReidError, match="REID_SCENE_CHECK_SCOPE must be one of 'station', 'all', 'auto'"):
        Settings(scene_check_scope="camera")
    with pytest.raises(ReidError, match="REID_TOP_K=0 is not valid"):
        Settings().replace(top_k=0)
    with pytest.raises(ReidError, match="unknown setting 'api_token'"):
        Settings(api_token="x")  # a server setting: service.settings.ServerSettings


def test_a_negative_budget_stops_the_cli_in_one_line(tmp_path: Path) -> None:
    proc = run_cli("check", "--data-dir", tmp_path / "data", env={"REID_MAX_FILE_BYTES": "-5"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == "reid: error: REID_MAX_FILE_BYTES='-5' is not valid: Input should be greater than 0\n"


def test_the_cache_dir_follows_the_environment_when_settings_are_made(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REID_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a"))
    assert Settings().cache_dir == tmp_path / "a" / "leopard-reid"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))  # not frozen at import
    assert Settings().cache_dir == tmp_path / "b" / "leopard-reid"


def test_reid_serve_hands_its_settings_to_the_app_not_to_the_environment(monkeypatch, tmp_path: Path) -> None:
    import uvicorn

    from reid.cli import main

    served: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.setenv("REID_API_TOKEN", "a-token")  # a network address needs keys
    monkeypatch.setenv("REID_MODEL_CONCURRENCY", "3")
    before = dict(os.environ)
    assert main(["serve", "--data-dir", str(tmp_path / "d"), "--model", str(MODEL),
                 "--host", "Reid.Example.org", "--port", "8123"]) == 0
    assert dict(os.environ) == before
    settings = served["app"].state.settings  # type: ignore[attr-defined]
    assert isinstance(settings, ServerSettings)
    assert (settings.data_dir, settings.model_path) == (tmp_path / "d", MODEL)
    assert settings.allowed_hosts == ("reid.example.org",) and settings.model_concurrency == 3
    assert (served["host"], served["port"]) == ("Reid.Example.org", 8123)


def test_the_app_uses_the_settings_it_is_given(fresh_data_dir: Path, leopard_images: LeopardSet) -> None:
    from service.app import create_app

    photo = leopard_images.strangers[0]
    size = photo.stat().st_size
    settings = ServerSettings(data_dir=fresh_data_dir, model_path=MODEL, model_concurrency=3,
                              max_upload_bytes=size - 1, local_matching=False)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert client.app.state.model_limiter.total_tokens == 3
        r = client.post("/v1/identify", files={"image": ("x.jpg", photo.read_bytes(), "image/jpeg")})
        assert r.status_code == 413 and "detail" in r.json()
    # library settings get the server's part (defaults here) added
    app = create_app(Settings(data_dir=fresh_data_dir, model_path=MODEL))
    assert isinstance(app.state.settings, ServerSettings) and app.state.settings.max_upload_bytes == 40 * 2**20


def test_the_file_size_limit_reaches_the_pipeline(fresh_data_dir: Path, leopard_images: LeopardSet) -> None:
    from reid.identify import Pipeline

    photo = leopard_images.strangers[0]
    pipe = Pipeline(Settings(data_dir=fresh_data_dir, model_path=MODEL, max_file_bytes=photo.stat().st_size - 1,
                             local_matching=False))
    try:
        with pytest.raises(ImageError, match="above the .* limit"):
            pipe.load_query(photo)
        with pytest.raises(ImageError, match="above the .* limit"):
            pipe.load_query(photo.read_bytes(), name="upload.jpg")
    finally:
        pipe.catalog.close()
