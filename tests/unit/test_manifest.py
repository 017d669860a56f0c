import json

import pytest

from skyllama.digests import Digest
from skyllama.errors import BadRequest, InvalidDigest
from skyllama.manifest import CONFIG_MEDIA_TYPE, MEDIA_MODEL, MEDIA_TEMPLATE, Layer, Manifest

A, B = "a" * 64, "b" * 64


def make() -> Manifest:
    return Manifest(
        config=Layer(CONFIG_MEDIA_TYPE, Digest(A), 10),
        layers=(Layer(MEDIA_MODEL, Digest(B), 100), Layer(MEDIA_TEMPLATE, Digest(A), 10)),
    )


def test_bytes_are_ollama_shape() -> None:
    data = make().to_bytes()
    assert data.startswith(b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
                           b'"config":{"mediaType":"application/vnd.docker.container.image.v1+json"')
    assert b" " not in data
    assert Manifest.parse(data) == make()


def test_size_digest_and_blobs() -> None:
    m = make()
    assert m.total_size == 120
    assert m.blobs() == [Digest(A), Digest(B)]
    assert m.digest == Digest.of_bytes(m.to_bytes())


@pytest.mark.parametrize(
    "doc",
    [
        b"not json", b"[]", b"{}", json.dumps({"config": {"mediaType": "x", "digest": "sha256:../x", "size": 1}}).encode(),
        json.dumps({"config": {"mediaType": "x", "digest": "sha256:" + A, "size": -1}}).encode(),
        json.dumps({"config": {"mediaType": "x", "digest": "sha256:" + A, "size": 1},
                    "layers": [{"mediaType": "m", "digest": "sha512:" + A, "size": 1}]}).encode(),
        json.dumps({"config": {"mediaType": "x", "digest": "sha256:" + A, "size": 1},
                    "layers": [{"mediaType": "m", "digest": "sha256:" + A, "size": 1}] * 1000}).encode(),
        b" " * (2 << 20),
    ],
)
def test_bad_manifests(doc: bytes) -> None:
    with pytest.raises((BadRequest, InvalidDigest)):
        Manifest.parse(doc)
