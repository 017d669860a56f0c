"""The runner protocol: JSON frames over a socket pair, shared by the parent and the child.

Frames are length-prefixed by :class:`multiprocessing.connection.Connection` (``send_bytes``), but
never pickled: a child that native code has subverted must not be able to run code in the server
by what it sends back. Requests carry an ``op`` and an ``id``; replies carry the ``id`` and one of
``ok`` (a final value), ``item`` (a streamed generation item), ``done`` (a generation's end) or
``error``. Float vectors follow their reply as one raw ``float64`` frame (``vectors`` gives the
shape), which is far cheaper than JSON numbers for 512 embeddings.
"""

from __future__ import annotations

import array
import base64
import json
from collections.abc import Sequence
from dataclasses import asdict, fields
from multiprocessing.connection import Connection
from typing import Any

from ... import errors
from ..base import Generated, LoadSpec, Sampling, TokenLogprob

Message = dict[str, Any]

# Errors a child may report by name; anything else arrives as a RunnerFailed.
_ERROR_KINDS: dict[str, type[errors.SkyllamaError]] = {
    cls.__name__: cls for cls in (errors.BadRequest, errors.InvalidOption, errors.InvalidModelFile,
                                  errors.Cancelled, errors.RunnerFailed)
}


def send(conn: Connection, message: Message, blob: bytes | None = None) -> None:
    conn.send_bytes(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())
    if blob is not None:
        conn.send_bytes(blob)


def receive(conn: Connection) -> Message:
    message: Message = json.loads(conn.recv_bytes())
    return message


# -- values ---------------------------------------------------------------------------------------

def spec_to_wire(spec: LoadSpec) -> Message:
    return asdict(spec)


def spec_from_wire(data: Message) -> LoadSpec:
    names = {f.name for f in fields(LoadSpec)}
    return LoadSpec(**{k: v for k, v in data.items() if k in names})


def images_to_wire(images: Sequence[bytes] | None) -> Message:
    """A generate call's images (engine/vision.py), as base64 text: frames are JSON."""
    return {"images": [base64.b64encode(image).decode("ascii") for image in images]} if images else {}


def images_from_wire(message: Message) -> Message:
    """The keyword arguments for ``generate``: ``images`` only when the call has some, so an
    engine without a projector is never handed the argument."""
    images = message.get("images")
    return {"images": [base64.b64decode(image) for image in images]} if images else {}


def sampling_to_wire(sampling: Sampling) -> Message:
    return asdict(sampling)


def sampling_from_wire(data: Message) -> Sampling:
    return Sampling.from_options(data)


def item_to_wire(item: str | TokenLogprob) -> Message:
    if isinstance(item, str):
        return {"text": item}
    return {"logprob": [item.token, item.logprob, item.bytes, [list(t) for t in item.top]]}


def item_from_wire(data: Message) -> str | TokenLogprob:
    if "text" in data:
        return str(data["text"])
    token, logprob, raw, top = data["logprob"]
    return TokenLogprob(token, logprob, raw, [(t, lp, b) for t, lp, b in top])


def generated_to_wire(gen: Generated) -> Message:
    return asdict(gen)


def generated_from_wire(data: Message) -> Generated:
    return Generated(**data)


def error_to_wire(exc: BaseException) -> Message:
    kind = type(exc).__name__ if type(exc).__name__ in _ERROR_KINDS else "RunnerFailed"
    message = exc.message if isinstance(exc, errors.SkyllamaError) else "the model runner failed"
    return {"kind": kind, "message": message}


def error_from_wire(data: Message) -> errors.SkyllamaError:
    cls = _ERROR_KINDS.get(str(data.get("kind")), errors.RunnerFailed)
    return cls(str(data.get("message") or "the model runner failed"))


def vectors_to_blob(vectors: list[list[float]]) -> tuple[list[int], bytes]:
    """(shape, raw float64 bytes) of equal-length vectors."""
    width = len(vectors[0]) if vectors else 0
    flat = array.array("d")
    for vector in vectors:
        flat.extend(vector)
    return [len(vectors), width], flat.tobytes()


def vectors_from_blob(shape: list[int], blob: bytes) -> list[list[float]]:
    rows, width = shape
    flat = array.array("d")
    flat.frombytes(blob)
    if len(flat) != rows * width:
        raise errors.RunnerFailed("the model runner sent a malformed embedding")
    values = flat.tolist()
    return [values[i * width:(i + 1) * width] for i in range(rows)]
