"""T-31 values checked before native code: against a real server with the demo models, token ids in
a generate ``context`` outside the vocabulary, and every numeric option outside its stated bound
(:mod:`skyllama.option_bounds`), are a 400 naming the value, for requests and for the parameters
``/api/create`` (JSON or Modelfile) would store; a model an older release stored with a bad value
is a 400 at request time (and cannot be copied by create), not a crash. Afterwards the server
still answers and a normal generate still works."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving import RunningServer
from skyllama.demo import SMOLLM2_NAME, smollm2_gguf
from skyllama.demo_embed import MINILM_NAME
from skyllama.digests import Digest
from skyllama.manifest import MEDIA_PARAMS, Layer, Manifest
from skyllama.names import ModelName

VOCAB = 49152  # SmolLM2's tokenizer.ggml.tokens

OUT_OF_RANGE: list[dict[str, object]] = [
    {"num_thread": 1_000_000}, {"num_thread": -1}, {"num_thread": 2**32 + 1},
    {"num_batch": -5}, {"num_batch": 10**9}, {"num_ctx": -1}, {"num_ctx": 10**9},
    {"num_gpu": -2}, {"num_gpu": 10**12}, {"main_gpu": -1}, {"main_gpu": 1000},
    {"num_keep": -2}, {"num_keep": 10**9}, {"repeat_last_n": -2}, {"repeat_last_n": 10**9},
    {"top_k": -1}, {"top_k": 10**12}, {"top_p": 1.5}, {"min_p": -0.1}, {"typical_p": 2},
    {"temperature": -1}, {"temperature": 1e6}, {"mirostat": 3}, {"mirostat": -1},
    {"mirostat_tau": -1}, {"mirostat_eta": 1e9}, {"repeat_penalty": -1}, {"presence_penalty": 1e9},
    {"frequency_penalty": -1e9}, {"seed": 2**70}, {"num_predict": -5}, {"num_parallel": 10**6},
    {"temperature": 10**400},  # an integer no float can hold
]


@pytest.fixture
def client(demo_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_server.url, timeout=120) as c:
        yield c


def _generate(c: httpx.Client, **body: object) -> httpx.Response:
    return c.post("/api/generate", json={"model": SMOLLM2_NAME, "prompt": "Hi", "stream": False,
                                         **body})


def _still_serving(c: httpx.Client) -> None:
    assert c.get("/api/version").status_code == 200
    r = _generate(c, options={"num_predict": 3, "temperature": 0, "seed": 2**40})  # a seed past uint32 is cut
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["done"] is True and body["eval_count"] >= 1
    again = _generate(c, context=body["context"], options={"num_predict": 2, "temperature": 0})
    assert again.status_code == 200, again.text


def test_context_token_outside_the_vocabulary_is_400(client: httpx.Client) -> None:
    for context in ([-1], [10**9], [VOCAB], [1, 2, -7], ["a"], [1.5]):
        r = _generate(client, context=context)
        assert r.status_code == 400, (context, r.text)
        assert "context" in r.json()["error"]
    assert _generate(client, context=[VOCAB - 1], options={"num_predict": 1}).status_code == 200
    _still_serving(client)


def test_each_option_out_of_range_is_400_and_nothing_breaks(client: httpx.Client) -> None:
    for options in OUT_OF_RANGE:
        key = next(iter(options))
        r = _generate(client, options=options)
        assert r.status_code == 400, (options, r.text)
        assert key in r.json()["error"], (options, r.json())
    chat = client.post("/api/chat", json={"model": SMOLLM2_NAME, "messages": [{"role": "user", "content": "Hi"}],
                                          "stream": False, "options": {"num_thread": 1_000_000}})
    assert chat.status_code == 400 and "num_thread" in chat.json()["error"]
    embed = client.post("/api/embed", json={"model": MINILM_NAME, "input": "hi", "options": {"num_batch": -3}})
    assert embed.status_code == 400 and "num_batch" in embed.json()["error"]
    _still_serving(client)


def test_bounds_follow_the_hosts_cores(client: httpx.Client) -> None:
    import os

    cores = os.cpu_count() or 1
    r = _generate(client, options={"num_thread": cores * 2 + 1})
    assert r.status_code == 400 and f"between 0 and {cores * 2}" in r.json()["error"]


@pytest.mark.parametrize("options", [{"num_thread": 1_000_000}, {"num_ctx": 10**9}, {"top_p": 7}, {"mirostat": 9}])
def test_create_refuses_to_store_out_of_range_parameters(client: httpx.Client, options: dict) -> None:
    (key, value), = options.items()
    as_json = client.post("/api/create", json={"model": "bad-json", "from": SMOLLM2_NAME, "parameters": options,
                                               "stream": False})
    as_text = client.post("/api/create", json={"model": "bad-text", "from": SMOLLM2_NAME, "stream": False,
                                               "parameters": {key: str(value)}})
    modelfile = client.post("/api/create", json={"model": "bad-modelfile", "stream": False,
                                                 "modelfile": f"FROM {SMOLLM2_NAME}\nPARAMETER {key} {value}\n"})
    for r in (as_json, as_text, modelfile):
        assert r.status_code == 400, r.text
        assert f"parameter {key}" in r.json()["error"]
    names = {m["name"] for m in client.get("/api/tags").json()["models"]}
    assert not names & {"bad-json:latest", "bad-text:latest", "bad-modelfile:latest"}
    _still_serving(client)


def _legacy_model(server: RunningServer, params: dict) -> str:
    """A copy of the demo model whose params layer an older release wrote: stored straight through
    the stores, as no create of this release would write it."""
    runtime = server.runtime
    base = runtime.catalog.get(SMOLLM2_NAME, None)
    data = json.dumps(params).encode()
    digest = Digest.of_bytes(data)
    runtime.blobs.put_bytes(data, digest)
    layers = [x for x in base.manifest.layers if x.media_type != MEDIA_PARAMS] + [Layer(MEDIA_PARAMS, digest, len(data))]
    manifest = Manifest(config=base.manifest.config, layers=tuple(layers))
    runtime.manifests.put(ModelName.parse("legacy"), manifest.to_bytes())
    return "legacy:latest"


def test_stored_out_of_range_parameter_is_400_at_request_time(client: httpx.Client, demo_server: RunningServer) -> None:
    name = _legacy_model(demo_server, {"num_thread": 1_000_000, "stop": ["<|im_end|>"]})
    r = client.post("/api/generate", json={"model": name, "prompt": "Hi", "stream": False})
    assert r.status_code == 400, r.text
    assert "model parameter num_thread" in r.json()["error"] and "override" in r.json()["error"]
    chat = client.post("/api/chat", json={"model": name, "messages": [{"role": "user", "content": "Hi"}],
                                          "stream": False})
    assert chat.status_code == 400
    # create FROM it keeps what it stores within bounds: refused unless the request replaces the value
    copy = client.post("/api/create", json={"model": "legacy-copy", "from": name, "stream": False})
    assert copy.status_code == 400 and "num_thread" in copy.json()["error"]
    fixed = client.post("/api/create", json={"model": "legacy-fixed", "from": name, "stream": False,
                                             "parameters": {"num_thread": 1}})
    assert fixed.status_code == 200, fixed.text
    # a request that overrides the stored value runs
    ok = client.post("/api/generate", json={"model": name, "prompt": "Hi", "stream": False,
                                            "options": {"num_thread": 1, "num_predict": 2}})
    assert ok.status_code == 200, ok.text
    _still_serving(client)


def test_stored_value_of_the_wrong_type_is_400_not_500(client: httpx.Client, demo_server: RunningServer) -> None:
    name = _legacy_model(demo_server, {"num_ctx": "lots"})
    r = client.post("/api/generate", json={"model": name, "prompt": "Hi", "stream": False})
    assert r.status_code == 400 and "num_ctx" in r.json()["error"]


def test_special_token_id_past_the_vocabulary_in_a_gguf_is_not_detokenized(
        client: httpx.Client, demo_server: RunningServer, tmp_path: Path) -> None:
    """A GGUF without a TEMPLATE layer renders its own chat template with its bos/eos tokens: a
    crafted ``tokenizer.ggml.bos_token_id`` past the vocabulary must not reach llama.cpp."""
    data = bytearray(smollm2_gguf().read_bytes())
    key = b"tokenizer.ggml.bos_token_id"
    at = data.index(key) + len(key)
    assert data[at:at + 4] == (4).to_bytes(4, "little")  # a uint32 value follows
    data[at + 4:at + 8] = (10**9).to_bytes(4, "little")
    crafted = tmp_path / "crafted.gguf"
    crafted.write_bytes(bytes(data))
    digest = demo_server.runtime.blobs.put_file(crafted)
    r = client.post("/api/create", json={"model": "crafted", "files": {"crafted.gguf": str(digest)}, "stream": False})
    assert r.status_code == 200, r.text
    chat = client.post("/api/chat", json={"model": "crafted", "messages": [{"role": "user", "content": "Hi"}],
                                          "stream": False, "options": {"num_predict": 2}})
    assert chat.status_code == 200, chat.text
    _still_serving(client)
