"""Create and show as Ollama does (issue 20 item 7), through a real server and the official client:
create.go's ``template error``, the Modelfile as Model.String and parser.go's ``quote`` write it,
``model_info`` as GetModelInfo and getModelData build it, a show request's ``system`` and ``options``."""

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
    folder = clone_models(demo_models, tmp_path_factory.mktemp("show") / "models")
    with run_server(folder, engine=FakeEngine()) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> ollama.Client:
    return ollama.Client(host=server.url)


@pytest.mark.parametrize(("template", "message"), [
    ("{{ .Prompt", "template error: template: :1: unclosed action"),
    ("{{ if .Prompt }}", "template error: template: :1: unexpected EOF"),
])
def test_template_that_does_not_parse(client: ollama.Client, template: str, message: str) -> None:
    with pytest.raises(ollama.ResponseError) as e:
        client.create(model="bad", from_=MODEL, template=template)
    assert (e.value.status_code, e.value.error) == (400, message)


def test_modelfile_quotes_as_ollama_and_round_trips(server: RunningServer, client: ollama.Client) -> None:
    client.create(model="quoted", from_=MODEL, template="{{ .Prompt }}", system="  edge \n two",
                  parameters={"stop": ["a b", "<|x|>"], "temperature": 0.5, "use_mmap": False},
                  messages=[{"role": "user", "content": 'say "hi"\nnow'}], license="MIT")
    text = client.show("quoted").modelfile or ""
    body = text.split("\n\n", 1)[1]
    assert body.splitlines()[0].startswith("FROM @sha256:")
    assert body.split("\n", 1)[1] == (
        "TEMPLATE {{ .Prompt }}\n"
        'SYSTEM "  edge \n two"\n'
        "PARAMETER stop a b\n"
        "PARAMETER stop <|x|>\n"
        "PARAMETER temperature 0.5\n"
        "PARAMETER use_mmap false\n"
        "LICENSE MIT\n"
        'MESSAGE user """say "hi"\nnow"""\n')
    r = httpx.post(server.url + "/api/create", json={"model": "again", "modelfile": text, "stream": False}, timeout=60)
    assert r.status_code == 200, r.text
    again = client.show("again")
    shown = httpx.post(server.url + "/api/show", json={"model": "again"}, timeout=60).json()
    assert shown["system"] == "  edge \n two" and again.template == "{{ .Prompt }}"  # the client has no .system
    assert again.parameters == client.show("quoted").parameters
    assert [(m["role"], m["content"]) for m in shown["messages"]] == [("user", 'say "hi"\nnow')]


def test_model_info_as_get_model_info(server: RunningServer) -> None:
    shown = httpx.post(server.url + "/api/show", json={"model": MODEL}, timeout=60).json()
    info = shown["model_info"]
    assert "general.name" not in info and "tokenizer.chat_template" not in info
    assert info["general.architecture"] == "llama" and info["general.parameter_count"] == 134515008
    # getModelData decodes with maxArraySize 0: every array that is not empty is null
    assert info["general.languages"] is None and info["tokenizer.ggml.tokens"] is None
    assert len(shown["tensors"]) == 272 and shown["tensors"][0] == {
        "name": "token_embd.weight", "type": "Q8_0", "shape": [576, 49152]}

    verbose = httpx.post(server.url + "/api/show", json={"model": MODEL, "verbose": True}, timeout=60).json()
    full = verbose["model_info"]
    assert "general.name" not in full and "tokenizer.chat_template" not in full
    assert full["general.languages"] == ["en"]
    assert len(full["tokenizer.ggml.tokens"]) == 49152 and full["tokenizer.ggml.tokens"][2] == "<|im_end|>"
    assert len(full["tokenizer.ggml.merges"]) == 48900 and len(full["tokenizer.ggml.token_type"]) == 49152
    assert verbose["tensors"] == shown["tensors"]


def test_show_request_system_and_options(server: RunningServer, client: ollama.Client) -> None:
    client.create(model="sys", from_=MODEL, system="Be brief.", parameters={"temperature": 0.5})
    shown = httpx.post(server.url + "/api/show", json={"model": "sys", "system": "Be long.",
                                                       "options": {"num_ctx": 2048, "stop": ["q"]}}, timeout=60).json()
    assert shown["system"] == "Be long."
    assert "\nSYSTEM Be long.\n" in shown["modelfile"] and "Be brief." not in shown["modelfile"]
    # GetModelInfo adds the request's options to the Modelfile it writes, not to `parameters`
    assert "\nPARAMETER num_ctx 2048\nPARAMETER stop q\nPARAMETER temperature 0.5\n" in shown["modelfile"]
    # the base model's stops and the stored temperature; the request's options are not there
    params = shown["parameters"].splitlines()
    assert "temperature                    0.5" in params and not any("num_ctx" in p or '"q"' in p for p in params)
    assert httpx.post(server.url + "/api/show", json={"model": "sys"}, timeout=60).json()["system"] == "Be brief."
