"""``skyllama pull NAME`` and ``skyllama push NAME``: talk to the running server (OLLAMA_HOST) and
draw progress bars as ``ollama pull`` does (one bar per blob, status lines for the other steps).

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


def render(events: Iterable[dict[str, Any]]) -> int:
    """Draw progress for NDJSON events; 0 on ``success``, 1 on an ``error`` line."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bars: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  transient=False) as progress:
        for event in events:
            if "error" in event:
                progress.stop()
                _say(f"Error: {event['error']}")
                return 1
            status = str(event.get("status", ""))
            digest = event.get("digest")
            if digest:
                total = int(event.get("total") or 0)
                if digest not in bars:
                    bars[digest] = progress.add_task(status, total=total or None)
                progress.update(bars[digest], completed=int(event.get("completed") or 0), total=total or None)
            elif status:
                progress.console.print(status)
            if status == "success":
                return 0
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
        return render(_events(f"{base}/api/{args.transfer}", body))
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
