"""``skyllama run|list|ps|show|cp|rm|stop``: the ``ollama`` CLI's commands, talking to the running
server at OLLAMA_HOST over HTTP, with the same output (``ollama list``'s NAME/ID/SIZE/MODIFIED
table, ``ollama ps``'s PROCESSOR and UNTIL columns, ``ollama show``'s sections).

``run MODEL PROMPT`` streams one answer to stdout; ``run MODEL`` on a terminal is an interactive
chat (``>>> ``, history, ``/clear``, ``/bye``); piped stdin becomes the prompt, as with ollama.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..settings import SettingsError
from .formatting import human_bytes, human_time, parse_time, processor, table
from .http import ApiError, Client, ClientError

HELP = """Available Commands:
  /set parameter  Set a parameter (e.g. /set parameter num_predict 64)
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command

Use \"\"\" to begin a multi-line message.
"""


def _out(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


# -- list, ps, show, cp, rm, stop -----------------------------------------------------------------

def cmd_list(client: Client, args: argparse.Namespace) -> int:
    rows = [[m["name"], m.get("digest", "")[:12], human_bytes(int(m.get("size") or 0)),
             human_time(parse_time(m.get("modified_at")))]
            for m in client.tags() if not args.prefix or m["name"].lower().startswith(args.prefix.lower())]
    _out(table(rows, ["NAME", "ID", "SIZE", "MODIFIED"]))
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


def _head(text: str, n: int) -> list[list[str]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [["", line] for line in lines[:n]] + ([["", "..."]] if len(lines) > n else [])


def _section(title: str, rows: list[list[str]]) -> None:
    _out(f"  {title}")
    _out(table(rows))
    _out()


def cmd_show(client: Client, args: argparse.Namespace) -> int:
    only = [f for f in ("license", "modelfile", "parameters", "system", "template") if getattr(args, f)]
    if len(only) > 1:
        raise ClientError("only one of '--license', '--modelfile', '--parameters', '--system', or "
                          "'--template' can be specified")
    info = client.show(args.model, verbose=args.verbose)
    if only:
        _out(str(info.get(only[0]) or ""), end="" if only[0] in ("system", "template") else "\n")
        return 0
    details, model_info = info.get("details") or {}, info.get("model_info") or {}
    arch = str(model_info.get("general.architecture") or details.get("family") or "")
    rows = [["", "architecture", arch], ["", "parameters", str(details.get("parameter_size") or "")]]
    for key, label in (("context_length", "context length"), ("embedding_length", "embedding length")):
        if f"{arch}.{key}" in model_info:
            rows.append(["", label, str(model_info[f"{arch}.{key}"])])
    rows.append(["", "quantization", str(details.get("quantization_level") or "")])
    _section("Model", rows)
    if info.get("capabilities"):
        _section("Capabilities", [["", c] for c in info["capabilities"]])
    if info.get("parameters"):
        _section("Parameters", [["", *line.split(None, 1)] for line in info["parameters"].splitlines() if line.strip()])
    if args.verbose and model_info:
        _section("Metadata", [["", k, _short(v)] for k, v in sorted(model_info.items())])
    if args.verbose and info.get("tensors"):
        _section("Tensors", [["", t["name"], t["type"], str(t["shape"])] for t in info["tensors"]])
    if info.get("system"):
        _section("System", _head(info["system"], 2))
    if info.get("license"):
        _section("License", _head(info["license"], 2))
    return 0


def _short(value: Any) -> str:
    if isinstance(value, list):
        return str(value) if len(str(value)) <= 10 else f"{str(value[:1])[:-1]} ...+{len(value) - 1} more]"
    return str(value).lower() if isinstance(value, bool) else str(value)


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


# -- run --------------------------------------------------------------------------------------------

def _options(args: argparse.Namespace, options: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": args.model}
    if options:
        body["options"] = options
    if args.keepalive is not None:
        body["keep_alive"] = args.keepalive
    if args.format:
        body["format"] = args.format
    if args.think is not None:
        body["think"] = {"true": True, "false": False}.get(args.think.lower(), args.think)
    return body


def _stats(final: dict[str, Any]) -> None:
    """``--verbose``: timings and rates, as ``ollama run --verbose`` prints them (to stderr)."""
    def seconds(key: str) -> float:
        return float(final.get(key) or 0) / 1e9

    lines = [f"total duration:       {seconds('total_duration'):.6f}s",
             f"load duration:        {seconds('load_duration'):.6f}s"]
    for label, count, dur in (("prompt eval", "prompt_eval_count", "prompt_eval_duration"),
                              ("eval", "eval_count", "eval_duration")):
        n, d = int(final.get(count) or 0), seconds(dur)
        lines += [f"{label + ' count:':<22}{n} token(s)", f"{label + ' duration:':<22}{d:.6f}s"]
        if d > 0:
            lines.append(f"{label + ' rate:':<22}{n / d:.2f} tokens/s")
    _err("\n".join(lines))


def _print_stream(events: Iterator[dict[str, Any]], field: Callable[[dict[str, Any]], str]) -> tuple[str, dict]:
    """Write each event's text as it arrives; the whole text and the final event.

    On a terminal a spinner on stderr covers the wait (model load, prompt) until the first text.
    """
    from contextlib import ExitStack

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


def _ensure_model(client: Client, model: str) -> None:
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
    _text, final = _print_stream(client.generate({**_options(args), "prompt": prompt}),
                                 lambda e: str(e.get("response") or ""))
    if prompt:
        _out("\n")
    if args.verbose and final:
        _stats(final)
    return 0


def _read_message(read: Callable[[str], str], first: str) -> str:
    """A ``\"\"\"``-delimited multi-line message, started by ``first``."""
    lines, text = [], first[3:]
    while not text.rstrip().endswith('"""'):
        lines.append(text)
        text = read("... ")
    lines.append(text.rstrip()[:-3])
    return "\n".join(lines).strip()


