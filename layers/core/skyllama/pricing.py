"""Estimated cost of metered usage: the prices behind the README's "Cost per 1,000 requests" table.

A day's usage of one model (``GET /api/usage``: requests, tokens, ``duration_ns``) is priced as the
README prices a request on AWS: a fixed fee per request (Lambda's $0.20 and API Gateway REST's
$3.50 per million, and about six DynamoDB on-demand writes at $1.25 per million for the metering
records) plus Lambda compute for the time the requests took, at the inference function's memory
(10 GB, us-east-1 x86 at $0.0000166667 per GB-second). An optional price per million tokens
lets an operator price like a hosted API instead. Estimates only: no S3 GETs, data transfer or
provisioned concurrency.

``SKYLLAMA_PRICES`` (and ``skyllama usage``'s flags) override any of the four:
``request=0.0000112,gb_second=0.0000166667,memory_gb=10,million_tokens=0``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from .errors import BadRequest

# Lambda requests + API Gateway REST requests + six DynamoDB writes, per request (README).
README_PER_REQUEST = (0.20 + 3.50 + 6 * 1.25) / 1_000_000
README_PER_GB_SECOND = 0.0000166667
README_MEMORY_GB = 10.0

FIELDS = {"request": "per_request", "gb_second": "per_gb_second", "memory_gb": "memory_gb",
          "million_tokens": "per_million_tokens"}


class InvalidPrices(BadRequest):
    """A price list that is not ``name=number`` pairs of known names with non-negative numbers."""


@dataclass(frozen=True)
class Prices:
    """What one request, one GB-second and one million tokens cost, in US dollars."""

    per_request: float = README_PER_REQUEST
    per_gb_second: float = README_PER_GB_SECOND
    memory_gb: float = README_MEMORY_GB
    per_million_tokens: float = 0.0

    @classmethod
    def parse(cls, text: str, base: Prices | None = None) -> Prices:
        """``request=…,gb_second=…,memory_gb=…,million_tokens=…`` (any subset) over ``base``
        (the README's prices when omitted); an empty text is ``base`` itself."""
        prices = base or cls()
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, sep, raw = item.partition("=")
            field = FIELDS.get(name.strip())
            if not sep or field is None:
                raise InvalidPrices(f"prices are name=number pairs of {', '.join(FIELDS)}; got '{item[:40]}'")
            try:
                value = float(raw)
            except ValueError:
                raise InvalidPrices(f"price '{name.strip()}' is not a number: '{raw[:40]}'") from None
            if not value >= 0 or value == float("inf"):  # also refuses NaN
                raise InvalidPrices(f"price '{name.strip()}' must be a finite number >= 0")
            prices = replace(prices, **{field: value})
        return prices

    def cost(self, *, requests: int, duration_ns: int, tokens: int = 0) -> float:
        """The estimated dollars for ``requests`` that took ``duration_ns`` in all and used ``tokens``."""
        compute = duration_ns / 1e9 * self.memory_gb * self.per_gb_second
        return requests * self.per_request + compute + tokens / 1e6 * self.per_million_tokens

    def cost_of(self, entry: dict[str, Any]) -> float:
        """The cost of one model's day in ``GET /api/usage``'s ``days[].models[]``."""
        tokens = int(entry.get("prompt_tokens", 0)) + int(entry.get("completion_tokens", 0))
        return self.cost(requests=int(entry.get("requests", 0)), duration_ns=int(entry.get("duration_ns", 0)),
                         tokens=tokens)

    def to_wire(self) -> dict[str, float]:
        return asdict(self)
