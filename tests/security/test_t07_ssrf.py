"""T-07: SSRF through pull/push parameters. The name's host and ``insecure`` cannot point skyllama
at metadata, private, loopback (unless allowed) or unlisted hosts; refusals are 4xx before any
progress line, and nothing is dialled. The policy itself is tested with a fake resolver (DNS
rebinding) and the transport is shown to dial the address it checked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fake_registry import RecordingTransport, serve_registry
from serving import RunningServer, run_server
from skyllama.engine.fake import FakeEngine
from skyllama.services.registry.outbound import Outbound, OutboundPolicy, OutboundRefused, PolicyTransport
from skyllama.settings import Settings


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[RunningServer, RecordingTransport]]:
    folder = tmp_path / "m"
    folder.mkdir()
    recorder = RecordingTransport()
    outbound = Outbound(OutboundPolicy.from_settings(Settings.from_env({})), inner=recorder)
    with run_server(folder, outbound=outbound, engine=FakeEngine()) as running:  # loopback NOT allowed
        yield running, recorder


HOSTILE = ["169.254.169.254/ns/m", "10.0.0.1/x/y", "192.168.1.1/x/y", "172.16.0.1/x/y", "100.64.0.1/x/y",
           "0.0.0.0/x/y", "127.0.0.1:11434/x/y", "localhost:11434/x/y", "evil.example.com/x/y",
           "metadata.google.internal/x/y", "registry.ollama.ai.evil.example/x/y"]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("insecure", [True, False])
def test_pull_refuses_hostile_name_hosts(server: tuple[RunningServer, RecordingTransport], name: str,
                                         insecure: bool) -> None:
    running, recorder = server
    r = httpx.post(f"{running.url}/api/pull", json={"model": name, "insecure": insecure}, timeout=30)
    assert r.status_code == 403, r.text
    assert "refusing" in r.json()["error"]
    assert recorder.dialed == []
    assert not [f for f in (running.settings.models / "manifests").rglob("*") if f.is_file()]


def test_loopback_registry_needs_the_setting(server: tuple[RunningServer, RecordingTransport]) -> None:
    running, recorder = server
    with serve_registry() as reg:
        name = reg.url.removeprefix("http://") + "/ns/m:t"
        r = httpx.post(f"{running.url}/api/pull", json={"model": name, "insecure": True, "stream": False})
        assert r.status_code == 403 and recorder.dialed == [] and reg.requests == []


def test_push_refuses_hostile_hosts(server: tuple[RunningServer, RecordingTransport], tmp_path: Path) -> None:
    running, recorder = server
    import ollama

    from ggufs import write_tiny_gguf

    client = ollama.Client(host=running.url)
    digest = client.create_blob(write_tiny_gguf(tmp_path / "t.gguf"))
    for name in ("169.254.169.254/ns/m", "10.0.0.1/x/y", "evil.example.com/x/y"):
        assert list(client.create(model=name, files={"t.gguf": digest}, stream=True))[-1].status == "success"
        r = httpx.post(f"{running.url}/api/push", json={"model": name, "insecure": True}, timeout=30)
        assert r.status_code == 403, r.text
    assert recorder.dialed == []
    r = httpx.post(f"{running.url}/api/push", json={"model": "not/there:x"})
    assert r.status_code == 404


def policy(*entries: str, loopback: bool = False, resolved: dict[str, list[str]] | None = None,
           runtime: str | None = None) -> OutboundPolicy:
    table = resolved or {}
    return OutboundPolicy(allowlist=entries, allow_loopback=loopback, runtime_api=runtime,
                          resolver=lambda host, port: table.get(host, ["93.184.216.34"]))


def test_policy_table() -> None:
    p = policy("registry.ollama.ai", "*.hf.co", "internal.corp",
               resolved={"internal.corp": ["10.1.2.3"], "cdn.hf.co": ["10.9.9.9"],
                         "rebind.hf.co": ["93.184.216.34", "169.254.169.254"], "loop.hf.co": ["127.0.0.1"]})
    assert p.check("https", "registry.ollama.ai", None) == "93.184.216.34"
    assert p.check("https", "x.hf.co", 443) == "93.184.216.34"
    assert p.check("https", "internal.corp", None) == "10.1.2.3"  # private only by exact entry
    for scheme, host in [("https", "hf.co.evil.com"), ("https", "evilhf.co"), ("ftp", "registry.ollama.ai"),
                         ("https", "cdn.hf.co"), ("https", "rebind.hf.co"), ("https", "loop.hf.co"),
                         ("http", "169.254.169.254"), ("http", "fd00:ec2::254"), ("http", "::ffff:10.0.0.1"),
                         ("http", "127.0.0.1"), ("http", "localhost"), ("http", "8.8.8.8")]:
        with pytest.raises(OutboundRefused):
            p.check(scheme, host, None)
    loop = policy(loopback=True, runtime="127.0.0.1:9001", resolved={"localhost": ["127.0.0.1"]})
    assert loop.check("http", "127.0.0.1", 8080) == "127.0.0.1"
    assert loop.check("http", "localhost", 8080) == "127.0.0.1"
    with pytest.raises(OutboundRefused):
        loop.check("http", "127.0.0.1", 9001)  # the Lambda runtime API, even with loopback allowed
    with pytest.raises(OutboundRefused):
        loop.check("http", "169.254.169.254", 80)


def test_default_settings_policy() -> None:
    p = OutboundPolicy.from_settings(Settings.from_env({}), environ={"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"})
    assert p.listed("registry.ollama.ai") and p.listed("cdn-lfs.hf.co") and not p.listed("example.com")
    assert not p.allow_loopback and p.runtime_api == "127.0.0.1:9001"


def test_transport_dials_the_checked_address() -> None:
    """The connection is pinned: the name is resolved once, checked, and that address dialled
    with the original Host header (DNS rebinding after the check cannot change the target)."""
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    p = OutboundPolicy(allowlist=("registry.test",), allow_loopback=True,
                       resolver=lambda host, port: next(answers))
    seen: list[httpx.Request] = []

    async def run() -> None:
        inner = httpx.MockTransport(lambda request: (seen.append(request), httpx.Response(200))[1])
        async with httpx.AsyncClient(transport=PolicyTransport(p, inner)) as client:
            assert (await client.get("http://registry.test:5000/v2/")).status_code == 200
            with pytest.raises(OutboundRefused):
                await client.get("http://registry.test:5000/v2/")  # rebinds to metadata: refused

    asyncio.run(run())
    assert len(seen) == 1
    assert seen[0].url.host == "127.0.0.1" and seen[0].headers["host"] == "registry.test:5000"
