"""``skyllama create NAME -f Modelfile [--quantize q4_K_M]``: create a model on the running server.

It does what the official ``ollama create`` does (``parser.CreateRequest`` and ``cmd.CreateHandler``):
the Modelfile is parsed here; when ``FROM`` (or ``ADAPTER``) names a local file or directory,
relative to the Modelfile's folder, each of its files is hashed, uploaded with
``POST /api/blobs/<digest>`` unless the server has it (``HEAD``; a large file goes straight to S3
by presigned URLs when the server offers them, see ``blob_upload.py``), and named in ``files``
(``adapters``) by its path inside that directory. ``FROM`` that names no local path is a model
name. Then ``/api/create`` is sent and its progress printed. A key for a server with API keys on
is read from ``SKYLLAMA_API_KEY``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ..errors import SkyllamaError
from ..filenames import validate_file_name
from ..modelfile import parse_modelfile
from ..settings import Settings, SettingsError
from .blob_upload import UploadError, error_text, upload_blob

CHUNK = 1 << 20
Say = Callable[[str], None]

# Ollama's ``filesForModel``: the weights (safetensors, else GGUF), every JSON file at the top and
# one folder down (sentence-transformers keep ``1_Pooling/config.json`` there), the tokenizer model;
# plus the text side files this server's converter reads (``vocab.txt``, ``merges.txt``, templates).
_WEIGHT_PATTERNS = ("*.safetensors", "*.gguf")
_SIDE_PATTERNS = ("*.json", "*/*.json", "tokenizer.model", "*/tokenizer.model", "*.txt", "*.jinja")
_SKIP_TEXT = {"readme.txt", "license.txt", "requirements.txt"}


class CreateError(Exception):
    """A problem found on the client side (Modelfile, local files) or reported by the server."""


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def files_for_model(folder: Path) -> list[Path]:
    """The files of a model folder that ``create`` uploads, in a stable order."""
    found: list[Path] = []
    for pattern in _WEIGHT_PATTERNS:
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if found:
            break
    if not found:
        raise CreateError(f"no safetensors or GGUF weights in {folder}")
    for pattern in _SIDE_PATTERNS:
        for path in sorted(folder.glob(pattern)):
            if path.is_file() and path not in found and path.name.lower() not in _SKIP_TEXT:
                found.append(path)
    return found


def sha256_digest(path: Path) -> str:
    """``sha256:<hex>`` of the file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def expand_path(value: str, relative_to: Path) -> Path:
    """Ollama's ``expandPath``: ``~`` is the home folder, a relative path is from the Modelfile's folder."""
    if value.startswith("~"):
        return Path(value).expanduser()
    path = Path(value)
    return path if path.is_absolute() else relative_to / path


def local_files(value: str, relative_to: Path) -> dict[str, Path] | None:
    """``{name inside the folder: path}`` when ``value`` is a local file or folder, else ``None``."""
    path = expand_path(value, relative_to)
    if not path.exists():
        return None
    if path.is_dir():
        named = {p.relative_to(path).as_posix(): p for p in files_for_model(path)}
    else:
        named = {path.name: path}
    for name in named:
        try:
            validate_file_name(name)
        except SkyllamaError as e:
            raise CreateError(str(e)) from None
    return named


