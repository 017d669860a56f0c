"""``skyllama keys create|list|revoke``: API-key administration on the configured state store.

These run on the server's own store (SQLite in embedded mode, DynamoDB with backend=aws), not
through the API: whoever can run them already holds the store.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..composition import Stores, build_stores
from ..errors import SkyllamaError
from ..ports import Clock
from ..services.access.keys import SCOPES, ApiKeys
from ..settings import Settings, SettingsError


def _say(text: str, err: bool = False) -> None:
    (sys.stderr if err else sys.stdout).write(text + "\n")


def _keys() -> tuple[ApiKeys, Stores]:
    settings = Settings.from_env()
    clock = Clock()
    stores = build_stores(settings, clock)
    return ApiKeys(stores.state, clock=clock), stores


def _run(args: argparse.Namespace) -> int:
    try:
        keys, stores = _keys()
    except SettingsError as e:
        _say(f"Error: {e}", err=True)
        return 2
    try:
        if args.keys_command == "create":
            secret, record = keys.create_key(name=args.name, owner=args.owner, scopes=args.scope or ["inference"],
                                             rpm=args.rpm, tokens_per_day=args.tokens_per_day)
            if args.json:
                _say(json.dumps({**record, "secret": secret}))
            else:
                _say(f"Created key {record['id']} ({record['name']}, owner {record['owner']}, "
                      f"scopes {', '.join(record['scopes'])}).", err=True)
                _say("Store this secret now; it is not shown again:", err=True)
                _say(secret)
        elif args.keys_command == "list":
            rows = keys.list_keys()
            if args.json:
                _say(json.dumps(rows))
            else:
                _say(f"{'ID':<22} {'NAME':<20} {'OWNER':<16} {'SCOPES':<26} {'QUOTAS':<24} {'CREATED':<28} STATUS")
                for r in rows:
                    quotas = ",".join(f"{k}={v}" for k, v in (r.get("quotas") or {}).items()) or "-"
                    _say(f"{r['id']:<22} {r['name'][:20]:<20} {r['owner']:<16} {','.join(r['scopes']):<26} "
                          f"{quotas:<24} {r.get('created_at', ''):<28} {'revoked' if r.get('revoked') else 'active'}")
        else:
            record = keys.revoke_key(args.id)
            _say(f"Revoked key {record['id']} ({record['name']}).")
    except SkyllamaError as e:
        _say(f"Error: {e}", err=True)
        return 1
    finally:
        stores.close()
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``keys`` and its subcommands to the ``skyllama`` parser."""
    keys = sub.add_parser("keys", help="Create, list and revoke API keys (on the configured state store).")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="Create a key and print its secret once.")
    create.add_argument("--name", required=True, help="What the key is for.")
    create.add_argument("--owner", required=True, help="The tenant the key acts for (owns its models).")
    create.add_argument("--scope", action="append", choices=SCOPES,
                        help="inference, manage or admin; repeat for several (default inference).")
    create.add_argument("--rpm", type=int, default=None, help="Requests per minute quota.")
    create.add_argument("--tokens-per-day", type=int, default=None, help="Prompt+completion tokens per UTC day.")
    create.add_argument("--json", action="store_true", help="Print the record and secret as JSON.")
    listing = keys_sub.add_parser("list", help="List keys (never their secrets).")
    listing.add_argument("--json", action="store_true")
    revoke = keys_sub.add_parser("revoke", help="Revoke a key by id.")
    revoke.add_argument("id")
    for parser in (create, listing, revoke):
        parser.set_defaults(func=_run)
