"""T-04 blob upload integrity: a body that does not hash to its digest is 400 with nothing
committed (local folder and S3 under moto); a truncated or aborted upload commits nothing;
concurrent identical uploads end as one object; an existing blob answers 200."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from faults import BUCKET, PREFIX, aws_stores, moto_aws

from serving import RunningServer
from skyllama.adapters.aws.s3_parts import S3PartStore
from skyllama.composition import Stores, build_runtime
from skyllama.http.app import create_app
from skyllama.settings import Settings

DATA = os.urandom(3 << 20)
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


def leftovers(models: Path) -> list[str]:
    return sorted(p.name for p in (models / "blobs").iterdir())


def test_mismatch_is_400_and_commits_nothing(server: RunningServer) -> None:
    damaged = DATA[:-1] + bytes([DATA[-1] ^ 1])  # (a fixed "!" is DATA's own last byte once in 256 runs)
    r = httpx.post(f"{server.url}/api/blobs/{DIGEST}", content=damaged)
    assert r.status_code == 400 and "digest mismatch" in r.json()["error"]
    assert leftovers(server.settings.models) == []
    assert httpx.head(f"{server.url}/api/blobs/{DIGEST}").status_code == 404


@pytest.mark.parametrize("sent", [0, 1000, len(DATA) - 1])
def test_aborted_upload_commits_nothing(server: RunningServer, sent: int) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"POST /api/blobs/{DIGEST} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(DATA)}\r\n\r\n"
                  .encode() + DATA[:sent])
        time.sleep(0.3)
    deadline = time.time() + 10
    while leftovers(server.settings.models) and time.time() < deadline:
        time.sleep(0.05)  # the server notices the disconnect and aborts the writer
    assert leftovers(server.settings.models) == []
    assert httpx.head(f"{server.url}/api/blobs/{DIGEST}").status_code == 404


def test_concurrent_identical_uploads_make_one_object_and_existing_is_200(server: RunningServer) -> None:
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        httpx.post(f"{server.url}/api/blobs/{DIGEST}", content=DATA, timeout=60).status_code)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) <= {200, 201} and 201 in results
    assert leftovers(server.settings.models) == [DIGEST.replace(":", "-")]
    assert (server.settings.models / "blobs" / DIGEST.replace(":", "-")).read_bytes() == DATA
    assert httpx.post(f"{server.url}/api/blobs/{DIGEST}", content=DATA).status_code == 200


def test_s3_mismatch_and_truncation_commit_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_aws(monkeypatch):
        s3, blobs, manifests, state = aws_stores(tmp_path / "cache")
        settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db")
        runtime = build_runtime(settings, stores=Stores(blobs, manifests, state, S3PartStore(blobs, state)),
                                inference=False)
        big = os.urandom(11 << 20)  # multipart: parts go to the final key, completed only on a match
        big_digest = "sha256:" + hashlib.sha256(big).hexdigest()
        with TestClient(create_app(runtime), base_url="http://127.0.0.1:11434") as c:
            assert c.post(f"/api/blobs/{DIGEST}", content=DATA + b"x").status_code == 400
            assert c.post(f"/api/blobs/{big_digest}", content=big[:-1]).status_code == 400
            objects = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("Contents", [])
            assert [o["Key"] for o in objects if "/blobs/" in o["Key"]] == []
            assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
            assert c.post(f"/api/blobs/{big_digest}", content=big).status_code == 201
            assert c.post(f"/api/blobs/{big_digest}", content=big).status_code == 200
            assert blobs.read_bytes(blobs.list().__next__(), limit=12 << 20) == big
