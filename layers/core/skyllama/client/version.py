"""``skyllama --version`` (``-v``): Ollama's ``versionHandler``. The server's ``/api/version``
(``SKYLLAMA_API_VERSION``) as ``ollama version is X``, then ``Warning: client version is Y`` when this
client, which follows Ollama ``OLLAMA_COMPAT_VERSION``'s CLI, differs from it or no server answers."""

from __future__ import annotations

import sys

from .. import OLLAMA_COMPAT_VERSION
from ..settings import SettingsError
from .http import Client, ClientError, ServerNotRunning


def version_lines(server_version: str, *, client_version: str = OLLAMA_COMPAT_VERSION) -> list[str]:
    """What ``ollama -v`` prints for a server at ``server_version`` (empty: none answered)."""
    lines = [f"ollama version is {server_version}"] if server_version else []
    if server_version != client_version:
        lines.append(f"Warning: client version is {client_version}")
    return lines


def print_version() -> int:
    server_version, lines = "", []
    try:
        with Client(timeout=5.0) as client:
            server_version = str((client.request("GET", "/api/version") or {}).get("version") or "")
    except ServerNotRunning as e:
        lines.append(f"Warning: could not connect to a running skyllama server at {e.url}")
    except (ClientError, SettingsError) as e:
        lines.append(f"Warning: could not read the server's version: {e}")
    lines += version_lines(server_version)
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()
    return 0
