"""``skyllama run|list|ps|show|cp|rm|stop``: the ``ollama`` CLI's commands, talking to the running
server at OLLAMA_HOST over HTTP, with the same output (``ollama list``'s NAME/ID/SIZE/MODIFIED
table, ``ollama ps``'s PROCESSOR and UNTIL columns, ``ollama show``'s sections from ``show_info.py``).

``run`` itself is in ``interactive.py`` (which starts the ``>>> `` chat, or hands a single answer to ``run.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..settings import SettingsError
from .formatting import human_bytes, human_time, models_table, parse_time, processor, table
from .http import ApiError, Client, ClientError
from .interactive import cmd_run
from .show_info import show_info


def _out(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


# -- list, ps, show, cp, rm, stop -----------------------------------------------------------------

def cmd_list(client: Client, args: argparse.Namespace) -> int:
    _out(models_table(client.tags(), args.prefix))
    return 0


def cmd_ps(client: Client, args: argparse.Namespace) -> int:
    rows = []
    now = datetime.now(tz=UTC)
    for m in client.ps():
        if args.prefix and not m["name"].startswith(args.prefix):
            continue
        size, expires = int(m.get("size") or 0), parse_time(m.get("expires_at"))
        until = "Stopping..." if expires is not None and expires < now else human_time(expires, now=now)
        rows.append([m["name"], m.get("digest", "")[:12], human_bytes(size),
                     processor(size, int(m.get("size_vram") or 0)), str(m.get("context_length") or ""), until])
    _out(table(rows, ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]))
    return 0


def cmd_show(client: Client, args: argparse.Namespace) -> int:
    only = [f for f in ("license", "modelfile", "parameters", "system", "template") if getattr(args, f)]
    if len(only) > 1:
        raise ClientError("only one of '--license', '--modelfile', '--parameters', '--system', or "
                          "'--template' can be specified")
    info = client.show(args.model, verbose=args.verbose)
    if only:
        _out(str(info.get(only[0]) or ""), end="" if only[0] in ("system", "template") else "\n")
        return 0
    _out(show_info(info, verbose=args.verbose), end="")
    return 0


def cmd_cp(client: Client, args: argparse.Namespace) -> int:
    client.copy(args.source, args.destination)
    _out(f"copied '{args.source}' to '{args.destination}'")
    return 0


def _unload(client: Client, model: str) -> None:
    for _event in client.generate({"model": model, "prompt": "", "keep_alive": 0}):
        pass


def cmd_stop(client: Client, args: argparse.Namespace) -> int:
    try:
        _unload(client, args.model)
    except ApiError as e:
        if e.status == 404:
            raise ClientError(f'couldn\'t find model "{args.model}" to stop') from None
        raise
    return 0


def cmd_rm(client: Client, args: argparse.Namespace) -> int:
    for model in args.models:
        try:
            _unload(client, model)
        except ApiError as e:
            if e.status != 404:
                _err(f"Warning: unable to stop model '{model}'")
        client.delete(model)
        _out(f"deleted '{model}'")
    return 0


# -- the parser -------------------------------------------------------------------------------------

def _command(fn: Callable[[Client, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            with Client() as client:
                return fn(client, args)
        except (ClientError, SettingsError) as e:
            _err(f"Error: {e}")
            return 1
        except KeyboardInterrupt:
            return 130

    return run


def add_parsers(sub: Any) -> None:
    """Add ``run``, ``list``, ``ps``, ``show``, ``cp``, ``rm`` and ``stop`` to the ``skyllama`` parser."""
    note = " Talks to the server on OLLAMA_HOST."
    run = sub.add_parser("run", help="Run a model: one answer, or an interactive chat.",
                         description="Run a model." + note)
    run.add_argument("model")
    run.add_argument("prompt", nargs="*", help="Answer this prompt and exit (else chat interactively).")
    run.add_argument("--verbose", action="store_true", help="Show timings after each answer.")
    run.add_argument("--keepalive", default=None, help="How long to keep the model loaded (e.g. 5m).")
    run.add_argument("--format", default=None, help='Response format (e.g. "json").')
    run.add_argument("--think", default=None, help="Thinking: true, false, low, medium, high.")
    run.set_defaults(func=_command(cmd_run))
    for name, fn, text in (("list", cmd_list, "List models."), ("ps", cmd_ps, "List running models.")):
        p = sub.add_parser(name, aliases=["ls"] if name == "list" else [], help=text, description=text + note)
        p.add_argument("prefix", nargs="?", default="", help="Only names starting with this.")
        p.set_defaults(func=_command(fn))
    show = sub.add_parser("show", help="Show information for a model.", description="Show a model." + note)
    show.add_argument("model")
    for flag in ("license", "modelfile", "parameters", "system", "template"):
        show.add_argument(f"--{flag}", action="store_true", help=f"Show the model's {flag} only.")
    show.add_argument("-v", "--verbose", action="store_true", help="Show metadata and tensors too.")
    show.set_defaults(func=_command(cmd_show))
    cp = sub.add_parser("cp", help="Copy a model.", description="Copy a model." + note)
    cp.add_argument("source")
    cp.add_argument("destination")
    cp.set_defaults(func=_command(cmd_cp))
    rm = sub.add_parser("rm", help="Remove models.", description="Remove models." + note)
    rm.add_argument("models", nargs="+")
    rm.set_defaults(func=_command(cmd_rm))
    stop = sub.add_parser("stop", help="Stop (unload) a running model.", description="Unload a model." + note)
    stop.add_argument("model")
    stop.set_defaults(func=_command(cmd_stop))
