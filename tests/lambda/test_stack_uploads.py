"""Models in from every client, against the app the API function runs (``skyllama serve`` with
``backend=aws``) on moto's server, in a bucket of its own:

- ``skyllama create -f Modelfile`` (``FROM ./model.gguf``, the real SmolLM2 GGUF, 98 MB) goes
  by the presigned multipart flow: parts in parallel straight to S3, ``complete``, the create;
  then the model generates. A part that fails is retried; an upload stopped part-way resumes
  (only the missing parts are sent again).
  The same through the installed ``skyllama`` command, as a user runs it.
- The official ``ollama`` Python client, with the same GGUF and with a real 100 MiB file, gets the
  413 that names the two ways that work, and no multipart upload is opened for it; ``?presign=1`` (asked for) is the
  only ``202``, and an abandoned presigned upload is aborted after the upload TTL.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
from lambda_support import FakeAws

from serving import RunningServer, run_server
from skyllama.adapters.aws.tables import bootstrap
from skyllama.adapters.local.blobs import LocalBlobStore
from skyllama.adapters.local.manifests import LocalManifestStore
from skyllama.client import blob_upload
from skyllama.client.create import create_model
from skyllama.digests import Digest
from skyllama.names import ModelName

pytestmark = pytest.mark.model
MIB = 1 << 20


@pytest.fixture
def stack(fake_aws: FakeAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    """A fresh bucket and table on moto's server, and the API's app serving them on 127.0.0.1."""
    name = f"up-{uuid.uuid4().hex[:10]}"
    res = bootstrap(bucket=name, table=name, queue=name, endpoint_url=fake_aws.endpoint)
    monkeypatch.setenv("SKYLLAMA_UPLOAD_STATE", str(tmp_path / "upload-state"))
    with run_server(tmp_path / "models", backend="aws", bucket=res.bucket, table=res.table,
                    aws_endpoint_url=fake_aws.endpoint, auth="off", cache_dir=tmp_path / "cache",
                    runner_spares=0) as running:
        yield running


def open_uploads(fake_aws: FakeAws, server: RunningServer) -> list[dict[str, Any]]:
    s3 = fake_aws.client("s3")
    return list(s3.list_multipart_uploads(Bucket=server.settings.bucket).get("Uploads", []))


@pytest.fixture
def gguf(demo_models: Path, tmp_path: Path) -> Path:
    """The SmolLM2 GGUF (98 MB) as a local file next to a Modelfile that names it."""
    manifest = LocalManifestStore(demo_models).get(ModelName.parse("smollm2:135m"))
    assert manifest is not None
    layer = next(la for la in json.loads(manifest.data)["layers"] if la["mediaType"].endswith(".model"))
    folder = tmp_path / "src"
    folder.mkdir()
    target = folder / "model.gguf"
    os.link(LocalBlobStore(demo_models).local_path(Digest.parse(layer["digest"])), target)
    (folder / "Modelfile").write_text("FROM ./model.gguf\nPARAMETER temperature 0\n")
    return target


class CountingTransport(httpx.HTTPTransport):
    """The S3 side of the client: counts part PUTs, fails the ones it is told to."""

    def __init__(self, fail: dict[int, int] | None = None) -> None:
        super().__init__()
        self.fail = dict(fail or {})  # part number -> how many more attempts fail
        self.puts: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("partNumber", "0"))
        self.puts.append(number)
        if self.fail.get(number, 0) > 0:
            self.fail[number] -= 1
            raise httpx.ConnectError("injected: connection refused", request=request)
        return super().handle_request(request)


def test_skyllama_create_uploads_a_real_gguf_to_s3_and_generates(stack: RunningServer, gguf: Path,
                                                                 fake_aws: FakeAws) -> None:
    said: list[str] = []
    s3_side = CountingTransport(fail={2: 1})  # part 2's first attempt fails: retried
    create_model(stack.url, "uploaded:latest", gguf.parent / "Modelfile", say=said.append, s3_transport=s3_side)
    size = gguf.stat().st_size
    parts = -(-size // stack.runtime.stores.blobs.part_size)  # type: ignore[attr-defined]
    assert size >= 20 * MIB and parts >= 2
    assert sorted(s3_side.puts) == sorted([*range(1, parts + 1), 2])  # every part once, part 2 twice
    assert "success" in said
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert httpx.head(f"{stack.url}/api/blobs/{digest}").status_code == 200
    assert open_uploads(fake_aws, stack) == []
    reply = ollama.Client(stack.url).generate(model="uploaded", prompt="Say hi.", options={"num_predict": 4})
    assert reply.done and reply.eval_count and reply.eval_count > 0


def test_the_skyllama_command_creates_from_a_modelfile_on_the_stack(stack: RunningServer, gguf: Path,
                                                                      fake_aws: FakeAws) -> None:
    """``skyllama create -f Modelfile`` as a user types it (the installed command, OLLAMA_HOST at the
    stack): the GGUF goes up by presigned multipart, the model is created and generates."""
    assert gguf.stat().st_size >= 20 * MIB
    command = Path(sys.executable).with_name("skyllama")
    done = subprocess.run([str(command), "create", "cli-uploaded", "-f", "Modelfile"], cwd=gguf.parent,
                          env={**os.environ, "OLLAMA_HOST": stack.url}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "success" in done.stdout + done.stderr
    assert open_uploads(fake_aws, stack) == []
    reply = ollama.Client(stack.url).generate(model="cli-uploaded", prompt="Say hi.", options={"num_predict": 4})
    assert reply.done and reply.eval_count and reply.eval_count > 0


def test_official_python_client_gets_the_413_for_the_same_gguf(stack: RunningServer, gguf: Path,
                                                              fake_aws: FakeAws) -> None:
    """The file ``skyllama create`` uploads above, given to the official client's own upload."""
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(stack.url).create_blob(gguf)
    assert caught.value.status_code == 413
    assert "skyllama create" in caught.value.error and "/api/pull" in caught.value.error
    assert httpx.head(f"{stack.url}/api/blobs/{digest}").status_code == 404  # nothing stored
    assert open_uploads(fake_aws, stack) == []  # and no upload opened


