"""``skyllama pull NAME`` and ``skyllama push NAME``: talk to the running server (OLLAMA_HOST) and
draw progress as ``ollama pull`` does (one bar per blob, status lines for the other steps, in order;
``progress_view.py``).

A key for a server with API keys on is read from ``SKYLLAMA_API_KEY`` (sent as a bearer token).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

import httpx

from ..settings import Settings, SettingsError


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")


def render(events: Iterable[dict[str, Any]], *, push: bool = False) -> int:
    """Draw progress for NDJSON events as ``ollama pull`` (``push``) does; 0 on ``success``, else 1
    after ``Error: <text>``."""
    from .progress_view import pull_label, push_label, show_progress

    error = show_progress(events, push_label if push else pull_label)
    if error is None:
        return 0
    _say(f"Error: {error}")
    return 1


def _events(url: str, body: dict[str, Any]) -> Iterable[dict[str, Any]]:
    headers = {}
    key = os.environ.get("SKYLLAMA_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=httpx.Timeout(30.0, read=None)) as r:
        if r.status_code != 200:
            r.read()
            try:
                message = r.json().get("error", r.text)
            except ValueError:
                message = r.text
            yield {"error": message}
            return
        for line in r.iter_lines():
            if line.strip():
                yield json.loads(line)


def _run(args: argparse.Namespace) -> int:
    try:
        base = Settings.from_env().address.url
    except SettingsError as e:
        _say(f"Error: {e}")
        return 2
    body = {"model": args.name, "insecure": args.insecure, "stream": True}
    try:
        return render(_events(f"{base}/api/{args.transfer}", body), push=args.transfer == "push")
    except httpx.HTTPError as e:
        _say(f"Error: could not reach the server at {base}: {type(e).__name__}")
        return 1


def add_parsers(sub: Any) -> None:
    """Add ``pull`` and ``push`` to the ``skyllama`` subcommands."""
    for command, text in (("pull", "Pull a model from a registry."), ("push", "Push a model to a registry.")):
        p = sub.add_parser(command, help=text, description=text + " Talks to the server on OLLAMA_HOST.")
        p.add_argument("name", help="Model name, e.g. registry.example.com/ns/model:tag")
        p.add_argument("--insecure", action="store_true", help="Use http instead of https for the registry.")
        p.set_defaults(func=_run, transfer=command)