def interactive(client: Client, args: argparse.Namespace, read: Callable[[str], str] = input) -> int:
    """The ``>>> `` chat loop: history kept across turns, ``/clear`` forgets it, ``/bye`` leaves."""
    messages: list[dict[str, Any]] = []
    options: dict[str, Any] = {}
    while True:
        try:
            line = read(">>> ")
        except EOFError:
            _out()
            return 0
        except KeyboardInterrupt:
            _out("\nUse Ctrl + d or /bye to exit.")
            continue
        text = line.strip()
        if not text:
            continue
        if text.startswith('"""'):
            text = _read_message(read, text)
        elif text in ("/bye", "/exit"):
            return 0
        elif text == "/clear":
            messages.clear()
            _out("Cleared session context")
            continue
        elif text.startswith("/set parameter"):
            _set_parameter(options, text.split()[2:])
            continue
        elif text in ("/?", "/help"):
            _out(HELP)
            continue
        elif text.startswith("/"):
            _out(f"Unknown command '{text.split()[0]}'. Type /? for help")
            continue
        messages.append({"role": "user", "content": text})
        try:
            reply, final = _print_stream(client.chat({**_options(args, options), "messages": messages}),
                                         lambda e: str((e.get("message") or {}).get("content") or ""))
        except KeyboardInterrupt:
            messages.pop()
            _out()
            continue
        _out("\n")
        messages.append({"role": "assistant", "content": reply})
        if args.verbose and final:
            _stats(final)


def _set_parameter(options: dict[str, Any], words: list[str]) -> None:
    """``/set parameter KEY VALUE...``: an option for the following turns (``stop`` takes several)."""
    from ..errors import SkyllamaError
    from ..options import parse_parameter_text

    if len(words) < 2:
        _out("Usage:\n  /set parameter <name> <value>")
        return
    key, values = words[0], words[1:]
    try:
        value = values if key == "stop" else parse_parameter_text(key, " ".join(values))
    except SkyllamaError as e:
        _out(f"Couldn't set parameter: {e}")
        return
    options[key] = value
    _out(f"Set parameter '{key}' to '{', '.join(values)}'")


def _history() -> None:
    """Line editing and a history file on a terminal (``~/.skyllama/history``; OLLAMA_NOHISTORY off)."""
    try:
        import readline
    except ImportError:
        return
    if os.environ.get("OLLAMA_NOHISTORY", "").lower() in ("1", "true"):
        return
    path = Path.home() / ".skyllama" / "history"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            readline.read_history_file(path)
    except OSError:
        return
    import atexit

    atexit.register(lambda: readline.write_history_file(path))


def cmd_run(client: Client, args: argparse.Namespace) -> int:
    prompts = list(args.prompt)
    piped = sys.stdin is None or not sys.stdin.isatty()
    if piped and sys.stdin is not None:
        text = sys.stdin.read()
        if text:
            prompts.insert(0, text)
    _ensure_model(client, args.model)
    if prompts or piped or not sys.stdout.isatty():
        return run_once(client, args, " ".join(prompts))
    _print_stream(client.generate({**_options(args), "prompt": ""}), lambda e: "")  # load it now
    _history()
    return interactive(client, args)


# -- the parser -------------------------------------------------------------------------------------

def _command(fn: Callable[[Client, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        logging.getLogger("httpx").setLevel(logging.WARNING)
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
