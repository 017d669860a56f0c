"""``_debug_render_only`` on ``/api/generate``, ``/api/chat`` and ``/v1/chat/completions``: the rendered
prompt comes back in ``_debug_info`` and the model never generates (Ollama's ``server/routes_debug_test.go``)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from serving import RunningServer
from skyllama.engine.fake import FakeEngine

CHAT_TEMPLATE = "{{ if .Tools }}{{ .Tools }}{{ end }}{{ range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}"
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Get weather information"}}


def create(server: RunningServer, name: str, **fields: Any) -> None:
    reply = httpx.post(f"{server.url}/api/create", json={"model": name, "from": "smollm2:135m", "stream": False,
                                                         **fields}, timeout=60)
    assert reply.status_code == 200, reply.text


def debug(server: RunningServer, route: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.post(f"{server.url}{route}", json={**body, "_debug_render_only": True}, timeout=60)
    assert reply.status_code == 200, reply.text
    out: dict[str, Any] = reply.json()
    return out


@pytest.mark.parametrize("stream", [False, True])
def test_generate_renders_without_running(demo_fake_server: RunningServer, fake_engine: FakeEngine,
                                          stream: bool) -> None:
    create(demo_fake_server, "tpl", template="{{ .Prompt }}")
    cases = [({"prompt": "Hello, world!"}, "Hello, world!"),
             ({"prompt": "User question", "system": "You are a helpful assistant"}, "User question"),
             ({"prompt": "Hello", "template": "PROMPT: {{ .Prompt }}"}, "PROMPT: Hello"),
             ({"prompt": "Raw prompt text", "raw": True}, "Raw prompt text"),
             ({"prompt": "Hello", "context": [72, 105, 33, 32]}, "Hi! Hello")]  # fake ids are code points
    for fields, expected in cases:
        out = debug(demo_fake_server, "/api/generate", {"model": "tpl", "stream": stream, **fields})
        assert out["_debug_info"] == {"rendered_template": expected}
        assert out["model"] == "tpl" and out["response"] == "" and out["done"] is False and out["created_at"]
    assert fake_engine.prompts == []  # nothing was generated
    normal = httpx.post(f"{demo_fake_server.url}/api/generate", json={"model": "tpl", "prompt": "x", "stream": False})
    assert normal.json()["done"] is True and "_debug_info" not in normal.json() and fake_engine.prompts == ["x"]


@pytest.mark.parametrize("stream", [False, True])
def test_chat_renders_system_tools_and_model_messages(demo_fake_server: RunningServer, fake_engine: FakeEngine,
                                                      stream: bool) -> None:
    create(demo_fake_server, "tpl-chat", template=CHAT_TEMPLATE)
    out = debug(demo_fake_server, "/api/chat", {"model": "tpl-chat", "stream": stream, "messages": [
        {"role": "system", "content": "You are a helpful assistant"}, {"role": "user", "content": "Hello"}]})
    assert out["_debug_info"] == {"rendered_template": "system: You are a helpful assistant\nuser: Hello\n"}
    assert out["message"] == {"role": "", "content": ""} and out["done"] is False
    out = debug(demo_fake_server, "/api/chat", {"model": "tpl-chat", "stream": stream, "messages": [
        {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there!"},
        {"role": "user", "content": "How are you?"}]})
    assert out["_debug_info"]["rendered_template"] == "user: Hello\nassistant: Hi there!\nuser: How are you?\n"
    out = debug(demo_fake_server, "/api/chat", {"model": "tpl-chat", "tools": [TOOL],
                                                "messages": [{"role": "user", "content": "Get the weather"}]})
    rendered = out["_debug_info"]["rendered_template"]
    assert rendered.startswith("[{") and '"name":"get_weather"' in rendered
    assert rendered.endswith("}]user: Get the weather\n")
    # the model's own SYSTEM and MESSAGEs come first, as in a real request
    create(demo_fake_server, "tpl-history", template=CHAT_TEMPLATE, system="Be terse.",
           messages=[{"role": "user", "content": "Earlier"}, {"role": "assistant", "content": "Noted"}])
    out = debug(demo_fake_server, "/api/chat", {"model": "tpl-history", "messages": [{"role": "user", "content": "Now"}]})
    assert out["_debug_info"]["rendered_template"] == "system: Be terse.\nuser: Earlier\nassistant: Noted\nuser: Now\n"
    assert fake_engine.prompts == []


def test_debug_render_errors_are_the_requests_errors(demo_fake_server: RunningServer) -> None:
    reply = httpx.post(f"{demo_fake_server.url}/api/chat", json={"model": "missing", "_debug_render_only": True,
                                                                 "messages": [{"role": "user", "content": "x"}]})
    assert reply.status_code == 404
    reply = httpx.post(f"{demo_fake_server.url}/api/generate", json={"model": "smollm2:135m", "prompt": "x",
                                                                     "_debug_render_only": True, "context": [-1]})
    assert reply.status_code == 400


def test_openai_chat_completion_debug_info(demo_fake_server: RunningServer, fake_engine: FakeEngine) -> None:
    create(demo_fake_server, "tpl-chat", template=CHAT_TEMPLATE)
    client = openai.OpenAI(base_url=f"{demo_fake_server.url}/v1", api_key="ollama", max_retries=0)
    reply = client.chat.completions.create(model="tpl-chat", messages=[{"role": "user", "content": "Hello"}],
                                           extra_body={"_debug_render_only": True})
    assert reply.model_extra and reply.model_extra["_debug_info"] == {"rendered_template": "user: Hello\n"}
    assert reply.choices[0].message.content == "" and reply.choices[0].finish_reason is None
    assert fake_engine.prompts == []
