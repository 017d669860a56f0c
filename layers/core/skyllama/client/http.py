"""A small HTTP client for the running server at OLLAMA_HOST, as the CLI commands use it.

``OLLAMA_HOST`` is parsed exactly as the server parses it (``skyllama.settings.parse_host``); a key
in ``SKYLLAMA_API_KEY`` is sent as a bearer token. Connection failures become
:class:`ServerNotRunning`, whose message tells the user how to start the server; error answers
(``{"error": "..."}``, or an NDJSON error line mid-stream) become :class:`ApiError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx

from ..settings import parse_host


class ClientError(Exception):
    """Something the CLI reports as ``Error: <message>`` and exits non-zero for."""


class ServerNotRunning(ClientError):
    """Nothing answers at OLLAMA_HOST."""

    def __init__(self, url: str) -> None:
        super().__init__(f"could not connect to a running skyllama server at {url} "
                         "(start it with: skyllama serve)")
        self.url = url


class ApiError(ClientError):
    """The server answered with an error; ``status`` is the HTTP status (200 for a mid-stream error)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # the /v1 shape
        error = error.get("message")
    return str(error or response.text)


class Client:
    """Requests to the server at ``host`` (default: ``OLLAMA_HOST``, else ``127.0.0.1:11434``)."""

    def __init__(self, host: str | None = None, *, timeout: float = 30.0, api_key: str | None = None) -> None:
        self.base_url = parse_host(os.environ.get("OLLAMA_HOST", "") if host is None else host).url
        key = api_key if api_key is not None else os.environ.get("SKYLLAMA_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers,
                                  timeout=httpx.Timeout(timeout, read=None))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request; the decoded JSON answer (``None`` for an empty body)."""
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as e:
            raise self._transport_error(e) from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _error_text(response))
        return response.json() if response.content.strip() else None

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST ``body`` with streaming on and yield each NDJSON event as it arrives."""
        try:
            with self._http.stream("POST", path, json={**body, "stream": True}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(response.status_code, _error_text(response))
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if isinstance(event, dict) and "error" in event:
                        raise ApiError(200, str(event["error"]))
                    yield event
        except httpx.TransportError as e:
            raise self._transport_error(e) from None

    def _transport_error(self, e: httpx.TransportError) -> ClientError:
        if isinstance(e, httpx.ConnectError | httpx.ConnectTimeout):
            return ServerNotRunning(self.base_url)
        return ClientError(f"lost the connection to the server at {self.base_url}: {type(e).__name__}")

    # -- the API, as the commands use it --------------------------------------------------------

    def tags(self) -> list[dict[str, Any]]:
        return list((self.request("GET", "/api/tags") or {}).get("models", []))

    def ps(self) -> list[dict[str, Any]]:
        return list((self.request("GET", "/api/ps") or {}).get("models", []))

    def show(self, model: str, verbose: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/show", {"model": model, "verbose": verbose})
        return result

    def copy(self, source: str, destination: str) -> None:
        self.request("POST", "/api/copy", {"source": source, "destination": destination})

    def delete(self, model: str) -> None:
        self.request("DELETE", "/api/delete", {"model": model})

    def generate(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self.stream("/api/generate", body)

    def chat(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self.stream("/api/chat", body)

    def pull(self, model: str) -> Iterator[dict[str, Any]]:
        return self.stream("/api/pull", {"model": model})
