"""T-10 sandboxed templates: GGUF/HF chat templates render only in jinja2's
``ImmutableSandboxedEnvironment``. The unit cases (escapes, size bombs, time limit) from
``tests/unit/test_jinja_sandbox.py`` run here again, and the ``lipsum.__globals__`` payload is
driven end to end: a model whose GGUF carries it answers chat and generate with 400, and nothing
runs on the server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ggufs import write_tiny_gguf
from skyllama.composition import build_runtime
from skyllama.engine.fake import FakeEngine
from skyllama.http.app import create_app
from skyllama.settings import Settings
from skyllama.templates import jinja
from skyllama.templates.errors import TemplateError
from unit.test_jinja_sandbox import BOMBS, ESCAPES, MSGS

PWNED = "skyllama-t10-pwned"


def lipsum(marker: Path) -> str:
    return ("{{ lipsum.__globals__['os'].popen('touch " + str(marker) + "').read() }}"
            "{% for m in messages %}{{ m.content }}{% endfor %}")


def test_the_environment_is_the_immutable_sandbox() -> None:
    assert issubclass(jinja._Env, ImmutableSandboxedEnvironment)


@pytest.mark.parametrize("payload", ESCAPES)
def test_escapes_are_refused(payload: str) -> None:
    with pytest.raises(TemplateError):
        jinja.render_jinja(payload, MSGS)


@pytest.mark.parametrize("payload", BOMBS[:4])
def test_bombs_fail_fast(payload: str) -> None:
    with pytest.raises(TemplateError):
        jinja.render_jinja(payload, MSGS)


def test_render_time_is_bounded() -> None:
    with pytest.raises(TemplateError, match="longer than"):
        jinja.render_jinja("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
                           MSGS, timeout=0.2)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db")
    runtime = build_runtime(settings, engine=FakeEngine())
    yield create_app(runtime)
    runtime.close()


@pytest.mark.parametrize("route", ["/api/chat", "/api/generate"])
def test_lipsum_payload_in_a_gguf_runs_nothing(app: FastAPI, tmp_path: Path, route: str) -> None:
    marker = tmp_path / PWNED
    data = write_tiny_gguf(tmp_path / "evil.gguf", chat_template=lipsum(marker)).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with TestClient(app, base_url="http://127.0.0.1:11434") as c:
        assert c.post(f"/api/blobs/{digest}", content=data).status_code == 201
        assert c.post("/api/create", json={"model": "evil", "files": {"e.gguf": digest},
                                           "stream": False}).status_code == 200
        body = {"model": "evil", "stream": False, "messages": [{"role": "user", "content": "hi"}], "prompt": "hi"}
        r = c.post(route, json=body)
        assert r.status_code == 400 and "unsafe" in r.json()["error"], r.text
    assert not marker.exists()
