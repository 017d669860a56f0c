"""Fault-injecting wrappers around the storage ports, and throttling for boto3 clients under moto.

``FaultyBlobStore``, ``FaultyManifestStore`` and ``FaultyStateStore`` delegate to a real adapter
and count calls by name; ``fail_on(call, nth)`` makes the nth call (from now) raise, ``hang_on``
makes it block until :meth:`release` (or a timeout). Blob writers are wrapped too, so ``write``,
``commit`` and ``abort`` are call names like the store's own. :func:`crash_between_blob_and_manifest`
simulates a process dying after its blobs are committed and before its manifest is written: from
the manifest ``put`` on, every call of both stores raises :class:`Crash`, so no clean-up code can
run, exactly as after ``kill -9``. :func:`throttle` makes a boto3 client raise a botocore
``ClientError`` (``SlowDown``, ``ThrottlingException``, ...) on the nth call of an operation.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from skyllama.digests import Digest
from skyllama.errors import StoreError
from skyllama.names import ModelName
from skyllama.ports import BlobStore, BlobWriter, ManifestStore, StateStore, StoredManifest


class InjectedFault(StoreError):
    """The failure a rule raises by default: a store error the caller may retry (503)."""


class Crash(BaseException):
    """The process died: not an ``Exception``, so ``except Exception`` clean-up never sees it."""


@dataclass
class _Rule:
    call: str
    nth: int
    action: str  # "fail" | "hang"
    exc: BaseException | None = None
    timeout: float = 30.0


class _Faults:
    """Call counting and the rules shared by every wrapper."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._rules: list[_Rule] = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.dead = False
        self.hanging = threading.Event()
        self.on_call: Callable[[str], None] | None = None

    def fail_on(self, call: str, nth: int = 1, exc: BaseException | None = None) -> None:
        """Make the ``nth`` call of ``call`` from now raise ``exc`` (default :class:`InjectedFault`)."""
        with self._lock:
            self._rules.append(_Rule(call, self.calls[call] + nth, "fail", exc))

    def hang_on(self, call: str, nth: int = 1, timeout: float = 30.0) -> None:
        """Make the ``nth`` call of ``call`` from now block until :meth:`release` (then fail)."""
        self._release.clear()
        with self._lock:
            self._rules.append(_Rule(call, self.calls[call] + nth, "hang", timeout=timeout))

    def release(self) -> None:
        self._release.set()

    def clear(self) -> None:
        """Drop every rule and revive a crashed store (a restarted process)."""
        with self._lock:
            self._rules.clear()
        self.dead = False
        self.on_call = None
        self._release.set()

    def hit(self, call: str) -> None:
        if self.dead:
            raise Crash(f"store is dead (after a crash), {call} refused")
        if self.on_call is not None:
            self.on_call(call)
        with self._lock:
            self.calls[call] += 1
            count = self.calls[call]
            rule = next((r for r in self._rules if r.call == call and r.nth == count), None)
            if rule is not None:
                self._rules.remove(rule)
        if rule is None:
            return
        if rule.action == "hang":
            self.hanging.set()
            self._release.wait(rule.timeout)
            raise InjectedFault(f"injected hang in {call} ended")
        raise rule.exc if rule.exc is not None else InjectedFault(f"injected fault in {call}")


class _FaultyWriter(BlobWriter):
    def __init__(self, inner: BlobWriter, faults: _Faults) -> None:
        self._inner = inner
        self._faults = faults

    def write(self, chunk: bytes) -> None:
        self._faults.hit("write")
        self._inner.write(chunk)

    def commit(self) -> Digest:
        try:
            self._faults.hit("commit")
        except Crash:
            raise  # a dead process aborts nothing: its temporary file stays (never a final name)
        except BaseException:
            self._inner.abort()
            raise
        return self._inner.commit()

    def abort(self) -> None:
        self._inner.abort()

    @property
    def written(self) -> int:
        return self._inner.written


