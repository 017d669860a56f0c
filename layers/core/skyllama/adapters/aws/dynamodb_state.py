"""The state store on one DynamoDB table: ``pk`` = kind, ``sk`` = key.

An item's JSON lives in the string attribute ``item``, except its top-level numbers, which are
number attributes named ``n:<field>`` so that :meth:`DynamoDBStateStore.increment` can add to them
atomically with ``UpdateExpression ADD`` (two Lambdas metering the same key never lose an
update). Reads merge the two back into one dict. ``expires_at`` is the table's TTL attribute;
DynamoDB (and moto) delete expired items late or never, so every read treats an item whose
``expires_at`` has passed as absent, by the injected clock.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from ...ports import Clock, StateStore
from ._common import VENDOR_ERRORS, LazyClient, error_code, store_error

_NUM = "n:"
_MAX_DIGITS = 38  # DynamoDB numbers: up to 38 significant digits, magnitude 1e-130 .. 1e126
_CONDITION_FAILED = "ConditionalCheckFailedException"


def _storable_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    d = Decimal(str(value))
    if d == 0:
        return True
    return len(d.as_tuple().digits) <= _MAX_DIGITS and -130 < d.adjusted() < 126


def _decode_number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


class DynamoDBStateStore(StateStore):
    """Small records by kind and key in one DynamoDB table; ``client`` is a boto3 DynamoDB client."""

    def __init__(self, table: str, *, client: Any | None = None, clock: Clock | None = None) -> None:
        self.table = table
        self._client = LazyClient("dynamodb", client)
        self._clock = clock or Clock()
        self.page_limit: int | None = None  # Query page size; None lets DynamoDB use 1 MB pages

    @property
    def client(self) -> Any:
        return self._client.get()

    def _now(self) -> dict[str, str]:
        return {"N": repr(float(self._clock.now()))}

    def _encode(self, kind: str, key: str, item: dict[str, Any], expires_at: float | None) -> dict[str, Any]:
        rest = {k: v for k, v in item.items() if not _storable_number(v)}
        record: dict[str, Any] = {"pk": {"S": kind}, "sk": {"S": key}, "item": {"S": json.dumps(rest)}}
        for field, value in item.items():
            if field not in rest:
                record[_NUM + field] = {"N": str(value)}
        if expires_at is not None:
            record["expires_at"] = {"N": repr(float(expires_at))}
        return record

    def _decode(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The item, or ``None`` when it has expired."""
        exp = record.get("expires_at")
        if exp is not None and float(exp["N"]) <= self._clock.now():
            return None
        item: dict[str, Any] = json.loads(record["item"]["S"]) if "item" in record else {}
        for name, value in record.items():
            if name.startswith(_NUM) and "N" in value:
                item[name[len(_NUM) :]] = _decode_number(value["N"])
        return item

    def put(
        self,
        kind: str,
        key: str,
        item: dict[str, Any],
        *,
        expires_at: float | None = None,
        if_absent: bool = False,
    ) -> bool:
        extra: dict[str, Any] = {}
        if if_absent:
            # An expired item still sits in the table: it counts as absent.
            extra = {
                "ConditionExpression": "attribute_not_exists(pk) OR expires_at <= :now",
                "ExpressionAttributeValues": {":now": self._now()},
            }
        try:
            self.client.put_item(TableName=self.table, Item=self._encode(kind, key, item, expires_at), **extra)
        except ClientError as e:
            if error_code(e) == _CONDITION_FAILED:
                return False
            raise store_error("DynamoDB", "put", e) from e
        except VENDOR_ERRORS as e:
            raise store_error("DynamoDB", "put", e) from e
        return True

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        try:
            resp = self.client.get_item(
                TableName=self.table, Key={"pk": {"S": kind}, "sk": {"S": key}}, ConsistentRead=True
            )
        except VENDOR_ERRORS as e:
            raise store_error("DynamoDB", "get", e) from e
        record = resp.get("Item")
        return None if record is None else self._decode(record)

    def delete(self, kind: str, key: str) -> bool:
        """Remove the item; ``True`` only when a live (unexpired) item was there."""
        try:
            resp = self.client.delete_item(
                TableName=self.table, Key={"pk": {"S": kind}, "sk": {"S": key}}, ReturnValues="ALL_OLD"
            )
        except VENDOR_ERRORS as e:
            raise store_error("DynamoDB", "delete", e) from e
        old = resp.get("Attributes")
        return old is not None and self._decode(old) is not None

    def query(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        params: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": kind}},
        }
        if prefix:
            params["KeyConditionExpression"] += " AND begins_with(sk, :prefix)"
            params["ExpressionAttributeValues"][":prefix"] = {"S": prefix}
        if self.page_limit:
            params["Limit"] = self.page_limit
        found: list[tuple[str, dict[str, Any]]] = []
        try:
            # Sort keys come back in UTF-8 byte order, the order SQLite's BINARY collation uses.
            for page in self.client.get_paginator("query").paginate(**params):
                for record in page.get("Items", []):
                    item = self._decode(record)
                    if item is not None:
                        found.append((record["sk"]["S"], item))
        except VENDOR_ERRORS as e:
            raise store_error("DynamoDB", "query", e) from e
        return found

    def increment(
        self, kind: str, key: str, field: str, amount: float, *, expires_at: float | None = None
    ) -> float:
        if not _storable_number(amount):
            raise ValueError("amount is not a number DynamoDB can store")
        names = {"#f": _NUM + field}
        values: dict[str, Any] = {":amount": {"N": str(amount)}, ":now": self._now()}
        update = "ADD #f :amount"
        if expires_at is not None:
            update += " SET expires_at = :exp"
            values[":exp"] = {"N": repr(float(expires_at))}
        while True:
            try:
                # A live (or new) item: add in place, atomically.
                resp = self.client.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": kind}, "sk": {"S": key}},
                    UpdateExpression=update,
                    ConditionExpression="attribute_not_exists(expires_at) OR expires_at > :now",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="UPDATED_NEW",
                )
                return float(resp["Attributes"][_NUM + field]["N"])
            except ClientError as e:
                if error_code(e) != _CONDITION_FAILED:
                    raise store_error("DynamoDB", "increment", e) from e
            except VENDOR_ERRORS as e:
                raise store_error("DynamoDB", "increment", e) from e
            if self._restart_expired(kind, key, field, amount, expires_at):
                return float(amount)
            # Someone else replaced the expired item first: add to theirs.

    def _restart_expired(
        self, kind: str, key: str, field: str, amount: float, expires_at: float | None
    ) -> bool:
        """Replace an expired item by a fresh one holding ``field = amount``; False if it is live again."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=self._encode(kind, key, {field: amount}, expires_at),
                ConditionExpression="expires_at <= :now",
                ExpressionAttributeValues={":now": self._now()},
            )
        except ClientError as e:
            if error_code(e) == _CONDITION_FAILED:
                return False
            raise store_error("DynamoDB", "increment", e) from e
        except VENDOR_ERRORS as e:
            raise store_error("DynamoDB", "increment", e) from e
        return True