def build_request(name: str, modelfile: Path, quantize: str | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """The ``/api/create`` body for ``modelfile``, and the local files it needs uploaded (digest -> path)."""
    try:
        text = modelfile.read_text(encoding="utf-8")
    except OSError as e:
        raise CreateError(f"could not read {modelfile}: {e.strerror or e}") from None
    try:
        parsed = parse_modelfile(text)
    except SkyllamaError as e:
        raise CreateError(f"{modelfile}: {e}") from None
    folder = modelfile.resolve().parent
    request: dict[str, Any] = {"model": name, "stream": True}
    uploads: dict[str, Path] = {}

    def digests(named: dict[str, Path]) -> dict[str, str]:
        out = {}
        for rel, path in named.items():
            digest = sha256_digest(path)
            uploads[digest] = path
            out[rel] = digest
        return out

    source = parsed.pop("from")
    named = local_files(source, folder)
    if named is None:
        request["from"] = source
    else:
        request["files"] = digests(named)
    adapters: dict[str, str] = {}
    for value in parsed.pop("adapters_from", []):
        named = local_files(value, folder)
        if named is None:
            raise CreateError(f"ADAPTER {value!r}: no such file or folder")
        for rel, digest in digests(named).items():
            if adapters.setdefault(rel, digest) != digest:  # two PEFT folders: both have adapter_config.json
                raise CreateError(f"ADAPTER {value!r}: another ADAPTER already has a file named {rel!r}")
    if adapters:
        request["adapters"] = adapters
    parsed.pop("requires", None)
    request.update(parsed)
    if quantize:
        request["quantize"] = quantize
    return request, uploads


def upload_blobs(client: httpx.Client, uploads: dict[str, Path], say: Say = _say, *,
                 s3_transport: httpx.BaseTransport | None = None) -> None:
    """Send each file the server lacks, streamed from disk: large ones straight to S3 when the
    server presigns (parallel parts, retried, resumable; ``client/blob_upload.py``)."""
    for digest, path in uploads.items():
        if client.head(f"/api/blobs/{digest}").status_code == 200:
            say(f"using existing file {digest}")
            continue
        say(f"copying file {digest} ({path.stat().st_size} bytes)")
        try:
            upload_blob(client, digest, path, say, s3_transport=s3_transport)
        except UploadError as e:
            raise CreateError(f"uploading {path.name}: {e}") from None


def stream_create(client: httpx.Client, request: dict[str, Any], say: Say = _say) -> None:
    """POST ``/api/create`` and print each status line; raises :class:`CreateError` on an error."""
    with client.stream("POST", "/api/create", json=request) as r:
        if r.status_code != 200:
            r.read()
            raise CreateError(error_text(r))
        for raw in r.iter_lines():
            if not raw.strip():
                continue
            event = json.loads(raw)
            if "error" in event:
                raise CreateError(str(event["error"]))
            if event.get("status"):
                say(str(event["status"]))


def create_model(base_url: str, name: str, modelfile: Path, quantize: str | None = None, *,
                 say: Say = _say, transport: httpx.BaseTransport | None = None,
                 s3_transport: httpx.BaseTransport | None = None) -> None:
    """Upload what the Modelfile names and create ``name`` on the server at ``base_url``."""
    say("gathering model components")
    request, uploads = build_request(name, modelfile, quantize)
    headers = {}
    if key := os.environ.get("SKYLLAMA_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    timeout = httpx.Timeout(30.0, read=None, write=None)
    with httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport) as client:
        upload_blobs(client, uploads, say, s3_transport=s3_transport)
        stream_create(client, request, say)


def _run(args: argparse.Namespace) -> int:
    try:
        base = Settings.from_env().address.url
    except SettingsError as e:
        _say(f"Error: {e}")
        return 2
    modelfile = Path(args.file)
    try:
        create_model(base, args.name, modelfile, args.quantize)
    except httpx.ConnectError:
        _say(f"Error: could not connect to a running skyllama server at {base} (start it with 'skyllama serve')")
        return 1
    except httpx.HTTPError as e:
        _say(f"Error: talking to the server at {base} failed: {type(e).__name__}: {e}")
        return 1
    except CreateError as e:
        _say(f"Error: {e}")
        return 1
    return 0


def add_parser(sub: Any) -> None:
    """Add ``create`` to the ``skyllama`` subcommands."""
    text = "Create a model from a Modelfile."
    p = sub.add_parser("create", help=text, description=text + " Talks to the server on OLLAMA_HOST; "
                       "local files named by FROM or ADAPTER are uploaded first.")
    p.add_argument("name", help="Name of the new model, e.g. mymodel:latest")
    p.add_argument("-f", "--file", default="Modelfile", help="Path to the Modelfile (default: ./Modelfile)")
    p.add_argument("-q", "--quantize", default=None, help="Quantize F16/F32 weights, e.g. q4_K_M, q8_0")
    p.set_defaults(func=_run)
