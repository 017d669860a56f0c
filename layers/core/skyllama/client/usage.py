"""``skyllama usage``: a key's usage by day and model, with its estimated cost, as a table.

Talks to the running server (OLLAMA_HOST) through ``GET /api/usage``; the key is
``SKYLLAMA_API_KEY`` (with auth off, the server's ``anonymous`` usage). ``--key ID`` shows
another key and ``--all`` every key (both need an admin key: ``GET /api/keys`` lists them).

The cost is an estimate from ``skyllama/pricing.py``: the README's AWS prices, overridden by
``SKYLLAMA_PRICES`` or ``--prices``, then by the single-price flags.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import quote

from ..pricing import InvalidPrices, Prices
from ..settings import SettingsError
from .formatting import table
from .http import Client, ClientError

COLUMNS = ["KEY", "DATE", "MODEL", "REQUESTS", "PROMPT", "COMPLETION", "INPUTS", "TIME", "EST. COST"]
FLAGS = {"price_per_request": "request", "price_per_gb_second": "gb_second", "memory_gb": "memory_gb",
         "price_per_million_tokens": "million_tokens"}  # flag -> its name in a price list


def dollars(value: float) -> str:
    """``$1.23``; small amounts with two significant digits (``$0.00042``), as the console shows them."""
    if value == 0:
        return "$0"
    return f"${value:.2g}" if value < 0.01 else f"${value:.2f}"


def prices_from(args: argparse.Namespace) -> Prices:
    prices = Prices.parse(os.environ.get("SKYLLAMA_PRICES", ""))
    prices = Prices.parse(args.prices or "", prices)
    for flag, name in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            prices = Prices.parse(f"{name}={value}", prices)
    return prices


def summaries(client: Client, args: argparse.Namespace) -> list[dict[str, Any]]:
    """``GET /api/usage`` answers: the caller's key, ``--key``'s, or (``--all``) every key's."""
    mine: dict[str, Any] = client.request("GET", f"/api/usage?days={args.days}")
    if args.key and args.key != mine["key"]:
        return [client.request("GET", f"/api/usage?days={args.days}&key={quote(args.key, safe='')}")]
    if not args.all:
        return [mine]
    listed = client.request("GET", "/api/keys") or {}
    answers = [mine]
    for key in listed.get("keys", []):
        if key["id"] != mine["key"]:
            answers.append(client.request("GET", f"/api/usage?days={args.days}&key={quote(key['id'], safe='')}"))
    return answers


def rows_of(answers: list[dict[str, Any]], prices: Prices) -> tuple[list[list[str]], float]:
    rows, total = [], 0.0
    for answer in answers:
        for day in answer.get("days", []):
            for m in day.get("models", []):
                cost = prices.cost_of(m)
                total += cost
                rows.append([answer["key"], day["date"], m["model"], str(m["requests"]), str(m["prompt_tokens"]),
                             str(m["completion_tokens"]), str(m["embedding_inputs"]),
                             f"{m['duration_ns'] / 1e9:.2f}s", dollars(cost)])
    return rows, total


def quota_line(answer: dict[str, Any]) -> str:
    quotas, today = answer.get("quotas") or {}, int(answer.get("tokens_today") or 0)
    per_day = quotas.get("tokens_per_day")
    tokens = f"{today} of {per_day} tokens today" if per_day else f"{today} tokens today (no daily quota)"
    rpm = f"{quotas['rpm']} requests per minute" if quotas.get("rpm") else "no requests-per-minute quota"
    return f"{answer['key']} ({answer.get('owner') or '?'}): {tokens}, {rpm}"


def cmd_usage(client: Client, args: argparse.Namespace) -> int:
    try:
        prices = prices_from(args)
    except InvalidPrices as e:
        raise ClientError(str(e)) from None
    answers = summaries(client, args)
    rows, total = rows_of(answers, prices)
    if args.json:
        for answer in answers:
            for day in answer.get("days", []):
                for m in day.get("models", []):
                    m["estimated_cost"] = prices.cost_of(m)
        sys.stdout.write(json.dumps({"prices": prices.to_wire(), "usage": answers, "estimated_cost": total}) + "\n")
        return 0
    sys.stdout.write(table(rows, COLUMNS) + "\n")
    sys.stdout.write(f"\nEstimated cost over {args.days} days: {dollars(total)} "
                     f"(${prices.per_request:g}/request, ${prices.per_gb_second:g}/GB-s at {prices.memory_gb:g} GB, "
                     f"${prices.per_million_tokens:g}/1M tokens)\n")
    for answer in answers:
        sys.stdout.write(quota_line(answer) + "\n")
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        with Client() as client:
            return cmd_usage(client, args)
    except (ClientError, SettingsError) as e:
        sys.stderr.write(f"Error: {e}\n")
        return 1


def add_parser(sub: Any) -> None:
    """Add ``usage`` to the ``skyllama`` parser."""
    usage = sub.add_parser("usage", help="Show a key's usage by day and model, with the estimated cost.",
                           description="Usage by day and model from GET /api/usage, with the estimated cost "
                                       "(skyllama/pricing.py). Talks to the server on OLLAMA_HOST with "
                                       "SKYLLAMA_API_KEY.")
    usage.add_argument("--days", type=int, default=7, choices=range(1, 91), metavar="1-90",
                       help="UTC days back from today (default 7).")
    which = usage.add_mutually_exclusive_group()
    which.add_argument("--key", default=None, help="Another key's id (admin).")
    which.add_argument("--all", action="store_true", help="Every key (admin).")
    usage.add_argument("--prices", default=None,
                       help="request=,gb_second=,memory_gb=,million_tokens= (over SKYLLAMA_PRICES).")
    usage.add_argument("--price-per-request", type=float, default=None, help="US dollars per request.")
    usage.add_argument("--price-per-gb-second", type=float, default=None, help="US dollars per GB-second.")
    usage.add_argument("--memory-gb", type=float, default=None, help="Memory the requests ran with (GB).")
    usage.add_argument("--price-per-million-tokens", type=float, default=None,
                       help="US dollars per million prompt+completion tokens.")
    usage.add_argument("--json", action="store_true", help="Print the usage and costs as JSON.")
    usage.set_defaults(func=_run)
