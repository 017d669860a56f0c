"""The CLI as an ``ollama`` user knows it, against real servers: ``--version``/``-v`` (versionHandler),
``run --verbose``'s timings (Metrics.Summary, Go durations), ``show --verbose`` with Go's value
formatting, the interactive ``/show``, ``/set`` and ``/?`` (interactive.go), no ``INFO httpx`` lines
from a client command, and pull progress that ends in Ollama's order."""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fake_registry import FakeRegistry, serve_registry
from serving import RunningServer, clone_models, free_port, run_server
from skyllama import OLLAMA_COMPAT_VERSION
from skyllama.cli import main
from skyllama.client.formatting import wrap_words
from skyllama.client.gofmt import go_duration, go_float, go_value
from skyllama.client.http import Client
from skyllama.client.interactive import interactive
from skyllama.client.run import metrics_summary
from skyllama.durations import parse_go_duration
from skyllama.engine.fake import FakeEngine

MODEL = "smollm2:135m"
CONFIG = b'{"model_format":"gguf","model_family":"llama","file_type":"F32"}'


@pytest.fixture
def host(demo_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    monkeypatch.setenv("OLLAMA_HOST", demo_server.url)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return demo_server


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- --version ------------------------------------------------------------------------------------

def test_version_is_the_servers_then_a_warning_when_the_client_differs(
        host: RunningServer, demo_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--version", "-v"):
        assert cli(capsys, flag) == (0, f"ollama version is {OLLAMA_COMPAT_VERSION}\n", "")
    with run_server(clone_models(demo_models, tmp_path / "old"), api_version="0.5.1") as old:
        monkeypatch.setenv("OLLAMA_HOST", old.url)
        assert cli(capsys, "-v") == (0, f"ollama version is 0.5.1\nWarning: client version is {OLLAMA_COMPAT_VERSION}\n", "")
    port = free_port()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    assert cli(capsys, "--version") == (0, f"Warning: could not connect to a running skyllama server at "
                                           f"http://127.0.0.1:{port}\nWarning: client version is {OLLAMA_COMPAT_VERSION}\n", "")


# -- run --verbose ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("ns", "text"), [(0, "0s"), (999, "999ns"), (850_000, "850µs"), (12_345_000, "12.345ms"),
                                          (1_234_567_800, "1.2345678s"), (2_000_000_000, "2s"),
                                          (123_456_789_012, "2m3.456789012s"), (3_723_500_000_000, "1h2m3.5s")])
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


def test_metrics_summary_is_ollamas() -> None:
    final = {"total_duration": 1_234_567_800, "load_duration": 850_000, "prompt_eval_count": 26,
             "prompt_eval_duration": 12_345_000, "eval_count": 12, "eval_duration": 250_000_000}
    assert metrics_summary(final) == ("total duration:       1.2345678s\n"
                                      "load duration:        850µs\n"
                                      "prompt eval count:    26 token(s)\n"
                                      "prompt eval duration: 12.345ms\n"
                                      "prompt eval rate:     2106.12 tokens/s\n"
                                      "eval count:           12 token(s)\n"
                                      "eval duration:        250ms\n"
                                      "eval rate:            48.00 tokens/s\n")
    assert metrics_summary({"total_duration": 5_000, "eval_count": 3}) == ("total duration:       5µs\n"
                                                                           "eval count:           3 token(s)\n")


