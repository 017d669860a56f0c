"""``skyllama run|list|ps|show|cp|rm|stop`` against a real server (``cli.main`` in-process, with
OLLAMA_HOST pointing at it): ollama's output formats, streaming, the interactive loop, and the
error when no server is running."""

from __future__ import annotations

import argparse
import io
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from serving import RunningServer, free_port
from skyllama.cli import main
from skyllama.client.formatting import human_bytes, human_time, processor
from skyllama.client.http import Client
from skyllama.client.interactive import interactive
from skyllama.engine.fake import FakeEngine

MODEL = "smollm2:135m"


class Recorder(io.StringIO):
    """stdout that remembers each write, to see that answers arrive in pieces."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def isatty(self) -> bool:
        return False


@pytest.fixture
def host(demo_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    monkeypatch.setenv("OLLAMA_HOST", demo_server.url)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return demo_server


@pytest.fixture
def fake_host(demo_fake_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    """``host``, on a server generating with ``fake_engine``."""
    monkeypatch.setenv("OLLAMA_HOST", demo_fake_server.url)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return demo_fake_server


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_prints_a_real_answer(host: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    r = httpx.post(f"{host.url}/api/create", timeout=120, json={
        "model": "smollm2-short", "from": MODEL, "parameters": {"num_predict": 12, "temperature": 0},
        "stream": False})
    assert r.status_code == 200, r.text
    code, out, err = cli(capsys, "run", "smollm2-short", "hi", "--verbose")
    assert code == 0 and out.strip() and out.endswith("\n\n")
    assert "eval count:           12 token(s)" in err


def test_run_streams_the_answer(fake_host: RunningServer, fake_engine: FakeEngine,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_engine
    fake.token_delay = 0.02
    fake.enqueue(["Hello", " there", ", friend."])
    stdout = Recorder()
    monkeypatch.setattr("sys.stdout", stdout)
    assert main(["run", MODEL, "hi"]) == 0
    assert stdout.getvalue() == "Hello there, friend.\n\n"
    assert len([w for w in stdout.writes if w.strip()]) > 1  # written as it arrived
    assert fake.prompts[0].rstrip().endswith("hi<|im_end|>\n<|im_start|>assistant")


def test_piped_stdin_becomes_the_prompt(fake_host: RunningServer, fake_engine: FakeEngine,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = fake_engine
    fake.enqueue(["A summary."])
    monkeypatch.setattr("sys.stdin", io.StringIO("Some text from a file."))
    code, out, _err = cli(capsys, "run", MODEL, "Summarize:")
    assert code == 0 and out == "A summary.\n\n"
    assert "Some text from a file. Summarize:" in fake.prompts[0]


def test_interactive_keeps_history_until_clear(fake_host: RunningServer, fake_engine: FakeEngine,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    fake = fake_engine
    for reply in ("First answer.", "Second answer.", "Third answer."):
        fake.enqueue([reply])
    lines = iter(["My name is Ada.", "/set parameter num_predict 50", "What is my name?", "/clear",
                  '"""Two', 'lines"""', "/nope", "/bye", "never read"])
    args = argparse.Namespace(model=MODEL, keepalive=None, format=None, think=None, verbose=False)
    with Client() as client:
        assert interactive(client, args, read=lambda _prompt: next(lines)) == 0
    out = capsys.readouterr().out
    assert "First answer.\n\n" in out and "Cleared session context" in out and "Unknown command '/nope'" in out
    assert "Set parameter 'num_predict' to '50'" in out
    assert "My name is Ada." in fake.prompts[1] and "First answer." in fake.prompts[1]
    assert "My name is Ada." not in fake.prompts[2] and "Two\nlines" in fake.prompts[2]


def test_list_show_cp_rm(host: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    row = next(r for r in rows if r.startswith(MODEL + " "))
    assert re.fullmatch(rf"{re.escape(MODEL)}\s{{4,}}[0-9a-f]{{12}}\s{{4,}}\d+ MB\s{{4,}}.+ ago", row), row

    code, out, _ = cli(capsys, "show", MODEL)
    assert code == 0
    assert re.search(r"^  Model\n\s+architecture\s+llama\n\s+parameters\s+134\.52M\n", out, re.M)
    assert "  Capabilities\n    completion\n    tools\n" in out and "  License\n" in out
    assert re.search(r"^\s+stop\s+\"<\|im_end\|>\"$", out, re.M)
    code, out, _ = cli(capsys, "show", MODEL, "--template")
    assert "<|im_start|>" in out

    assert cli(capsys, "cp", MODEL, "me/copy:v1")[:2] == (0, f"copied '{MODEL}' to 'me/copy:v1'\n")
    assert "me/copy:v1" in cli(capsys, "list", "me/")[1]
    assert cli(capsys, "rm", "me/copy:v1")[:2] == (0, "deleted 'me/copy:v1'\n")
    assert "me/copy:v1" not in cli(capsys, "list")[1]
    code, _out, err = cli(capsys, "rm", "me/copy:v1")
    assert code == 1 and err == "Error: model 'me/copy:v1' not found\n"


def test_ps_and_stop(host: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    httpx.post(f"{host.url}/api/generate", json={"model": MODEL, "keep_alive": "10m"}, timeout=60)
    code, out, _ = cli(capsys, "ps")
    header, row = out.splitlines()
    assert code == 0 and header.split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    assert re.fullmatch(rf"{re.escape(MODEL)}\s+[0-9a-f]{{12}}\s+\d+ MB\s+100% CPU\s+\d+\s+(9|10) minutes from now", row)
    httpx.post(f"{host.url}/api/generate", json={"model": MODEL, "keep_alive": -1}, timeout=60)
    assert cli(capsys, "ps")[1].splitlines()[1].endswith("    Forever")
    assert cli(capsys, "stop", MODEL)[:2] == (0, "")
    assert cli(capsys, "ps")[1].splitlines()[1:] == []
    code, _out, err = cli(capsys, "stop", "ghost")
    assert code == 1 and err == 'Error: couldn\'t find model "ghost" to stop\n'


def test_not_running_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    for argv in (["list"], ["ps"], ["run", MODEL, "hi"], ["stop", MODEL]):
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        code, _out, err = cli(capsys, *argv)
        assert code == 1
        assert err == (f"Error: could not connect to a running skyllama server at http://127.0.0.1:{port} "
                       "(start it with: skyllama serve)\n")


def test_default_host_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert Client().base_url == "http://127.0.0.1:11434"


@pytest.mark.parametrize(("size", "text"), [(0, "0 B"), (999, "999 B"), (1000, "1 KB"), (1500, "1.5 KB"),
                                            (101_234_567, "101 MB"), (2_000_000_000, "2 GB"), (4_700_000_000, "4.7 GB")])
def test_human_bytes(size: int, text: str) -> None:
    assert human_bytes(size) == text


def test_human_time_and_processor() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert human_time(now - timedelta(minutes=2, seconds=5), now=now) == "2 minutes ago"
    assert human_time(now - timedelta(seconds=70), now=now) == "About a minute ago"
    assert human_time(now - timedelta(days=3), now=now) == "3 days ago"
    assert human_time(now + timedelta(minutes=4, seconds=30), now=now) == "4 minutes from now"
    assert human_time(now + timedelta(days=365 * 300), now=now) == "Forever"
    assert human_time(None) == "Never"
    assert [processor(100, 0), processor(100, 100), processor(100, 25)] == ["100% CPU", "100% GPU", "75%/25% CPU/GPU"]
