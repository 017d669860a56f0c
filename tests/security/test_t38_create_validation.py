"""T-38 create validates what it stores: against a real server with the demo models, ``/api/create``
answers 400, and writes no manifest, for what would only fail later: a TEMPLATE that does not
parse (JSON and Modelfile forms), ``ADAPTER`` lines and ``adapters`` that are no LoRA for the base
model (llama.cpp would refuse them at every load; tests/api/test_lora.py has the shape and
architecture checks), more than one model GGUF in ``files``, and a stored ``num_ctx``
over SKYLLAMA_MAX_NUM_CTX (the server's setting, not a default). ``skyllama create -f`` shows the
server's message."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ggufs import write_tiny_gguf
from serving import RunningServer, clone_models, run_server
from skyllama.client.create import CreateError, create_model
from skyllama.demo import SMOLLM2_NAME


@pytest.fixture
def client(demo_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_server.url, timeout=120) as c:
        yield c


def _refused(c: httpx.Client, body: dict, needle: str) -> None:
    r = c.post("/api/create", json={"stream": False, **body})
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"], r.json()
    shown = c.post("/api/show", json={"model": body["model"]})
    assert shown.status_code == 404, f"{body['model']} was stored"


def _upload(c: httpx.Client, path: Path) -> str:
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert c.post(f"/api/blobs/{digest}", content=data).status_code in (200, 201)
    return digest


@pytest.mark.parametrize("template", ["{{ .Prompt", "{{ if }}", "{{ end }}", "{{ nosuchfunc .Prompt }}"])
def test_template_that_does_not_parse_is_400(client: httpx.Client, template: str) -> None:
    _refused(client, {"model": "bad-template", "from": SMOLLM2_NAME, "template": template}, "template")
    _refused(client, {"model": "bad-template-mf", "modelfile": f'FROM {SMOLLM2_NAME}\nTEMPLATE """{template}"""\n'},
             "template")
    good = client.post("/api/create", json={"model": "good-template", "from": SMOLLM2_NAME, "stream": False,
                                            "template": "{{ .System }} {{ .Prompt }}"})
    assert good.status_code == 200, good.text


def test_adapters_that_are_no_lora_are_refused(client: httpx.Client, tmp_path: Path) -> None:
    digest = _upload(client, write_tiny_gguf(tmp_path / "lora.gguf", seed=3))  # a model GGUF, not an adapter
    _refused(client, {"model": "with-adapter", "from": SMOLLM2_NAME, "adapters": {"lora.gguf": digest}},
             "expect general.type to be 'adapter'")
    _refused(client, {"model": "with-adapter-mf", "modelfile": f"FROM {SMOLLM2_NAME}\nADAPTER @{digest}\n"},
             "expect general.type to be 'adapter'")
    _refused(client, {"model": "with-adapter-mf", "modelfile": f"FROM {SMOLLM2_NAME}\nADAPTER ./lora.gguf\n"},
             "names a file")


def test_two_model_ggufs_are_refused(client: httpx.Client, tmp_path: Path) -> None:
    first = _upload(client, write_tiny_gguf(tmp_path / "a.gguf", seed=1))
    second = _upload(client, write_tiny_gguf(tmp_path / "b.gguf", seed=2))
    _refused(client, {"model": "two-models", "files": {"a.gguf": first, "b.gguf": second}}, "more than one model GGUF")
    one = client.post("/api/create", json={"model": "one-model", "files": {"a.gguf": first}, "stream": False})
    assert one.status_code == 200, one.text


def test_num_ctx_over_the_settings_cap_is_400(demo_models: Path, tmp_path: Path) -> None:
    with run_server(clone_models(demo_models, tmp_path / "small"), max_num_ctx=1024) as server, \
            httpx.Client(base_url=server.url, timeout=60) as c:
        _refused(c, {"model": "big-ctx", "from": SMOLLM2_NAME, "parameters": {"num_ctx": 2048}},
                 "parameter num_ctx must be between 0 and 1024")
        _refused(c, {"model": "big-ctx-mf", "modelfile": f"FROM {SMOLLM2_NAME}\nPARAMETER num_ctx 2048\n"}, "num_ctx")
        ok = c.post("/api/create", json={"model": "ctx-ok", "from": SMOLLM2_NAME, "parameters": {"num_ctx": 1024},
                                         "stream": False})
        assert ok.status_code == 200, ok.text
    # the cap is the server's setting, not a default: a larger one lets the same value through
    with run_server(clone_models(demo_models, tmp_path / "large"), max_num_ctx=262144) as server, \
            httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.post("/api/create", json={"model": "big-ctx", "from": SMOLLM2_NAME, "parameters": {"num_ctx": 200000},
                                        "stream": False})
        assert r.status_code == 200, r.text


def test_cli_create_shows_the_servers_message(demo_server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "lora.gguf").write_bytes(write_tiny_gguf(tmp_path / "x.gguf", seed=4).read_bytes())
    cases = {
        f"FROM {SMOLLM2_NAME}\nPARAMETER num_thread 1000000\n": "parameter num_thread must be between",
        f"FROM {SMOLLM2_NAME}\nADAPTER ./lora.gguf\n": "expect general.type to be 'adapter'",
        f'FROM {SMOLLM2_NAME}\nTEMPLATE """{{{{ .Prompt"""\n': "unclosed action",
    }
    for i, (text, needle) in enumerate(cases.items()):
        modelfile = tmp_path / f"Modelfile{i}"
        modelfile.write_text(text)
        with pytest.raises(CreateError, match=needle):
            create_model(demo_server.url, f"cli-{i}", modelfile, say=lambda _line: None)
