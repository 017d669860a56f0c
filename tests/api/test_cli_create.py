"""``skyllama create NAME -f Modelfile``: the client uploads local files as blobs, then creates."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import ollama
import pytest

from ggufs import write_tiny_gguf
from serving import RunningServer, free_port
from skyllama.cli import main
from skyllama.client.create import build_request, files_for_model
from skyllama.convert.demo_assets import minilm_model_dir


def run_cli(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str) -> int:
    monkeypatch.setenv("OLLAMA_HOST", url)
    return main(["create", *argv])


def test_create_from_a_safetensors_folder(server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(minilm_model_dir(), tmp_path / "minilm")
    (tmp_path / "Modelfile").write_text("# all-MiniLM-L6-v2\nFROM ./minilm\nPARAMETER num_ctx 256\n")
    assert run_cli(monkeypatch, server.url, "mini", "-f", str(tmp_path / "Modelfile")) == 0
    err = capsys.readouterr().err
    assert "copying file sha256:" in err and "converting model" in err and err.rstrip().endswith("success")

    client = ollama.Client(host=server.url)
    shown = client.show("mini")
    assert shown.details.family == "bert" and "embedding" in (shown.capabilities or [])
    assert "num_ctx" in (shown.parameters or "")
    r = httpx.post(f"{server.url}/api/embed", json={"model": "mini", "input": ["Why is the sky blue?"]}, timeout=120)
    assert r.status_code == 200 and len(r.json()["embeddings"][0]) == 384

    # Again, quantized: every blob is already there, so nothing is uploaded twice.
    assert run_cli(monkeypatch, server.url, "mini:q8", "-f", str(tmp_path / "Modelfile"), "--quantize", "q8_0") == 0
    err = capsys.readouterr().err
    assert "copying file" not in err and "using existing file sha256:" in err
    assert "quantizing F16 model to Q8_0" in err
    assert client.show("mini:q8").details.quantization_level == "Q8_0"


def test_the_folder_names_are_relative_and_skip_readmes(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(minilm_model_dir(), folder)
    names = {p.relative_to(folder).as_posix() for p in files_for_model(folder)}
    assert {"model.safetensors", "config.json", "tokenizer.json", "vocab.txt", "1_Pooling/config.json"} <= names
    assert "README.md" not in names and ".gitattributes" not in names
    (tmp_path / "Modelfile").write_text("FROM m\nSYSTEM hi\n")
    request, uploads = build_request("x", tmp_path / "Modelfile", "q4_K_M")
    assert request["files"]["1_Pooling/config.json"].startswith("sha256:") and request["quantize"] == "q4_K_M"
    assert request["system"] == "hi" and "from" not in request
    assert set(uploads) == set(request["files"].values())


def test_create_from_a_gguf_file_and_from_a_model_name(server: RunningServer, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_gguf(tmp_path / "tiny.gguf")
    (tmp_path / "Modelfile").write_text('FROM ./tiny.gguf\nTEMPLATE "{{ .Prompt }}"\n')
    assert run_cli(monkeypatch, server.url, "tiny", "-f", str(tmp_path / "Modelfile")) == 0
    (tmp_path / "Derived").write_text("FROM tiny\nSYSTEM Be brief.\n")
    assert run_cli(monkeypatch, server.url, "tiny-brief", "-f", str(tmp_path / "Derived")) == 0
    shown = ollama.Client(host=server.url).show("tiny-brief")
    assert shown.template == "{{ .Prompt }}" and "\nSYSTEM Be brief.\n" in (shown.modelfile or "")


def test_errors_are_clear(server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Modelfile").write_text("FROM no-such-model\n")
    assert run_cli(monkeypatch, server.url, "x", "-f", str(tmp_path / "Modelfile")) == 1
    assert "Error: base model 'no-such-model' not found" in capsys.readouterr().err

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"\x08" + bytes(7) + b"{}")
    (tmp_path / "Bad").write_text("FROM ./bad\n")
    assert run_cli(monkeypatch, server.url, "x", "-f", str(tmp_path / "Bad")) == 1
    assert "Error: config.json is missing" in capsys.readouterr().err

    assert run_cli(monkeypatch, server.url, "x", "-f", str(tmp_path / "Nope")) == 1
    assert "Error: could not read" in capsys.readouterr().err
    assert not list((server.settings.models / "manifests").rglob("*x*"))


def test_no_server_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Modelfile").write_text("FROM tiny\n")
    url = f"http://127.0.0.1:{free_port()}"
    assert run_cli(monkeypatch, url, "x", "-f", str(tmp_path / "Modelfile")) == 1
    assert f"could not connect to a running skyllama server at {url}" in capsys.readouterr().err
