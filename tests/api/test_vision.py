"""Images through a vision projector (issue 22 item 1), against a real server and runner processes.

The projector is generated per session (``tests/vision_assets.py``: random weights, llama.cpp's
``clip`` keys, SmolLM2's width); the reference is llama-cpp-python's own ``MTMDChatHandler`` on the
same two files and image, with a template that renders the image marker then the text, which is
what a raw ``[img-0]`` prompt is.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import llama_cpp
import ollama
import pytest
from llama_cpp.llama_chat_format import MTMDChatHandler

from serving import RunningServer, clone_models, run_server
from skyllama.demo import SMOLLM2_NAME, smollm2_gguf
from skyllama.manifest import MEDIA_PROJECTOR
from vision_assets import png, write_projector

TEXT = "Describe the image:"
OPTIONS = {"temperature": 0, "repeat_penalty": 1.0, "num_predict": 12, "seed": 3}
IMAGE_A, IMAGE_B = png(seed=1), png(seed=2)
VISION = "smol-vision"


@pytest.fixture(scope="module")
def projector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_projector(tmp_path_factory.mktemp("vision") / "mmproj.gguf")


@pytest.fixture(scope="module")
def vision_server(demo_models: Path, tmp_path_factory: pytest.TempPathFactory, projector: Path) -> Iterator[RunningServer]:
    """The demo models plus smol-vision: SmolLM2 with the projector as a second file."""
    folder = clone_models(demo_models, tmp_path_factory.mktemp("vision-models"))
    with run_server(folder) as server:
        digest = ollama.Client(host=server.url).create_blob(projector)
        r = httpx.post(f"{server.url}/api/create", timeout=120, json={
            "model": VISION, "from": SMOLLM2_NAME, "files": {"mmproj.gguf": digest}, "stream": False})
        assert r.status_code == 200, r.text
        yield server


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def generate(server: RunningServer, prompt: str, images: list[bytes] | None, model: str = VISION,
             **extra: Any) -> httpx.Response:
    body = {"model": model, "prompt": prompt, "stream": False, "options": OPTIONS, **extra}
    if images is not None:
        body["images"] = [b64(i) for i in images]
    return httpx.post(f"{server.url}/api/generate", json=body, timeout=300)


class _MarkerThenText(MTMDChatHandler):
    """MTMDChatHandler with a template that writes each part as it is: the marker, then the text."""

    def _get_chat_template(self, llama_model: llama_cpp.Llama) -> str:
        return "{% for m in messages %}{% for p in m['content'] %}{{ p['text'] }}{% endfor %}{% endfor %}"


def reference(projector: Path, image: bytes) -> str:
    llm = llama_cpp.Llama(str(smollm2_gguf()), n_ctx=2048, n_threads=2, verbose=False,
                          chat_handler=_MarkerThenText(str(projector), verbose=False))
    try:
        out = llm.create_chat_completion(messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(image)}},
            {"type": "text", "text": TEXT}]}],  # type: ignore[list-item]
            temperature=0, max_tokens=OPTIONS["num_predict"], repeat_penalty=1.0)
        return str(out["choices"][0]["message"]["content"])
    finally:
        llm.close()


def test_create_show_and_tags_report_vision(vision_server: RunningServer, projector: Path) -> None:
    client = ollama.Client(host=vision_server.url)
    shown = client.show(VISION)
    assert "vision" in (shown.capabilities or [])
    info = httpx.post(f"{vision_server.url}/api/show", json={"model": VISION}).json()["projector_info"]
    assert info["clip.projector_type"] == "mlp" and info["clip.vision.projection_dim"] == 576
    assert "vision" not in (client.show(SMOLLM2_NAME).capabilities or [])
    tags = {m["name"]: m for m in httpx.get(f"{vision_server.url}/api/tags").json()["models"]}
    assert "vision" in tags[f"{VISION}:latest"]["capabilities"]
    assert "clip" in tags[f"{VISION}:latest"]["details"]["families"]
    # show's Modelfile names the projector as a second FROM, and creates the same model again
    digest = client.create_blob(projector)
    assert f"FROM @{digest}" in (shown.modelfile or "")
    r = httpx.post(f"{vision_server.url}/api/create", timeout=120,
                   json={"model": "smol-vision-mf", "modelfile": shown.modelfile, "stream": False})
    assert r.status_code == 200, r.text
    again = httpx.post(f"{vision_server.url}/api/show", json={"model": "smol-vision-mf"}).json()
    assert "vision" in again["capabilities"] and again["projector_info"] == info


def test_an_image_changes_the_answer_as_mtmd_does(vision_server: RunningServer, projector: Path) -> None:
    first = generate(vision_server, f"[img-0]{TEXT}", [IMAGE_A], raw=True)
    assert first.status_code == 200, first.text
    again = generate(vision_server, f"[img-0]{TEXT}", [IMAGE_A], raw=True).json()
    other = generate(vision_server, f"[img-0]{TEXT}", [IMAGE_B], raw=True).json()
    text_only = generate(vision_server, TEXT, None, raw=True).json()
    answer = first.json()
    assert answer["response"] == again["response"]  # same image, same seed: same tokens
    assert answer["response"] != other["response"] != text_only["response"]
    assert answer["prompt_eval_count"] == text_only["prompt_eval_count"] + 4  # 4 image tokens (2 x 2 patches)
    assert answer["response"] == reference(projector, IMAGE_A)  # token for token, mtmd's own path
    assert other["response"] == reference(projector, IMAGE_B)


def test_official_client_generate_and_chat_with_images(vision_server: RunningServer, tmp_path: Path) -> None:
    client = ollama.Client(host=vision_server.url)
    path = tmp_path / "a.png"
    path.write_bytes(IMAGE_A)
    with_image = client.generate(VISION, TEXT, images=[path], options=OPTIONS)
    without = client.generate(VISION, TEXT, options=OPTIONS)
    assert with_image.response and with_image.response != without.response
    # the image's 4 tokens where the template put its one marker (tagged once, not twice)
    assert with_image.prompt_eval_count == (without.prompt_eval_count or 0) + 4
    streamed = "".join(p.response for p in client.generate(VISION, TEXT, images=[path], options=OPTIONS, stream=True))
    assert streamed == with_image.response
    chat = client.chat(VISION, messages=[{"role": "user", "content": TEXT, "images": [IMAGE_A]}], options=OPTIONS)
    plain = client.chat(VISION, messages=[{"role": "user", "content": TEXT}], options=OPTIONS)
    assert chat.message.content and chat.message.content != plain.message.content
    assert chat.prompt_eval_count == (plain.prompt_eval_count or 0) + 4
    two = client.chat(VISION, options=OPTIONS, messages=[
        {"role": "user", "content": "first [img] then [img]", "images": [IMAGE_A, IMAGE_B]}])
    swapped = client.chat(VISION, options=OPTIONS, messages=[
        {"role": "user", "content": "first [img] then [img]", "images": [IMAGE_B, IMAGE_A]}])
    assert two.message.content != swapped.message.content  # each image where its [img] was


def test_openai_and_anthropic_images(vision_server: RunningServer) -> None:
    url = "data:image/png;base64," + b64(IMAGE_A)
    ollama_chat = httpx.post(f"{vision_server.url}/api/chat", timeout=300, json={
        "model": VISION, "stream": False, "options": OPTIONS,
        "messages": [{"role": "user", "content": TEXT, "images": [b64(IMAGE_A)]}]}).json()["message"]["content"]
    r = httpx.post(f"{vision_server.url}/v1/chat/completions", timeout=300, json={
        "model": VISION, "temperature": 0, "seed": 3, "max_tokens": 12,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                  {"type": "text", "text": TEXT}]}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
    a = httpx.post(f"{vision_server.url}/v1/messages", timeout=300, json={
        "model": VISION, "max_tokens": 12, "temperature": 0,
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(IMAGE_A)}},
            {"type": "text", "text": TEXT}]}]})
    assert a.status_code == 200, a.text
    assert a.json()["content"][0]["text"]
    assert ollama_chat


def test_images_for_a_model_without_projector_are_refused(vision_server: RunningServer) -> None:
    r = generate(vision_server, TEXT, [IMAGE_A], model=SMOLLM2_NAME)
    assert r.status_code == 400
    assert r.json()["error"] == f'"{SMOLLM2_NAME}" does not support images'


@pytest.mark.parametrize("images, needle", [
    (["bm90IGFuIGltYWdl"], "image 0 is not a PNG, JPEG, GIF or BMP image"),  # base64 of "not an image"
    (["!!!"], "illegal base64 data"),
    ([b64(IMAGE_A)] * 17, "too many images"),
])
def test_bad_images_are_400s(vision_server: RunningServer, images: list[str], needle: str) -> None:
    r = httpx.post(f"{vision_server.url}/api/generate", timeout=60,
                   json={"model": VISION, "prompt": TEXT, "images": images, "stream": False})
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    chat = httpx.post(f"{vision_server.url}/api/chat", timeout=60, json={
        "model": VISION, "stream": False, "messages": [{"role": "user", "content": TEXT, "images": images}]})
    assert chat.status_code == 400 and needle in chat.json()["error"]


def test_image_over_the_size_cap_is_400(demo_models: Path, tmp_path: Path) -> None:
    with run_server(clone_models(demo_models, tmp_path / "m"), max_image_bytes=1024) as server:
        r = httpx.post(f"{server.url}/api/generate", timeout=60, json={
            "model": SMOLLM2_NAME, "prompt": TEXT, "images": [b64(b"\x89PNG" + b"\0" * 2000)], "stream": False})
        assert r.status_code == 400 and "image too large" in r.json()["error"]


def test_projector_that_does_not_fit_is_a_400(vision_server: RunningServer, tmp_path: Path) -> None:
    client = ollama.Client(host=vision_server.url)
    wide = client.create_blob(write_projector(tmp_path / "wide.gguf", n_embd_text=640))
    r = httpx.post(f"{vision_server.url}/api/create", timeout=60, json={
        "model": "bad-vision", "from": SMOLLM2_NAME, "files": {"mmproj.gguf": wide}, "stream": False})
    assert r.status_code == 400
    assert "mismatch between text model (n_embd = 576) and mmproj (n_embd = 640)" in r.json()["error"]
    huge = client.create_blob(write_projector(tmp_path / "huge.gguf", image_size=28, projection_dim=1 << 20))
    r = httpx.post(f"{vision_server.url}/api/create", timeout=60, json={
        "model": "bad-vision", "from": SMOLLM2_NAME, "files": {"mmproj.gguf": huge}, "stream": False})
    assert r.status_code == 400 and "clip.vision.projection_dim must be" in r.json()["error"]
    assert httpx.post(f"{vision_server.url}/api/show", json={"model": "bad-vision"}).status_code == 404


def test_projector_with_a_crafted_header_is_a_400(vision_server: RunningServer, projector: Path, tmp_path: Path) -> None:
    data = bytearray(projector.read_bytes())
    data[8:16] = (1 << 40).to_bytes(8, "little")  # tensor_count: far more than the file could hold
    crafted = tmp_path / "crafted.gguf"
    crafted.write_bytes(bytes(data))
    digest = ollama.Client(host=vision_server.url).create_blob(crafted)
    r = httpx.post(f"{vision_server.url}/api/create", timeout=60, json={
        "model": "bad-vision", "from": SMOLLM2_NAME, "files": {"mmproj.gguf": digest}, "stream": False})
    assert r.status_code == 400, r.text


def test_the_manifest_holds_a_projector_layer(vision_server: RunningServer, projector: Path) -> None:
    path = vision_server.settings.models / "manifests" / "registry.ollama.ai" / "library" / VISION / "latest"
    layers = json.loads(path.read_text())["layers"]
    assert [x["size"] for x in layers if x["mediaType"] == MEDIA_PROJECTOR] == [projector.stat().st_size]
