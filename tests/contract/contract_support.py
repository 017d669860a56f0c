"""Helpers shared by the contract suites (a plain module: test files import it by name)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BUCKET = "skyllama-contract"
TABLE = "skyllama-contract"
QUEUE = "skyllama-contract-jobs"
PREFIX = "models/"
MIB = 1 << 20


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def seed_s3(objects: dict[str, bytes], s3: Any = None) -> None:
    """Put many objects straight into moto's backend (100x faster than through boto3), or, when
    ``s3`` is the real-S3 tier's client, through it in parallel."""
    import it_s3

    if s3 is not None and it_s3.is_endpoint_client(s3):
        it_s3.put_many(s3, BUCKET, objects)
        return
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    for key, data in objects.items():
        backend.put_object(BUCKET, key, data)


@dataclass
class BlobHarness:
    kind: str
    store: Any
    leftovers: Callable[[], list[str]]
    s3: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


_CLIENTS: dict[str, Any] = {}


def client(service: str) -> Any:
    """A boto3 client shared by the whole session: moto intercepts clients made before any
    ``mock_aws`` starts, and creating an S3 client costs ~0.2 s, paid once instead of per test."""
    if service not in _CLIENTS:
        import boto3

        _CLIENTS[service] = boto3.client(
            service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
    return _CLIENTS[service]
