"""``/api/generate`` through a real server with the real SmolLM2-135M and the official client."""

from __future__ import annotations

import json

import httpx
import jsonschema
import ollama
import pytest

from serving import RunningServer

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 7, "num_predict": 12, "num_ctx": 1024}


@pytest.fixture
def client(demo_server: RunningServer) -> ollama.Client:
    return ollama.Client(host=demo_server.url)


def test_generate_not_streamed(client: ollama.Client) -> None:
    r = client.generate(model=MODEL, prompt="Why is the sky blue?", options=GREEDY)
    assert r.done and r.done_reason in ("stop", "length")
    assert r.response.strip()
    assert 0 < r.eval_count <= 12
    assert r.prompt_eval_count and r.prompt_eval_count > 5
    assert r.total_duration and r.total_duration >= (r.eval_duration or 0) > 0
    assert r.load_duration and r.load_duration > 0
    assert r.context and all(isinstance(t, int) for t in r.context)


def test_stream_matches_single_response_and_context_continues(client: ollama.Client) -> None:
    whole = client.generate(model=MODEL, prompt="Name a fruit.", options=GREEDY)
    chunks = list(client.generate(model=MODEL, prompt="Name a fruit.", options=GREEDY, stream=True))
    assert [c.done for c in chunks].count(True) == 1 and chunks[-1].done
    assert len(chunks) > 2
    assert "".join(c.response for c in chunks) == whole.response
    assert chunks[-1].eval_count == whole.eval_count and chunks[-1].context == whole.context
    follow = client.generate(model=MODEL, prompt="And another?", context=whole.context, options=GREEDY)
    alone = client.generate(model=MODEL, prompt="And another?", options=GREEDY)
    assert follow.prompt_eval_count > alone.prompt_eval_count + len(whole.context) // 2


def test_stop_string_is_never_emitted_even_across_tokens(client: ollama.Client) -> None:
    prompt = "Write the numbers from 1 to 20 separated by commas."
    free = client.generate(model=MODEL, prompt=prompt, options={**GREEDY, "num_predict": 24}).response
    assert len(free) > 8
    stop = free[4:8]  # four characters spanning at least one token boundary
    stopped = client.generate(model=MODEL, prompt=prompt, options={**GREEDY, "num_predict": 24, "stop": [stop]})
    assert stopped.done_reason == "stop"
    assert stop not in stopped.response
    assert stopped.response == free[: free.index(stop)]


def test_raw_mode_uses_the_prompt_as_is(client: ollama.Client) -> None:
    raw = client.generate(model=MODEL, prompt="<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                          raw=True, options=GREEDY)
    templated = client.generate(model=MODEL, prompt="Hi", options=GREEDY)
    assert raw.response == templated.response
    assert not raw.context


def test_format_json_schema_output_validates(client: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    r = client.generate(model=MODEL, prompt="Describe a person as JSON.", format=schema,
                        options={**GREEDY, "num_predict": 48})
    jsonschema.validate(json.loads(r.response), schema)
    r = client.generate(model=MODEL, prompt="A colour as JSON.", format="json", options={**GREEDY, "num_predict": 48})
    assert isinstance(json.loads(r.response), dict)


def test_system_and_template_overrides(client: ollama.Client) -> None:
    r = client.generate(model=MODEL, prompt="x", template="Repeat after me: hello hello hello{{ .Prompt }}",
                        options={**GREEDY, "num_predict": 4})
    assert r.response.strip()
    with_system = client.generate(model=MODEL, prompt="Who are you?", system="You are a pirate.", options=GREEDY)
    assert with_system.prompt_eval_count > client.generate(model=MODEL, prompt="Who are you?",
                                                           options=GREEDY).prompt_eval_count


def test_empty_prompt_loads_and_keep_alive_zero_unloads(client: ollama.Client) -> None:
    loaded = client.generate(model=MODEL, prompt="")
    assert loaded.done and loaded.done_reason == "load" and loaded.response == ""
    assert [m.model for m in client.ps().models] == [MODEL]
    unloaded = client.generate(model=MODEL, prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert client.ps().models == []


BAD = [
    ({"prompt": "x", "raw": True, "system": "s"}, "raw mode does not support template, system, or context"),
    ({"prompt": "x", "raw": True, "context": [1, 2]}, "raw mode"),
    ({"prompt": "x", "options": {"temperature": "hot"}}, "temperature"),
    ({"prompt": "x", "options": {"num_predict": -2}}, "num_predict"),
    ({"prompt": "x", "options": {"num_ctx": 10_000_000}}, "num_ctx"),
    ({"prompt": "x", "images": ["not base64!"]}, "base64"),
    ({"prompt": "x", "images": ["aGVsbG8="]}, "does not support images"),
    ({"prompt": "x", "format": {"type": "bogus"}}, "JSON schema"),
    ({"prompt": "x", "format": 42}, "format"),
    ({"prompt": "x", "keep_alive": "soon"}, "duration"),
    ({"prompt": "x", "think": True}, "does not support thinking"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_bad_requests_are_400(demo_server: RunningServer, body: dict, message: str) -> None:
    r = httpx.post(f"{demo_server.url}/api/generate", json={"model": MODEL, **body}, timeout=60)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


def test_suffix_needs_an_insert_template_and_unknown_model_is_404(demo_server: RunningServer) -> None:
    r = httpx.post(f"{demo_server.url}/api/generate", json={"model": MODEL, "prompt": "a", "suffix": "b"})
    # Ollama's CheckCapabilities names the model in full
    assert r.status_code == 400 and r.json() == {"error": f"registry.ollama.ai/library/{MODEL} does not support insert"}
    r = httpx.post(f"{demo_server.url}/api/generate", json={"model": "missing", "prompt": "a"})
    assert r.status_code == 404 and r.json() == {"error": "model 'missing' not found"}


def test_fill_in_middle_with_a_suffix_template(client: ollama.Client) -> None:
    client.create(model="smol-fim", from_=MODEL,
                  template="<|im_start|>user\nComplete between {{ .Prompt }} and {{ .Suffix }}<|im_end|>\n"
                           "<|im_start|>assistant\n")
    r = client.generate(model="smol-fim", prompt="def add(a, b):", suffix="    return c", options=GREEDY)
    assert r.done and r.eval_count > 0
