"""``skyllama run MODEL [PROMPT]``: as ``ollama run``, one streamed answer, or an interactive chat
(``interactive.py``) when stdin and stdout are a terminal and no prompt is given; piped stdin becomes
the prompt. ``--verbose`` prints the timings as Ollama's ``Metrics.Summary`` does (to stderr, each
line only when its value is set, durations as Go's ``time.Duration`` prints them)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

from .gofmt import go_duration
from .http import ApiError, Client, ClientError


def _out(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


def request_body(args: argparse.Namespace, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields of a generate or chat request that the command line sets."""
    body: dict[str, Any] = {"model": args.model}
    if options:
        body["options"] = options
    if args.keepalive is not None:
        body["keep_alive"] = args.keepalive
    if args.format:
        body["format"] = args.format
    if args.think is not None:
        body["think"] = {"true": True, "false": False}.get(str(args.think).lower(), args.think)
    return body


def metrics_summary(final: dict[str, Any]) -> str:
    """``api.Metrics.Summary``'s lines for a final event (``total duration:       1.2345678s``...)."""
    def n(key: str) -> int:
        return int(final.get(key) or 0)

    lines = []
    if n("total_duration") > 0:
        lines.append(f"total duration:       {go_duration(n('total_duration'))}")
    if n("load_duration") > 0:
        lines.append(f"load duration:        {go_duration(n('load_duration'))}")
    for label, count, duration in (("prompt eval", "prompt_eval_count", "prompt_eval_duration"),
                                   ("eval", "eval_count", "eval_duration")):
        if n(count) > 0:
            lines.append(f"{label + ' count:':<22}{n(count)} token(s)")
        if n(duration) > 0:
            lines.append(f"{label + ' duration:':<22}{go_duration(n(duration))}")
            lines.append(f"{label + ' rate:':<22}{n(count) / (n(duration) / 1e9):.2f} tokens/s")
    return "".join(line + "\n" for line in lines)


def print_summary(final: dict[str, Any]) -> None:
    sys.stderr.write(metrics_summary(final))
    sys.stderr.flush()


def print_stream(events: Iterator[dict[str, Any]], field: Callable[[dict[str, Any]], str]) -> tuple[str, dict]:
    """Write each event's text as it arrives; the whole text and the final event.

    On a terminal a spinner on stderr covers the wait (model load, prompt) until the first text.
    """
    parts, final = [], {}
    with ExitStack() as spinner:
        if sys.stderr.isatty():
            from rich.console import Console

            spinner.enter_context(Console(stderr=True).status("", spinner="dots"))
        for event in events:
            text = field(event)
            if text:
                spinner.close()
                parts.append(text)
                _out(text, end="")
            if event.get("done"):
                final = event
    return "".join(parts), final


def ensure_model(client: Client, model: str) -> None:
    """Pull the model first when the server does not have it (as ``ollama run`` does)."""
    try:
        client.show(model)
    except ApiError as e:
        if e.status != 404:
            raise
        from .transfer import render

        if render(client.pull(model)) != 0:
            raise ClientError(f"could not pull {model}") from None


def run_once(client: Client, args: argparse.Namespace, prompt: str) -> int:
    """``run MODEL PROMPT``: one streamed ``/api/generate`` answer, then a blank line."""
    _text, final = print_stream(client.generate({**request_body(args), "prompt": prompt}),
                                lambda e: str(e.get("response") or ""))
    if prompt:
        _out("\n")
    if args.verbose and final:
        print_summary(final)
    return 0
