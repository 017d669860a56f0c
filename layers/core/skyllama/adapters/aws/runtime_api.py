"""The Lambda Runtime API (version 2018-06-01) as a custom runtime uses it, response streaming included.

From AWS's "Using the Lambda runtime API for custom runtimes" and "Building a custom runtime":

- ``GET  /runtime/invocation/next``: the next event; its request id, deadline, function ARN and
  X-Ray trace id come as ``Lambda-Runtime-*`` headers.
- ``POST /runtime/invocation/<id>/response``: the result, buffered; or streamed with
  ``Lambda-Runtime-Function-Response-Mode: streaming`` and ``Transfer-Encoding: chunked``. A Function
  URL reads a streamed body of type ``application/vnd.awslambda.http-integration-response``: a JSON
  prelude (``statusCode``, ``headers``, ``cookies``), eight NUL bytes, then the HTTP body.
  An error after the first byte goes in the ``Lambda-Runtime-Function-Error-Type`` and
  ``Lambda-Runtime-Function-Error-Body`` (base64) trailers, declared up front in ``Trailer``.
- ``POST /runtime/invocation/<id>/error`` (before any response byte) and ``POST /runtime/init/error``:
  ``{"errorType", "errorMessage"}`` with a ``Lambda-Runtime-Function-Error-Type`` header.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import h11

VERSION = "2018-06-01"
PRELUDE_TYPE = "application/vnd.awslambda.http-integration-response"
PRELUDE_DELIMITER = b"\0" * 8
ERROR_TYPE, ERROR_BODY = "Lambda-Runtime-Function-Error-Type", "Lambda-Runtime-Function-Error-Body"


class RuntimeApiError(RuntimeError):
    """The Runtime API refused a call (a stale request id, a response posted twice)."""


def diagnostic(exc: BaseException, error_type: str | None = None) -> dict[str, str]:
    return {"errorType": error_type or f"Function.{type(exc).__name__}", "errorMessage": str(exc)}


class LambdaContext:
    """The context object of one invocation, with the attributes Powertools and Mangum read."""

    def __init__(self, request_id: str, deadline_ms: int, function_arn: str) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.invoked_function_arn = function_arn
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "0") or 0)
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


@dataclass(frozen=True)
class Invocation:
    request_id: str
    deadline_ms: int
    function_arn: str
    trace_id: str
    event: Any

    def context(self) -> LambdaContext:
        return LambdaContext(self.request_id, self.deadline_ms, self.function_arn)

    def seconds_left(self) -> float:
        return self.deadline_ms / 1000 - time.time()


class RuntimeApi:
    """A client of the Runtime API at ``address`` (``AWS_LAMBDA_RUNTIME_API``: ``host:port``)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address or os.environ["AWS_LAMBDA_RUNTIME_API"]
        host, _, port = self.address.rpartition(":")
        self.host, self.port = host, int(port)
        self._conn: http.client.HTTPConnection | None = None

    def _call(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port)  # no timeout: /next waits for work
        try:
            self._conn.request(method, f"/{VERSION}/runtime/{path}", body=body, headers=headers or {})
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = None
            raise
        if response.status >= 300:
            raise RuntimeApiError(f"{method} {path}: {response.status} {data[:200]!r}")
        return response, data

    def next(self) -> Invocation:
        response, data = self._call("GET", "invocation/next")
        header = response.headers.get
        trace_id = header("Lambda-Runtime-Trace-Id") or ""
        return Invocation(
            request_id=header("Lambda-Runtime-Aws-Request-Id") or "",
            deadline_ms=int(header("Lambda-Runtime-Deadline-Ms") or 0),
            function_arn=header("Lambda-Runtime-Invoked-Function-Arn") or "",
            trace_id=trace_id,
            event=json.loads(data or b"null"),
        )

    def respond(self, request_id: str, result: Any) -> None:
        """A buffered result (the JSON a Python handler returns)."""
        self._call(
            "POST",
            f"invocation/{request_id}/response",
            json.dumps(result).encode(),
            {"Content-Type": "application/json"},
        )

    def error(self, request_id: str, exc: BaseException, error_type: str | None = None) -> None:
        body = diagnostic(exc, error_type)
        self._call(
            "POST",
            f"invocation/{request_id}/error",
            json.dumps(body).encode(),
            {"Content-Type": "application/json", ERROR_TYPE: body["errorType"]},
        )

    def init_error(self, exc: BaseException) -> None:
        body = diagnostic(exc, "Runtime.InitError")
        self._call(
            "POST",
            "init/error",
            json.dumps(body).encode(),
            {"Content-Type": "application/json", ERROR_TYPE: body["errorType"]},
        )

    async def open_stream(self, request_id: str, prelude: dict[str, Any]) -> ResponseStream:
        """Start a streamed HTTP response: headers, then the prelude chunk, sent at once."""
        stream = ResponseStream(self.host, self.port, f"/{VERSION}/runtime/invocation/{request_id}/response")
        await stream.start(json.dumps(prelude).encode() + PRELUDE_DELIMITER)
        return stream


class ResponseStream:
    """One chunked POST of a streamed response, each ``write`` sent as its own chunk at once."""

    def __init__(self, host: str, port: int, target: str) -> None:
        self.host, self.port, self.target = host, port, target
        self.broken = False  # the Runtime API went away (the client disconnected, the function was stopped)
        self._h11 = h11.Connection(h11.CLIENT)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self, first: bytes) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        request = h11.Request(
            method="POST",
            target=self.target,
            headers=[
                ("Host", f"{self.host}:{self.port}"),
                ("Content-Type", PRELUDE_TYPE),
                ("Lambda-Runtime-Function-Response-Mode", "streaming"),
                ("Transfer-Encoding", "chunked"),
                ("Trailer", f"{ERROR_TYPE}, {ERROR_BODY}"),
            ],
        )
        await self._send(self._h11.send(request), first and self._h11.send(h11.Data(data=first)))

    async def write(self, data: bytes) -> None:
        if data and not self.broken:
            await self._send(self._h11.send(h11.Data(data=data)))

    async def close(self, error: dict[str, str] | None = None) -> None:
        """End the body; ``error`` (``diagnostic()``) goes in the trailers. Waits for the API's answer."""
        trailers = (
            []
            if error is None
            else [
                (ERROR_TYPE, error["errorType"]),
                (ERROR_BODY, base64.b64encode(json.dumps(error).encode()).decode()),
            ]
        )
        try:
            if not self.broken:
                await self._send(self._h11.send(h11.EndOfMessage(headers=trailers)))
                await self._read_response()
        finally:
            if self._writer is not None:
                self._writer.close()
                try:
                    await self._writer.wait_closed()
                except OSError:
                    pass

    async def _send(self, *parts: bytes | None) -> None:
        assert self._writer is not None
        try:
            for part in parts:
                if part:
                    self._writer.write(part)
            await self._writer.drain()
        except OSError:
            self.broken = True

    async def _read_response(self) -> None:
        assert self._reader is not None
        status = 0
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                data = await self._reader.read(65536)
                if not data:
                    self.broken = True
                    return
                self._h11.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                if status >= 300:
                    raise RuntimeApiError(f"streamed response refused: {status}")
                return