class FaultyBlobStore(BlobStore, _Faults):
    """A :class:`BlobStore` whose calls can be made to fail or hang."""

    def __init__(self, inner: BlobStore) -> None:
        _Faults.__init__(self)
        self.inner = inner

    def size(self, digest: Digest) -> int | None:
        self.hit("size")
        return self.inner.size(digest)

    def writer(self, expected: Digest | None = None) -> BlobWriter:
        self.hit("writer")
        return _FaultyWriter(self.inner.writer(expected), self)

    def open(self, digest: Digest, offset: int = 0) -> BinaryIO:
        self.hit("open")
        return self.inner.open(digest, offset)

    def local_path(self, digest: Digest) -> Path:
        self.hit("local_path")
        return self.inner.local_path(digest)

    def delete(self, digest: Digest) -> bool:
        self.hit("delete")
        return self.inner.delete(digest)

    def list(self) -> Iterator[Digest]:
        self.hit("list")
        return self.inner.list()


class FaultyManifestStore(ManifestStore, _Faults):
    """A :class:`ManifestStore` whose calls can be made to fail or hang."""

    def __init__(self, inner: ManifestStore) -> None:
        _Faults.__init__(self)
        self.inner = inner

    def get(self, name: ModelName) -> StoredManifest | None:
        self.hit("get")
        return self.inner.get(name)

    def put(self, name: ModelName, data: bytes) -> None:
        self.hit("put")
        self.inner.put(name, data)

    def delete(self, name: ModelName) -> bool:
        self.hit("delete")
        return self.inner.delete(name)

    def list(self) -> list[StoredManifest]:
        self.hit("list")
        return self.inner.list()

    def problems(self) -> list[str]:
        return self.inner.problems()