def test_run_verbose_prints_go_durations(demo_fake_server: RunningServer, fake_engine: FakeEngine,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OLLAMA_HOST", demo_fake_server.url)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    fake_engine.enqueue(["One", " two."])
    code, out, err = cli(capsys, "run", MODEL, "hi", "--verbose")
    assert code == 0 and out == "One two.\n\n"
    # the fake engine times a token at 1 µs; the total and the load are the server's clock
    assert "prompt eval count:    52 token(s)\nprompt eval duration: 1µs\nprompt eval rate:     52000000.00 tokens/s\n" in err
    assert "eval count:           2 token(s)\neval duration:        2µs\neval rate:            1000000.00 tokens/s\n" in err
    printed = {m[1]: m[2] for m in re.finditer(r"^(total|load) duration: +(\S+)$", err, re.M)}
    assert "total" in printed, err
    for text in printed.values():  # Go's time.Duration String: 12.345678ms below a second, no trailing zeros
        assert go_duration(round(parse_go_duration(text) * 1e9)) == text, err


# -- show --------------------------------------------------------------------------------------------

def test_go_values() -> None:
    assert [go_float(v) for v in (134515008, 1e-05, 8192, 100000, 1000000, 0.5)] == [
        "1.34515008e+08", "1e-05", "8192", "100000", "1e+06", "0.5"]
    assert [go_value(v) for v in (None, ["en"], [1, 2.5, "a"], True)] == ["<nil>", "[en]", "[1 2.5 a]", "true"]


def test_show_verbose_prints_values_as_go_does(host: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "show", MODEL, "--verbose")
    assert code == 0
    metadata = out.split("  Metadata\n", 1)[1].split("\n\n", 1)[0]
    assert "None" not in metadata and "['" not in metadata and "True" not in metadata and "False" not in metadata
    # a float32 as Go's JSON writes it (the API's value too), not the float64 of its bits
    assert re.search(r"^    llama\.attention\.layer_norm_rms_epsilon\s{4,}1e-05$", metadata, re.M), metadata
    shown = httpx.post(f"{host.url}/api/show", json={"model": MODEL}, timeout=30).json()
    assert shown["model_info"]["llama.attention.layer_norm_rms_epsilon"] == 1e-05
    assert re.search(r"^    general\.languages\s{4,}\[en\]$", metadata, re.M), metadata
    assert re.search(r"^    general\.parameter_count\s{4,}1\.34515\d*e\+08$", metadata, re.M), metadata
    assert re.search(r"^    tokenizer\.ggml\.tokens\s{4,}\[\S+ \.\.\.\+\d+ more\]$", metadata, re.M), metadata
    tensors = out.split("  Tensors\n", 1)[1]
    assert re.search(r"^    token_embd\.weight\s{4,}\w+\s{4,}\[576 49152\]$", tensors, re.M), tensors
    assert re.search(r"^  Model\n    architecture        llama\n    parameters          134\.52M\n"
                     r"    context length      \d+\n    embedding length    576\n    quantization        \w+\n\n",
                     out, re.M), out


def test_show_wraps_cells_as_tablewriter(host: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert wrap_words("The quick brown fox jumps over the lazy dog and keeps on running", 30) == [
        "The quick brown fox jumps", "over the lazy dog and keeps on", "running"]  # least raggedness
    words = " ".join(f"word{i:02d}" for i in range(24))  # 24 x 6 letters + spaces = 167 characters
    r = httpx.post(f"{host.url}/api/create", timeout=120, json={
        "model": "wordy", "from": MODEL, "system": f"{words}\nsecond line\nthird line", "stream": False})
    assert r.status_code == 200, r.text
    code, out, _ = cli(capsys, "show", "wordy")
    system = out.split("  System\n", 1)[1].split("\n\n", 1)[0].splitlines()
    # 14 words (97 characters) then 10: the last line costs nothing, so the first is filled up to 100
    assert code == 0 and system == ["    " + " ".join(f"word{i:02d}" for i in range(14)),
                                    "    " + " ".join(f"word{i:02d}" for i in range(14, 24)),
                                    "    second line", "    ..."]


# -- interactive --------------------------------------------------------------------------------------

def test_interactive_show_set_and_help(demo_fake_server: RunningServer, fake_engine: FakeEngine,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OLLAMA_HOST", demo_fake_server.url)
    fake_engine.enqueue(["Short answer."])
    lines = iter(["/show", "/show info", "/show license", "/show template", "/show parameters",
                  "/set parameter num_predict 50", "/set parameter temperature 0.5", "/show parameters",
                  "/show system", "/set system You are terse.", "/show system", "/show modelfile", "/show nope",
                  "/set verbose", "hi", "/set quiet", "/set", "/set nope", "/?", "/? show", "/bye", "never read"])
    args = argparse.Namespace(model=MODEL, keepalive=None, format=None, think=None, verbose=False)
    with Client() as client:
        assert interactive(client, args, read=lambda _prompt: next(lines)) == 0
    out, err = capsys.readouterr()
    assert err.startswith("Available Commands:\n  /show info         Show details for this model\n")
    assert re.search(r"^  Model\n    architecture        llama\n    parameters          134\.52M\n", err, re.M)
    assert "  Capabilities\n    completion\n    tools\n" in err and "  Parameters\n" in err
    assert "Apache License" in out or "apache" in out.lower()  # /show license: the model's license text
    assert "<|im_start|>" in out  # /show template
    assert "Model defined parameters:\n  stop" in out
    assert "Set parameter 'num_predict' to '50'\nSet parameter 'temperature' to '0.5'\n" in out
    assert "User defined parameters:\n  num_predict                    50\n  temperature                    0.5\n" in out
    assert "Set system message.\nYou are terse.\n\n" in out
    assert "SYSTEM You are terse." in out and "PARAMETER num_predict 50" in out  # the session's Modelfile
    assert "Unknown command '/show nope'. Type /? for help" in out
    assert "Set 'verbose' mode.\nShort answer.\n\n" in out and "Set 'quiet' mode." in out
    assert re.search(r"^total duration:       \S+$", err, re.M)  # /set verbose: stats after the answer
    assert "Unknown command '/set nope'. Type /? for help" in out
    assert "  /set verbose           Show LLM stats\n" in err and "  /show           Show model information\n" in err
    assert err.count("  /show template     Show prompt template\n") == 2  # /show, /? show
    prompt = fake_engine.prompts[-1]
    assert "You are terse." in prompt and prompt.rstrip().endswith("hi<|im_end|>\n<|im_start|>assistant")


# -- no httpx logging, progress ---------------------------------------------------------------------

def _skyllama(url: str, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLLAMA_HOST": url}
    return subprocess.run([sys.executable, "-m", "skyllama", *argv], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_client_commands_log_no_http_requests(host: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {MODEL}\nPARAMETER num_predict 3\n")
    for argv in (["create", "mine", "-f", str(tmp_path / "Modelfile")], ["list"], ["-v"], ["show", MODEL]):
        done = _skyllama(host.url, *argv)
        assert done.returncode == 0, done.stderr
        assert "HTTP Request" not in done.stderr and "INFO" not in done.stderr, (argv, done.stderr)
    assert _skyllama(host.url, "create", "mine", "-f", str(tmp_path / "Modelfile")).stderr.splitlines()[-1] == "success"


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serve_registry() as reg:
        yield reg


def test_pull_progress_ends_in_ollamas_order(tmp_path: Path, registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    big = os.urandom(300_000)
    registry.publish(CONFIG, [big])
    folder = tmp_path / "puller"
    folder.mkdir()
    with run_server(folder, registry_allow_loopback=True) as puller:
        monkeypatch.setenv("OLLAMA_HOST", puller.url)
        code, out, err = cli(capsys, "pull", "--insecure", registry.url.removeprefix("http://") + "/ns/big:v1")
    assert code == 0 and out == "" and err.endswith("success\n")
    lines = err.splitlines()
    assert lines[0] == "pulling manifest" and lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    bars = lines[1:-3]
    assert len(bars) == 2  # the config and the layer, each ended at 100% with its size
    assert all(re.fullmatch(r"pulling [0-9a-f]{12}: 100% ▕█+▏ +\d+( KB| B)", bar) for bar in bars), bars
    assert any(bar.endswith(" 300 KB") for bar in bars)


def test_upload_progress_is_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A presigned upload's bar goes to stderr with create's other progress, never into stdout."""
    from skyllama.client.blob_upload import presigned_upload

    path = tmp_path / "weights.gguf"
    path.write_bytes(b"x" * 2048)
    s3 = httpx.MockTransport(lambda request: httpx.Response(200, headers={"etag": '"e"'}))
    server = httpx.Client(base_url="http://server", transport=httpx.MockTransport(lambda request: httpx.Response(201)))
    plan = {"digest": "sha256:" + "ab" * 32, "size": 2048, "part_size": 1024, "upload": "u", "upload_id": "i",
            "complete": "/complete", "parts": [{"part_number": n, "size": 1024, "url": f"http://s3/{n}"} for n in (1, 2)]}
    presigned_upload(server, plan, path, lambda _text: None, s3_transport=s3)
    out, err = capsys.readouterr()
    assert out == "" and "uploading abababababab" in err
