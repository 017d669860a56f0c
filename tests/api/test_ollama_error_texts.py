"""Error texts as Ollama words them (issue 20 item 6), through a real server and the official client:
the texts clients show and match, taken from Ollama's routes.go, api/types.go (Options.FromMap),
server/create.go and Go's encoding/json (gin's ShouldBindJSON answers the decoder's own text)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from serving import RunningServer, clone_models, run_server
from skyllama.engine.fake import FakeEngine

MODEL = "smollm2:135m"


@pytest.fixture(scope="module")
def server(demo_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the module: every request here is refused before anything runs."""
    folder = clone_models(demo_models, tmp_path_factory.mktemp("texts") / "models")
    with run_server(folder, engine=FakeEngine()) as running:
        yield running


def error(server: RunningServer, path: str, body: object = None, raw: bytes | None = None) -> tuple[int, str]:
    r = httpx.post(server.url + path, json=body if raw is None else None, content=raw, timeout=30)
    assert r.headers["content-type"].startswith("application/json"), r.text
    return r.status_code, r.json()["error"]


def test_missing_model_on_each_route(server: RunningServer) -> None:
    # generate and embed look the empty name up (404); chat and embeddings check it first (400)
    assert error(server, "/api/generate", {"prompt": "hi"}) == (404, "model '' not found")
    assert error(server, "/api/generate", {"model": "", "prompt": "hi"}) == (404, "model '' not found")
    assert error(server, "/api/chat", {"messages": []}) == (400, "model is required")
    assert error(server, "/api/chat", {"model": "", "messages": []}) == (400, "model is required")
    assert error(server, "/api/embed", {"input": "hi"}) == (404, "model '' not found")
    assert error(server, "/api/embeddings", {"prompt": "hi"}) == (400, "model is required")


@pytest.mark.parametrize("value", [5, [1, "a"], {"a": 1}, True])
def test_embed_input_of_another_type(server: RunningServer, value: object) -> None:
    assert error(server, "/api/embed", {"model": "all-minilm", "input": value}) == (400, "invalid input type")


@pytest.mark.parametrize(("options", "message"), [
    ({"stop": "\n"}, 'option "stop" must be of type array'),
    ({"stop": ["a", 2]}, 'option "stop" must be of an array of strings'),
    ({"top_k": "40"}, 'option "top_k" must be of type integer'),
    ({"temperature": "0.1"}, 'option "temperature" must be of type float32'),
    ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
])
def test_option_types_as_from_map_words_them(server: RunningServer, options: dict, message: str) -> None:
    # Ollama answers these 500 (modelOptions' error reaches handleScheduleError's default);
    # skyllama keeps the safer 400 with Ollama's text (compatibility table)
    client = ollama.Client(host=server.url)
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model=MODEL, prompt="hi", options=options)
    assert (e.value.status_code, e.value.error) == (400, message)
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}], options=options)
    assert (e.value.status_code, e.value.error) == (400, message)


@pytest.mark.parametrize(("raw", "message"), [
    (b'{"model": "smollm2:135m", "prompt": "hi"', "unexpected EOF"),
    (b'{"model": "smollm2:135m", "prompt": "hi', "unexpected EOF"),
    (b'{"model": ', "unexpected EOF"),
    (b"", "missing request body"),
    (b" \n", "missing request body"),
    (b"not json", "invalid character 'o' in literal null (expecting 'u')"),
    (b'{"model" "x"}', "invalid character '\"' after object key"),
    (b'{"model": "x" "prompt": "y"}', "invalid character '\"' after object key:value pair"),
    (b'{"model": "x", "images": ["a" "b"]}', "invalid character '\"' after array element"),
    (b'{"model": "x",}', "invalid character '}' looking for beginning of object key string"),
    (b'{"model": }', "invalid character '}' looking for beginning of value"),
    (b'{"model": "a\nb"}', "invalid character '\\n' in string literal"),
])
@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/api/show", "/api/embed"])
def test_bodies_that_are_not_json_get_gos_decoder_text(server: RunningServer, path: str, raw: bytes,
                                                       message: str) -> None:
    assert error(server, path, raw=raw) == (400, message)


def test_truncated_body_on_openai_route_is_openai_shaped(server: RunningServer) -> None:
    r = httpx.post(server.url + "/v1/chat/completions", content=b'{"model": "x"', timeout=30)
    assert r.status_code == 400 and r.json()["error"]["message"] == "unexpected EOF"


def test_quantizing_a_quantized_model(server: RunningServer) -> None:
    client = ollama.Client(host=server.url)
    with pytest.raises(ollama.ResponseError) as e:
        client.create(model="again", from_=MODEL, quantize="q4_K_M")
    assert e.value.status_code == 400
    assert e.value.error == "quantization is only supported for F16, BF16 and F32 models (this one is Q4_1)"
