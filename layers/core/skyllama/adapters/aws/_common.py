"""Shared helpers of the AWS adapters: key prefixes, lazy clients, and error translation.

Error messages name the operation and the AWS error code only: never a bucket, table, queue or key,
since they end up in API responses (SECURITY.md T-12).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...errors import StoreError

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})


def error_code(e: BaseException) -> str:
    """The AWS error code of a ClientError (``""`` for anything else)."""
    if isinstance(e, ClientError):
        return str(e.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(e: ClientError) -> int:
    meta: dict[str, Any] = e.response.get("ResponseMetadata", {})
    return int(meta.get("HTTPStatusCode", 0) or 0)


def is_not_found(e: ClientError) -> bool:
    return error_code(e) in NOT_FOUND_CODES or http_status(e) == 404


def store_error(service: str, operation: str, e: BaseException) -> StoreError:
    """A StoreError naming only the service, the operation and the AWS error code."""
    code = error_code(e) or type(e).__name__
    return StoreError(f"{service} {operation} failed ({code})")


VENDOR_ERRORS: tuple[type[BaseException], ...] = (ClientError, BotoCoreError)


_PREFIX = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9._-]*/)*")


def normalize_prefix(prefix: str) -> str:
    """``""`` or ``a/b/``: a trailing slash is added; ``..``, empty or odd segments are refused."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if not _PREFIX.fullmatch(prefix) or any(seg in (".", "..") for seg in prefix.split("/")):
        raise ValueError("invalid key prefix")
    return prefix


class LazyClient:
    """A boto3 client made on first use (so importing an adapter never touches AWS config)."""

    def __init__(self, service: str, client: Any | None) -> None:
        self._service = service
        self._client = client
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3

                    self._client = boto3.client(self._service)
        return self._client
