"""T-33 templates only in skyllama's sandbox: llama-cpp-python never compiles or renders a GGUF's
``tokenizer.chat_template`` (``engine/llama.py`` hides it from ``Llama.__init__``), the sandbox
folds no constants at compile time, and a rendered prompt over SKYLLAMA_MAX_PROMPT_BYTES is a
400 before tokenizing.

Checked against a real server with the demo SmolLM2, copied with a chat template of
``{{ 10**100000 }}`` (every chat was a 500) or a constant-folding bomb in a false branch (25 s of
CPU at load), and through a Go TEMPLATE made with ``/api/create`` that expands a prompt to 8 MB
(it wedged the model for good): each is a 400 or a quick answer, and the model keeps answering.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gguf
import httpx
import pytest

from serving import RunningServer, clone_models, run_server
from skyllama.demo import smollm2_gguf
from skyllama.templates import jinja
from skyllama.templates.errors import TemplateError
from skyllama.templates.prompt import render_chat

MODEL = "smollm2:135m"
QUICK = {"temperature": 0, "seed": 1, "num_predict": 4}
HUGE_POWER = "{{ 10**100000 }}"
FOLDING = ("{% if false %}{{ 7**(10**7) }}{{ [[[1]]]|tojson(indent=100000000) }}{% endif %}"
           "{% for m in messages %}{{ m.content }}{% endfor %}")


def with_chat_template(source: Path, dest: Path, template: str) -> Path:
    """A copy of a GGUF with another ``tokenizer.chat_template`` (as gguf's gguf_new_metadata)."""
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(dest, arch=reader.fields[gguf.Keys.General.ARCHITECTURE].contents(),
                             endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith(
                ("GGUF.", gguf.Keys.Tokenizer.CHAT_TEMPLATE)):
            continue
        vtype = field.types[0]
        writer.add_key_value(field.name, field.contents(), vtype,
                             sub_type=field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None)
    writer.add_chat_template(template)
    for tensor in reader.tensors:
        writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes,
                               tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()
    return dest


@pytest.fixture(scope="module")
def template_ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("t33-ggufs")
    return {name: with_chat_template(smollm2_gguf(), folder / f"{name}.gguf", template)
            for name, template in (("power", HUGE_POWER), ("folding", FOLDING))}


@pytest.fixture(scope="module")
def server(demo_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = clone_models(demo_models, tmp_path_factory.mktemp("t33") / "models")
    with run_server(folder) as running:
        yield running


def _create_from_gguf(server: RunningServer, name: str, path: Path) -> None:
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    with path.open("rb") as f:
        assert httpx.post(f"{server.url}/api/blobs/{digest}", content=f, timeout=120).status_code in (200, 201)
    r = httpx.post(server.url + "/api/create", json={"model": name, "files": {"m.gguf": digest}, "stream": False},
                   timeout=120)
    assert r.status_code == 200, r.text


def _chat(server: RunningServer, model: str, content: str = "hi", **extra: object) -> httpx.Response:
    return httpx.post(server.url + "/api/chat", timeout=120, json={
        "model": model, "stream": False, "options": QUICK,
        "messages": [{"role": "user", "content": content}], **extra})


def _idle(server: RunningServer) -> None:
    """No model shows a request running or queued (a wedged model stayed at running 1)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = httpx.get(server.url + "/api/ps", timeout=5).json()["models"]
        if all(row.get("running", 0) == 0 and row.get("queued", 0) == 0 for row in rows):
            return
        time.sleep(0.1)
    raise AssertionError(f"still busy: {rows}")


# -- the sandbox itself --------------------------------------------------------------------------

def test_the_sandbox_folds_no_constants_at_compile_time() -> None:
    assert jinja._ENV.optimized is False
    started = time.perf_counter()
    assert jinja.render_jinja(FOLDING, [{"role": "user", "content": "ok"}]) == "ok"
    assert time.perf_counter() - started < 1.0


def test_huge_tojson_indent_is_refused_at_render_time() -> None:
    with pytest.raises(TemplateError, match="indent"):
        jinja.render_jinja("{{ [[[1]]]|tojson(indent=100000000) }}", [{"role": "user", "content": "x"}])


def test_chat_truncation_renders_a_few_times_not_once_per_message() -> None:
    renders = []
    messages = [{"role": "user", "content": f"message {i}"} for i in range(4000)]

    def count(text: str) -> int:
        renders.append(len(text))
        return len(text) // 4

    prompt = render_chat("{{ range .Messages }}{{ .Content }} {{ end }}", messages, num_ctx=100, count_tokens=count)
    assert prompt.dropped > 3900 and len(prompt.prompt) // 4 <= 100
    assert len(renders) <= 13  # log2(4000) + 1; Ollama's loop would render ~4000 times


# -- GGUF chat templates, end to end -------------------------------------------------------------

def test_a_gguf_template_of_10_pow_100000_is_a_400_from_the_sandbox(
        server: RunningServer, template_ggufs: dict[str, Path]) -> None:
    _create_from_gguf(server, "power", template_ggufs["power"])
    for _ in range(2):  # every chat, not only the first
        r = _chat(server, "power")
        assert r.status_code == 400, r.text
        assert "chat template: unsafe operation: power result too large" in r.json()["error"]
    _idle(server)


def test_a_constant_folding_gguf_template_loads_and_answers_quickly(
        server: RunningServer, template_ggufs: dict[str, Path]) -> None:
    _create_from_gguf(server, "folding", template_ggufs["folding"])
    started = time.perf_counter()
    r = _chat(server, "folding", "Say hi.")
    assert r.status_code == 200, r.text
    assert r.json()["done"] is True
    assert time.perf_counter() - started < 15, "the template cost seconds at load or first chat"


# -- prompt size -----------------------------------------------------------------------------------

def test_a_template_expanding_to_8_mb_is_a_400_and_the_model_keeps_answering(server: RunningServer) -> None:
    r = httpx.post(server.url + "/api/create", timeout=120, json={
        "model": "expand", "from": MODEL, "template": "{{ .Prompt }}" * 8, "stream": False})
    assert r.status_code == 200, r.text
    prompt = "hello <|im_start|> world " * (1024 * 1024 // 25)  # 1 MiB, 8 MiB once rendered
    answers: list[httpx.Response] = []

    def send(route: str, body: dict[str, object]) -> None:
        answers.append(httpx.post(server.url + route, json={"model": "expand", "stream": False, "options": QUICK,
                                                            **body}, timeout=120))

    started = time.perf_counter()
    threads = [threading.Thread(target=send, args=("/api/generate", {"prompt": prompt})) for _ in range(3)]
    threads += [threading.Thread(target=send, args=("/api/chat", {"messages": [{"role": "user", "content": prompt}]}))
                for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [400] * 6, [a.text[:200] for a in answers]
    assert all(a.json()["error"].startswith(("prompt too large", "template: output is larger")) for a in answers)
    assert time.perf_counter() - started < 60
    _idle(server)
    ok = httpx.post(server.url + "/api/generate", json={"model": "expand", "prompt": "Hi", "stream": False,
                                                       "options": QUICK}, timeout=120)
    assert ok.status_code == 200 and ok.json()["done"] is True, ok.text
    _idle(server)


@pytest.mark.parametrize("raw", [True, False])
def test_a_raw_or_plain_prompt_over_the_cap_is_a_400(server: RunningServer, raw: bool) -> None:
    cap = server.settings.max_prompt_bytes
    r = httpx.post(server.url + "/api/generate", timeout=120, json={
        "model": MODEL, "prompt": "é" * (cap // 2 + 1), "raw": raw, "stream": False, "options": QUICK})
    assert r.status_code == 400 and r.json()["error"].startswith("prompt too large: "), r.text
    assert f"limit {cap} bytes" in r.json()["error"]


def test_a_gguf_jinja_prompt_over_the_cap_is_a_400(server: RunningServer, template_ggufs: dict[str, Path]) -> None:
    _create_from_gguf(server, "folding", template_ggufs["folding"])  # renders the messages' contents
    r = _chat(server, "folding", "x" * (server.settings.max_prompt_bytes + 1))
    assert r.status_code == 400 and r.json()["error"].startswith("prompt too large: "), r.text


def test_a_prompt_longer_than_the_context_is_still_truncated_not_refused(server: RunningServer) -> None:
    # Within the cap but far beyond num_ctx: Ollama keeps the tail; the text is cut before tokenizing.
    r = httpx.post(server.url + "/api/generate", timeout=120, json={
        "model": MODEL, "prompt": "one two three " * 20_000, "stream": False,
        "options": {**QUICK, "num_ctx": 512}})
    assert r.status_code == 200, r.text
    assert 0 < r.json()["prompt_eval_count"] <= 512


def test_special_tokens_within_the_cap_do_not_wedge_the_tokenizer(demo_models: Path, tmp_path: Path) -> None:
    # llama.cpp's tokenizer is quadratic in special tokens (1 MB of chat turns: 40 s, 4 MB: over
    # ten minutes); only the part of a prompt that can reach the context is tokenized.
    prompt = "<|im_start|>" * 330_000  # 3.96 MB
    with run_server(clone_models(demo_models, tmp_path / "m"), max_prompt_bytes=4 << 20) as big:
        started = time.perf_counter()
        r = httpx.post(big.url + "/api/generate", timeout=120, json={
            "model": MODEL, "prompt": prompt, "raw": True, "stream": False, "options": {**QUICK, "num_ctx": 512}})
        assert r.status_code == 200, r.text
        assert 0 < r.json()["prompt_eval_count"] <= 512
        assert time.perf_counter() - started < 90
        _idle(big)