class FaultyStateStore(StateStore, _Faults):
    """A :class:`StateStore` whose calls can be made to fail or hang."""

    def __init__(self, inner: StateStore) -> None:
        _Faults.__init__(self)
        self.inner = inner

    def put(self, kind: str, key: str, item: dict[str, Any], *, expires_at: float | None = None,
            if_absent: bool = False) -> bool:
        self.hit("put")
        return self.inner.put(kind, key, item, expires_at=expires_at, if_absent=if_absent)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        self.hit("get")
        return self.inner.get(kind, key)

    def delete(self, kind: str, key: str) -> bool:
        self.hit("delete")
        return self.inner.delete(kind, key)

    def query(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        self.hit("query")
        return self.inner.query(kind, prefix)

    def increment(self, kind: str, key: str, field: str, amount: float, *, expires_at: float | None = None) -> float:
        self.hit("increment")
        return self.inner.increment(kind, key, field, amount, expires_at=expires_at)

    def __getattr__(self, name: str) -> Any:  # adapter extras (close, ...) pass through
        return getattr(self.inner, name)


def crash_between_blob_and_manifest(blobs: FaultyBlobStore, manifests: FaultyManifestStore) -> None:
    """Kill the "process" at the manifest write: that call and every later one raise :class:`Crash`."""

    def die(call: str) -> None:
        if call == "put":
            blobs.dead = manifests.dead = True
            raise Crash("crashed before writing the manifest")

    manifests.on_call = die


THROTTLING_CODES = {
    "s3": ("SlowDown", 503),
    "dynamodb": ("ProvisionedThroughputExceededException", 400),
    "dynamodb-throttle": ("ThrottlingException", 400),
    "sqs": ("RequestThrottled", 403),
}


def throttle(client: Any, operation: str, nth: int = 1, kind: str = "s3", times: int = 1) -> Callable[[], int]:
    """Make ``client``'s ``operation`` (e.g. ``PutObject``) raise a throttling ``ClientError`` on its
    ``nth`` call and the ``times - 1`` after it. Returns a function giving the calls seen so far."""
    from botocore.exceptions import ClientError

    code, status = THROTTLING_CODES[kind]
    seen = [0]

    def handler(**_kwargs: Any) -> None:
        seen[0] += 1
        if nth <= seen[0] < nth + times:
            raise ClientError({"Error": {"Code": code, "Message": "Please reduce your request rate."},
                               "ResponseMetadata": {"HTTPStatusCode": status}}, operation)

    service = client.meta.service_model.service_name
    client.meta.events.register(f"before-call.{service}.{operation}", handler)
    return lambda: seen[0]


def store_is_consistent(blobs: BlobStore, manifests: ManifestStore) -> list[str]:
    """Problems in a store: manifests pointing at missing blobs, blobs whose bytes don't hash to
    their name, unreadable manifests. Empty when consistent."""
    import hashlib

    from skyllama.errors import SkyllamaError
    from skyllama.manifest import Manifest

    problems = [f"unreadable manifest {p}" for p in manifests.problems()]
    present = set(blobs.list())
    for stored in manifests.list():
        try:
            refs = Manifest.parse(stored.data).blobs()
        except SkyllamaError:
            problems.append(f"corrupt manifest {stored.name}")
            continue
        problems += [f"{stored.name} -> missing {d}" for d in refs if d not in present]
    for digest in present:
        h = hashlib.sha256()
        with blobs.open(digest) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != digest.hex:
            problems.append(f"blob {digest} holds other bytes")
    problems += [f"manifest list problem {p}" for p in manifests.problems()]
    return problems


@dataclass
class FaultyWorld:
    """A runtime over a local model folder whose three stores are fault-injecting wrappers."""

    runtime: Any
    blobs: FaultyBlobStore
    manifests: FaultyManifestStore
    state: FaultyStateStore

    @property
    def services(self) -> Any:
        """The old name of :attr:`runtime` (tests not yet migrated)."""
        return self.runtime

    def clear(self) -> None:
        for store in (self.blobs, self.manifests, self.state):
            store.clear()

    def fresh(self) -> tuple[BlobStore, ManifestStore]:
        """New adapters over the same folder, as a restarted process would open them."""
        from skyllama.adapters.local.blobs import LocalBlobStore
        from skyllama.adapters.local.manifests import LocalManifestStore

        root = self.runtime.settings.models
        return LocalBlobStore(root), LocalManifestStore(root)


def faulty_world(models: Path, *, engine: Any = None, **overrides: Any) -> FaultyWorld:
    """Build a runtime over ``models`` with every store wrapped (settings ``overrides`` as run_server;
    inference runs on ``engine``, a :class:`FakeEngine` unless given: no runner processes)."""
    from skyllama.adapters.local.blobs import LocalBlobStore
    from skyllama.adapters.local.manifests import LocalManifestStore
    from skyllama.adapters.local.parts import LocalPartStore
    from skyllama.adapters.local.sqlite_state import SqliteStateStore
    from skyllama.composition import Stores, build_runtime
    from skyllama.engine.fake import FakeEngine
    from skyllama.settings import Settings

    settings = Settings.from_env({}, models=models, state_db=models / ".skyllama" / "state.db", **overrides)
    blobs = FaultyBlobStore(LocalBlobStore(models))
    manifests = FaultyManifestStore(LocalManifestStore(models))
    state = FaultyStateStore(SqliteStateStore(settings.state_path))
    stores = Stores(blobs, manifests, state, LocalPartStore(models / ".skyllama" / "partial"),
                    closers=(state.inner.close,))
    runtime = build_runtime(settings, stores=stores, engine=engine if engine is not None else FakeEngine())
    return FaultyWorld(runtime, blobs, manifests, state)


BUCKET = "skyllama-security"
TABLE = "skyllama-security"
PREFIX = "models/"


@contextmanager
def moto_aws(monkeypatch: Any) -> Iterator[None]:
    """moto's in-process AWS with fake credentials, so nothing can reach a real account."""
    from moto import mock_aws

    for var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_SESSION_TOKEN", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(var, value)
    with mock_aws():
        yield


def aws_stores(cache: Path, clock: Any = None) -> tuple[Any, Any, Any, Any]:
    """``(s3 client, S3BlobStore, S3ManifestStore, DynamoDBStateStore)`` in a fresh moto account."""
    import boto3

    from skyllama.adapters.aws.dynamodb_state import DynamoDBStateStore
    from skyllama.adapters.aws.s3_blobs import S3BlobStore
    from skyllama.adapters.aws.s3_manifests import S3ManifestStore
    from skyllama.adapters.aws.tables import create_bucket, create_table

    s3 = boto3.client("s3", region_name="us-east-1")
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    create_bucket(s3, BUCKET, prefix=PREFIX)
    create_table(ddb, TABLE)
    blobs = S3BlobStore(BUCKET, prefix=PREFIX, client=s3, cache_dir=cache, part_size=5 << 20)
    manifests = S3ManifestStore(BUCKET, prefix=PREFIX, client=s3)
    state = DynamoDBStateStore(TABLE, client=ddb, clock=clock) if clock else DynamoDBStateStore(TABLE, client=ddb)
    return s3, blobs, manifests, state
