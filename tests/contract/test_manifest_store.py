"""ManifestStore contract: the local folder, moto's S3 and a real S3 behave the same (T-20, T-28, T-29)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from contract_support import BUCKET, PREFIX, seed_s3

import it_s3
from skyllama.names import ModelName


def manifest(n: int = 0) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": f"sha256:{n:064x}", "size": n},
            "layers": [],
        }
    ).encode()


def name(text: str) -> ModelName:
    return ModelName.parse(text)


def test_put_get_delete(manifests: Any) -> None:
    n = name("smollm2:135m")
    assert manifests.get(n) is None
    manifests.put(n, manifest(1))
    got = manifests.get(n)
    assert got is not None
    assert got.data == manifest(1)
    assert got.name == n
    assert got.modified_at.tzinfo is not None
    assert [m.name for m in manifests.list()] == [n]
    assert manifests.delete(n) is True
    assert manifests.delete(n) is False
    assert manifests.get(n) is None
    assert manifests.list() == []


def test_missing_manifest(manifests: Any) -> None:
    manifests.put(name("present:latest"), manifest())
    assert manifests.get(name("absent:latest")) is None
    assert manifests.get(name("present:other")) is None
    assert manifests.get(name("other/present:latest")) is None
    assert manifests.delete(name("absent")) is False


def test_lookup_is_case_insensitive_and_case_preserving(manifests: Any) -> None:
    manifests.put(name("Foo:Latest"), manifest(1))
    for variant in ("foo:latest", "FOO:LATEST", "Foo:Latest", "REGISTRY.OLLAMA.AI/Library/fOO:lAtest"):
        got = manifests.get(name(variant))
        assert got is not None, variant
        assert got.data == manifest(1)
        assert str(got.name) == "registry.ollama.ai/library/Foo:Latest"


def test_names_differing_in_case_are_one_model(manifests: Any) -> None:
    manifests.put(name("Foo:Latest"), manifest(1))
    manifests.put(name("foo:latest"), manifest(2))
    listed = manifests.list()
    assert len(listed) == 1
    assert listed[0].data == manifest(2)
    assert manifests.get(name("FOO:latest")).data == manifest(2)  # type: ignore[union-attr]
    assert manifests.delete(name("fOo:LATEST")) is True
    assert manifests.get(name("Foo:Latest")) is None
    assert manifests.list() == []


def test_overwrite_is_atomic(manifests: Any) -> None:
    """Readers racing a stream of overwrites only ever see a whole old or new manifest."""
    if it_s3.is_endpoint_client(getattr(manifests, "client", None)) and it_s3.is_localstack():
        pytest.skip(it_s3.LOCALSTACK_RANGE_RACE)
    n = name("racer:latest")
    versions = {manifest(i) for i in range(40)}
    manifests.put(n, manifest(0))
    seen: list[bytes] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            got = manifests.get(n)
            assert got is not None
            seen.append(got.data)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(1, 40):
        manifests.put(n, manifest(i))
    stop.set()
    for t in readers:
        t.join()
    assert seen and set(seen) <= versions
    assert manifests.get(n).data == manifest(39)  # type: ignore[union-attr]
    assert len(manifests.list()) == 1


def test_list_is_sorted_and_covers_hosts_and_namespaces(manifests: Any) -> None:
    names = [name(t) for t in ("b:1", "a:2", "a:1", "me/mine:v1", "example.com:5000/team/model:tag")]
    for i, n in enumerate(names):
        manifests.put(n, manifest(i))
    listed = manifests.list()
    assert [m.name.key for m in listed] == sorted(n.key for n in names)
    assert manifests.problems() == []


def test_list_beyond_one_page(manifests: Any) -> None:
    count = 1_003  # S3 lists at most 1,000 keys per page
    seeded = {name(f"model{i}:latest"): manifest(i) for i in range(count)}
    if hasattr(manifests, "client"):  # straight into the bucket, to keep this fast
        seed_s3({PREFIX + n.storage_key(): data for n, data in seeded.items()}, manifests.client)
    else:
        for n, data in seeded.items():
            path = manifests.folder.joinpath(*n.path_parts())
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    listed = manifests.list()
    assert len(listed) == count
    assert {m.name.model for m in listed} == {f"model{i}" for i in range(count)}
    assert manifests.get(name("MODEL1002:LATEST")).data == manifest(1002)  # type: ignore[union-attr]


def test_unreadable_entries_are_skipped_and_reported(manifests: Any) -> None:
    manifests.put(name("good:latest"), manifest())
    bad = ["registry.ollama.ai/library/bad name/latest", "registry.ollama.ai/library/too/deep/x"]
    for rel in bad:
        if hasattr(manifests, "client"):
            manifests.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}manifests/{rel}", Body=b"{}")
        else:
            path = manifests.folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"{}")
    assert [str(m.name) for m in manifests.list()] == ["registry.ollama.ai/library/good:latest"]
    assert sorted(manifests.problems()) == sorted(bad)
