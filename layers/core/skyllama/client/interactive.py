"""The interactive ``skyllama run MODEL`` (``>>> ``), as Ollama's ``generateInteractive``
(cmd/interactive.go): chat history across turns, ``\"\"\"`` multi-line messages, and its slash
commands with the same words: ``/set`` (parameter, system, verbose, quiet, format, think, wordwrap,
history...), ``/show`` (info, license, modelfile, parameters, system, template), ``/load``,
``/save``, ``/list``, ``/clear``, ``/?`` and ``/help`` (with ``set``, ``show``, ``shortcuts``),
``/bye`` and ``/exit``. Help texts go to stderr, the rest to stdout, as Ollama writes them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .formatting import models_table
from .gofmt import go_value
from .http import ApiError, Client
from .run import ensure_model, print_stream, print_summary, request_body, run_once
from .show_info import show_info

USAGE = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.

"""

USAGE_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking

"""

USAGE_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
   Alt + b            Move back (left) one word
   Alt + f            Move forward (right) one word
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit skyllama (/bye)

"""

USAGE_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template

"""

USAGE_PARAMETERS = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters

"""

Read = Callable[[str], str]


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _help(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


@dataclass
class Session:
    """What ``/set``, ``/load`` and the turns change: Ollama's ``runOptions`` for one chat."""

    args: argparse.Namespace
    messages: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    system: str = ""

    def body(self) -> dict[str, Any]:
        return {**request_body(self.args, self.options), "messages": self.messages}

    def set_system(self, text: str) -> None:
        self.system = text
        message = {"role": "system", "content": text}
        if self.messages and self.messages[-1]["role"] == "system":
            self.messages[-1] = message
        else:
            self.messages.append(message)

    def clear(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []


def _read_message(read: Read, first: str) -> str:
    """A ``\"\"\"``-delimited multi-line message whose first line (after the quotes) is ``first``."""
    lines, text = [], first
    while not text.endswith('"""'):
        lines.append(text)
        text = read("... ")
    lines.append(text[:-3])
    return "\n".join(lines)


def _parameter_value(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else go_value(value)


def _set(session: Session, words: list[str], read: Read) -> None:
    from ..errors import SkyllamaError
    from ..options import parse_parameter_text

    if len(words) < 2:
        _help(USAGE_SET)
        return
    what, args = words[1], session.args
    if what in ("history", "nohistory"):
        return
    if what in ("wordwrap", "nowordwrap", "verbose", "quiet"):
        if what in ("verbose", "quiet"):
            args.verbose = what == "verbose"
        _out(f"Set '{what}' mode.")
    elif what == "think":
        args.think = words[2] if len(words) > 2 else True
        _out(f"Set 'think' mode to '{words[2]}'." if len(words) > 2 else "Set 'think' mode.")
    elif what == "nothink":
        args.think = False
        _out("Set 'nothink' mode.")
    elif what == "format":
        if len(words) < 3 or words[2] != "json":
            _out("Invalid or missing format. For 'json' mode use '/set format json'")
        else:
            args.format = "json"
            _out("Set format to 'json' mode.")
    elif what == "noformat":
        args.format = None
        _out("Disabled format.")
    elif what == "parameter":
        if len(words) < 4:
            _help(USAGE_PARAMETERS)
            return
        key, values = words[2], words[3:]
        try:
            session.options[key] = values if key == "stop" else parse_parameter_text(key, " ".join(values))
        except SkyllamaError as e:
            _out(f"Couldn't set parameter: {json.dumps(str(e), ensure_ascii=False)}")
            return
        _out(f"Set parameter '{key}' to '{', '.join(values)}'")
    elif what == "system":
        if len(words) < 3:
            _help(USAGE_SET)
            return
        text = " ".join(words[2:])
        if text.startswith('"""'):
            text = text[3:] if len(text) > 3 and text.endswith('"""') else _read_message(read, text[3:])
            text = text[:-3] if text.endswith('"""') else text
        session.set_system(text)
        _out("Set system message.")
    else:
        _out(f"Unknown command '/set {what}'. Type /? for help")


def _show(client: Client, session: Session, words: list[str]) -> None:
    if len(words) < 2:
        _help(USAGE_SHOW)
        return
    body: dict[str, Any] = {"model": session.args.model}
    if session.system:
        body["system"] = session.system
    if session.options:
        body["options"] = session.options
    info: dict[str, Any] = client.request("POST", "/api/show", body) or {}
    what = words[1]
    if what == "info":
        _help(show_info(info))
    elif what == "license":
        _out(info.get("license") or "No license was specified for this model.")
    elif what == "modelfile":
        _out(str(info.get("modelfile") or ""))
    elif what == "parameters":
        _out("Model defined parameters:")
        if not info.get("parameters"):
            _out("  No additional parameters were specified for this model.")
        else:
            for line in str(info["parameters"]).split("\n"):
                _out(f"  {line}")
        _out()
        if session.options:
            _out("User defined parameters:")
            for key, value in session.options.items():
                _out(f"  {key:<30} {_parameter_value(value)}")
            _out()
    elif what == "system":
        system = session.system or info.get("system")
        _out(f"{system}\n" if system else "No system message was specified for this model.")
    elif what == "template":
        _out(info.get("template") or "No prompt template was specified for this model.")
    else:
        _out(f"Unknown command '/show {what}'. Type /? for help")


def _load(client: Client, session: Session, words: list[str]) -> None:
    if len(words) != 2:
        _out("Usage:\n  /load <modelname>")
        return
    _out(f"Loading model '{words[1]}'")
    try:
        client.show(words[1])
        print_stream(client.generate({**request_body(argparse.Namespace(**{**vars(session.args), "model": words[1]})),
                                      "prompt": ""}), lambda e: "")
    except ApiError as e:
        if "not found" not in e.message:
            raise
        _out(f"Couldn't find model '{words[1]}'")
        return
    session.args.model = words[1]
    session.messages, session.system = [], ""


def _save(client: Client, session: Session, words: list[str]) -> None:
    if len(words) != 2:
        _out("Usage:\n  /save <modelname>")
        return
    body: dict[str, Any] = {"model": words[1], "from": session.args.model, "stream": False}
    if session.system:
        body["system"] = session.system
    if session.options:
        body["parameters"] = session.options
    if session.messages:
        body["messages"] = session.messages
    try:
        client.request("POST", "/api/create", body)
    except ApiError as e:
        if "invalid model name" not in e.message.lower():
            raise
        _out(f"error: The model name '{words[1]}' is invalid")
        return
    _out(f"Created new model '{words[1]}'")


def _command(client: Client, session: Session, line: str, read: Read) -> bool:
    """Run a slash command; ``False`` for ``/bye``."""
    words = line.split()
    name = words[0]
    if name == "/list":
        _out(models_table(client.tags(), words[1] if len(words) > 1 else ""))
    elif name == "/load":
        _load(client, session, words)
    elif name == "/save":
        _save(client, session, words)
    elif name == "/clear":
        session.clear()
        _out("Cleared session context")
    elif name == "/set":
        _set(session, words, read)
    elif name == "/show":
        _show(client, session, words)
    elif name in ("/help", "/?"):
        topic = words[1] if len(words) > 1 else ""
        _help({"set": USAGE_SET, "/set": USAGE_SET, "show": USAGE_SHOW, "/show": USAGE_SHOW,
               "shortcut": USAGE_SHORTCUTS, "shortcuts": USAGE_SHORTCUTS, "": USAGE}.get(topic, ""))
    elif name in ("/exit", "/bye"):
        return False
    else:
        _out(f"Unknown command '{name}'. Type /? for help")
    return True


def interactive(client: Client, args: argparse.Namespace, read: Read = input) -> int:
    """The ``>>> `` chat loop: history kept across turns, ``/clear`` forgets it, ``/bye`` leaves."""
    session = Session(args)
    while True:
        try:
            line = read(">>> ")
        except EOFError:
            _out()
            return 0
        except KeyboardInterrupt:
            _out("\nUse Ctrl + d or /bye to exit.")
            continue
        if line.startswith('"""'):
            rest = line[3:]
            text = rest[:-3] if rest.endswith('"""') else _read_message(read, rest)
        elif line.startswith("/"):
            if not _command(client, session, line, read):
                return 0
            continue
        else:
            text = line
        if not text.strip():
            continue
        session.messages.append({"role": "user", "content": text})
        try:
            reply, final = print_stream(client.chat(session.body()),
                                        lambda e: str((e.get("message") or {}).get("content") or ""))
        except KeyboardInterrupt:
            session.messages.pop()
            _out()
            continue
        _out("\n")
        session.messages.append({"role": "assistant", "content": reply})
        if args.verbose and final:
            print_summary(final)


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
    ensure_model(client, args.model)
    if prompts or piped or not sys.stdout.isatty():
        return run_once(client, args, " ".join(prompts))
    print_stream(client.generate({**request_body(args), "prompt": ""}), lambda e: "")  # load it now
    _history()
    return interactive(client, args)
