"""T-02 digest validation at every S3-key sink: a table of bad digests sent to every route that
turns a digest into a storage key answers 4xx with zero S3/DynamoDB side effects (every boto call
is recorded under moto), and a property test on ``Digest.blob_key()`` / ``S3BlobStore.key()``:
whatever text comes in, a key is ``blobs/sha256-<64 lower-case hex>`` under the prefix, or nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from faults import PREFIX, aws_stores, moto_aws
from hypothesis import given
from hypothesis import strategies as st

from skyllama.adapters.aws.s3_parts import S3PartStore
from skyllama.composition import Stores, build_runtime
from skyllama.digests import Digest
from skyllama.errors import InvalidDigest
from skyllama.http.app import create_app
from skyllama.settings import Settings

HEX = "0123456789abcdef" * 4
BAD = [
    "", "sha256", "sha256:", "sha256-", "sha256:abc", "sha256:" + HEX[:63], "sha256:" + HEX + "0",
    "sha256:../../../etc/passwd", "sha256-" + "../" * 21 + "a", "sha256:%2e%2e%2f" + HEX[:55],
    "sha256:" + HEX[:63] + "\x00", "sha256:" + HEX[:63] + "\n", "sha256:" + HEX + "\n",
    "sha256:" + "\u0660" * 64, "sha256:" + "\uff10" * 64, "sha512:" + HEX * 2, "SHA256:" + HEX,
    "sha256:" + HEX.upper(), "sha256_" + HEX, "sha256 " + HEX, "sha256:" + HEX + "/../x", "../blobs/sha256-" + HEX,
    HEX, "sha256::" + HEX[:63], "sha256:" + HEX[:62] + "g0",
]
MUTATING = re.compile(r"^(Put|Delete|Create|Complete|Upload|Copy|Update|TransactWrite|BatchWrite|Abort)")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, list[tuple[str, str]]]]:
    """One moto account and app for the whole table (moto and boto3 clients are slow to set up)."""
    tmp_path = tmp_path_factory.mktemp("t02")
    with pytest.MonkeyPatch.context() as monkeypatch, moto_aws(monkeypatch):
        s3, blobs, manifests, state = aws_stores(tmp_path / "cache")
        calls: list[tuple[str, str]] = []

        def record(event_name: str, params: Any, **_k: Any) -> None:
            calls.append((event_name.rsplit(".", 1)[-1], json.dumps(params, default=str)))

        for client in (s3, state._client.get() if hasattr(state._client, "get") else None):
            if client is not None:
                client.meta.events.register("before-call", record)
        settings = Settings.from_env({}, models=tmp_path / "m", state_db=tmp_path / "s.db")
        runtime = build_runtime(settings, stores=Stores(blobs, manifests, state, S3PartStore(blobs, state)),
                                inference=False)
        with TestClient(create_app(runtime), base_url="http://127.0.0.1:11434",
                        raise_server_exceptions=False) as c:
            yield c, calls
        runtime.close()


def sinks(d: str) -> list[tuple[str, str, dict[str, Any]]]:
    q = quote(d, safe="")
    manifest = {"schemaVersion": 2, "config": {"digest": d, "size": 2, "mediaType": "application/vnd.docker.container.image.v1+json"},
                "layers": [{"digest": d, "size": 2, "mediaType": "application/vnd.ollama.image.model"}]}
    return [
        ("HEAD", f"/api/blobs/{q}", {}),
        ("POST", f"/api/blobs/{q}", {"content": b"{}"}),
        ("POST", f"/api/blobs/{q}/complete", {}),
        ("POST", "/api/create", {"json": {"model": "m", "files": {"m.gguf": d}, "stream": False}}),
        ("POST", "/api/create", {"json": {"model": "m", "adapters": {"a.gguf": d}, "stream": False}}),
        ("GET", f"/v2/library/m/blobs/{q}", {}),
        ("HEAD", f"/v2/library/m/blobs/{q}", {}),
        ("GET", f"/v2/library/m/manifests/{q}", {}),
        ("POST", f"/v2/library/m/blobs/uploads/?digest={q}", {"content": b"{}"}),
        ("PUT", "/v2/library/m/manifests/v1", {"content": json.dumps(manifest).encode(),
                                               "headers": {"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"}}),
    ]


@pytest.mark.parametrize("bad", BAD, ids=[repr(b)[:40] for b in BAD])
def test_bad_digests_are_4xx_with_no_store_side_effects(world: tuple[TestClient, list], bad: str) -> None:
    client, calls = world
    for method, path, kwargs in sinks(bad):
        if not bad and path.endswith("?digest="):
            continue  # no digest at all starts an upload session (202), as Docker's registry does
        calls.clear()
        r = client.request(method, path, **kwargs)
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)
        writes = [c for c in calls if MUTATING.match(c[0]) and "usage" not in c[1]]  # metering may record
        assert writes == [], (method, path, writes)
        if bad and len(bad) > 8 and "/manifests/" not in path:  # a bare hex reference is a valid tag
            assert not any(bad in params for _op, params in calls), (method, path)


@given(st.text(max_size=80) | st.builds(lambda sep, h: f"sha256{sep}{h}", st.sampled_from(":-_/"),
                                        st.text("0123456789abcdefABCDEF\u0660/.", min_size=60, max_size=68)))
def test_blob_key_is_always_safe(text: str) -> None:
    try:
        d = Digest.parse(text)
    except InvalidDigest:
        return
    assert re.fullmatch(r"blobs/sha256-[0-9a-f]{64}", d.blob_key(), flags=re.ASCII)
    assert text[7:] == d.hex and text[6] in ":-"


def test_s3_key_is_the_blob_key_under_the_prefix() -> None:
    from skyllama.adapters.aws.s3_blobs import S3BlobStore

    blobs = S3BlobStore("bucket", prefix=PREFIX, client=object())  # key() never calls S3
    d = Digest.parse("sha256:" + HEX)
    assert blobs.key(d) == PREFIX + d.blob_key()