def test_an_interrupted_upload_resumes_with_the_missing_parts_only(stack: RunningServer, tmp_path: Path,
                                                                   fake_aws: FakeAws) -> None:
    data = os.urandom(22 * MIB)  # three parts of 8 MiB
    model = tmp_path / "src" / "weights.gguf"
    model.parent.mkdir()
    model.write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    stopped = CountingTransport(fail={3: blob_upload.PART_ATTEMPTS})  # part 3 never goes through
    with httpx.Client(base_url=stack.url) as client:
        with pytest.raises(blob_upload.UploadError, match="part 3 failed.*resume"):
            blob_upload.upload_blob(client, digest, model, lambda _t: None, s3_transport=stopped)
        assert sorted(set(stopped.puts)) == [1, 2, 3]
        assert httpx.head(f"{stack.url}/api/blobs/{digest}").status_code == 404
        assert len(open_uploads(fake_aws, stack)) == 1  # kept for the resume
        said: list[str] = []
        resumed = CountingTransport()
        blob_upload.upload_blob(client, digest, model, said.append, s3_transport=resumed)
    assert resumed.puts == [3]
    assert any("2 part(s) already stored" in line for line in said)
    assert httpx.head(f"{stack.url}/api/blobs/{digest}").status_code == 200
    assert open_uploads(fake_aws, stack) == [] and list((tmp_path / "upload-state").glob("*.json")) == []


def test_official_python_client_gets_the_413_that_names_what_works(stack: RunningServer, tmp_path: Path,
                                                                   fake_aws: FakeAws) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    big = folder / "model.gguf"
    try:
        with big.open("wb") as f:
            for _ in range(100):
                f.write(os.urandom(MIB))
        with pytest.raises(ollama.ResponseError) as caught:
            ollama.Client(stack.url).create_blob(big)
    finally:
        shutil.rmtree(folder)
    assert caught.value.status_code == 413
    assert "skyllama create" in caught.value.error and "/api/pull" in caught.value.error
    assert open_uploads(fake_aws, stack) == []


def test_only_a_client_that_asks_gets_presigned_urls_and_abandoned_ones_are_aborted(
        stack: RunningServer, fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = "sha256:" + "ab" * 32
    url = f"{stack.url}/api/blobs/{digest}"
    plain = httpx.post(url, content=b"x" * (6 * MIB))
    assert plain.status_code == 413 and "skyllama create" in plain.json()["error"]
    asked = httpx.post(url, params={"presign": "1", "size": str(20 * MIB)})
    assert asked.status_code == 202 and len(asked.json()["upload"]["parts"]) == 3
    assert len(open_uploads(fake_aws, stack)) == 1
    # once it has been idle for longer than the upload TTL, the next presign aborts it
    ttl = stack.settings.registry_upload_ttl
    real_time = blob_upload.time.time
    monkeypatch.setattr("skyllama.adapters.aws.s3_presigned.time.time", lambda: real_time() + ttl + 60)
    again = httpx.post(url, params={"presign": "1", "size": str(20 * MIB)})
    assert again.status_code == 202
    left = open_uploads(fake_aws, stack)
    assert [u["UploadId"] for u in left] == [again.json()["upload"]["upload_id"]]
