"""A Lambda Runtime API on 127.0.0.1 for custom-runtime tests: the documented endpoints, recorded.

``GET /2018-06-01/runtime/invocation/next`` hands out queued events with the ``Lambda-Runtime-*``
headers; ``POST .../invocation/<id>/response`` (buffered or chunked, with trailers),
``.../invocation/<id>/error`` and ``.../init/error`` are recorded. Each chunk of a streamed response is
kept with its arrival time, so a test can tell a streamed body from a buffered one. HTTP framing
(chunked bodies, trailers, keep-alive) is h11's, the same library the runtime under test uses.
"""

from __future__ import annotations

import json
import queue
import socketserver
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import h11

PREFIX = "/2018-06-01/runtime/"


@dataclass
class Outcome:
    """What the runtime posted for one invocation."""

    request_id: str
    kind: str = ""  # "response" or "error"
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # (monotonic arrival, data)
    trailers: dict[str, str] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    refuse: int = 0
    drop_after: int = 0

    @property
    def body(self) -> bytes:
        return b"".join(data for _, data in self.chunks)

    def wait(self, timeout: float = 120) -> Outcome:
        assert self.done.wait(timeout), f"no answer for {self.request_id} in {timeout} s"
        return self


class FakeRuntimeApi:
    def __init__(self) -> None:
        self.pending: queue.Queue[tuple[str, float, Any]] = queue.Queue()
        self.outcomes: dict[str, Outcome] = {}
        self.init_errors: list[tuple[dict[str, str], Any]] = []
        self.waiting = threading.Event()  # set while a runtime is blocked on /next
        api = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                api._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: Any, *, timeout_s: float = 120, refuse: int = 0, drop_after: int = 0) -> Outcome:
        """Queue ``event`` for the runtime; the returned outcome fills in as the runtime answers.
        ``refuse``: answer its response with that status, as Lambda does one too large (413);
        ``drop_after``: close the connection once that many response bytes came (a client gone)."""
        request_id = str(uuid.uuid4())
        self.outcomes[request_id] = Outcome(request_id, refuse=refuse, drop_after=drop_after)
        self.pending.put((request_id, time.time() + timeout_s, event))
        return self.outcomes[request_id]

    # ---- the server side ----------------------------------------------------------------------
    def _serve(self, sock: Any) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            request, body_parts, trailers = self._read_request(conn, sock)
            if request is None:
                return
            status, headers, payload = self._route(request, body_parts, trailers)
            response = h11.Response(
                status_code=status, headers=[*headers, ("Content-Length", str(len(payload)))]
            )
            sock.sendall(
                b"".join(
                    conn.send(part) or b"" for part in (response, h11.Data(data=payload), h11.EndOfMessage())
                )
            )
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    def _read_request(self, conn: h11.Connection, sock: Any) -> tuple[Any, Any, dict[str, str]]:
        request, outcome = None, None
        parts: list[tuple[float, bytes]] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = sock.recv(65536)
                if not data:
                    return None, None, {}
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
                target = event.target.decode()
                rid = target.removeprefix(PREFIX + "invocation/").split("/")[0]
                outcome = self.outcomes.get(rid) if target.endswith("/response") else None
                if outcome is not None:  # stream chunks straight into the outcome as they arrive
                    outcome.kind = "response"
                    outcome.headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                    parts = outcome.chunks
            elif isinstance(event, h11.Data):
                parts.append((time.monotonic(), bytes(event.data)))
                if outcome is not None and 0 < outcome.drop_after <= sum(len(d) for _, d in parts):
                    outcome.kind = "dropped"
                    outcome.done.set()
                    return None, None, {}  # the caller closes the connection
            elif isinstance(event, h11.EndOfMessage):
                return request, parts, {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.ConnectionClosed):
                return None, None, {}

    def _route(
        self, request: h11.Request, parts: list[tuple[float, bytes]], trailers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        target, method = request.target.decode(), request.method.decode()
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        body = b"".join(data for _, data in parts)
        if method == "GET" and target == PREFIX + "invocation/next":
            self.waiting.set()
            request_id, deadline, event = self.pending.get()
            self.waiting.clear()
            return (
                200,
                [
                    ("Lambda-Runtime-Aws-Request-Id", request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(int(deadline * 1000))),
                    (
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:f",
                    ),
                    ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
                    ("Content-Type", "application/json"),
                ],
                json.dumps(event).encode(),
            )
        if method == "POST" and target == PREFIX + "init/error":
            self.init_errors.append((headers, json.loads(body or b"null")))
            return 202, [], b'{"status":"OK"}'
        rid, _, action = target.removeprefix(PREFIX + "invocation/").partition("/")
        outcome = self.outcomes.get(rid)
        if (
            method != "POST"
            or outcome is None
            or action not in ("response", "error")
            or outcome.done.is_set()
        ):
            return 400, [], b'{"errorType":"InvalidRequestID"}'
        if action == "error":
            outcome.kind, outcome.headers, outcome.chunks = "error", headers, parts
        outcome.trailers = trailers
        outcome.done.set()
        if outcome.refuse and action == "response":
            return outcome.refuse, [], b'{"errorType":"RequestEntityTooLarge"}'
        return 202, [], b'{"status":"OK"}'
