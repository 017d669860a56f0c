"""Upload one blob for ``skyllama create``: straight to storage when the server presigns, else a POST.

A file over :data:`PRESIGN_FROM` bytes is offered to the server's presigned flow first
(``POST /api/blobs/<digest>?presign=1&size=<n>``, no body; see ``http/routes/blobs.py``). On
``202`` its parts are PUT in parallel to their presigned URLs (each read from disk at its
offset, each retried on a transport error or a 5xx), with a progress bar, then
``POST .../complete`` has the server verify the sha256 and commit it. Any other answer (a
local-backend skyllama, or Ollama itself) means "no presigning here": the file is POSTed as usual.

An upload that stops part-way (a part that keeps failing, Ctrl-C, a lost connection) resumes:
its ``upload``/``upload_id`` are kept in a small JSON file under :func:`state_dir`, keyed by the
digest and the server, and the next run asks the server to resume it (the parts S3 already
holds are skipped). The file is removed once the blob is committed.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

CHUNK = 1 << 20
PRESIGN_FROM = 5 << 20  # the servers' default SKYLLAMA_PRESIGN_THRESHOLD: smaller files go in one POST
PARALLEL_PARTS = 4
PART_ATTEMPTS = 4
RETRY_BACKOFF = 0.5  # seconds, doubled after each failed attempt of a part
Say = Callable[[str], None]


class UploadError(Exception):
    """A blob could not be uploaded (the server's or S3's reason in the message)."""


class _Refused(UploadError):
    """``complete`` was refused: the upload is over, whatever S3 still holds."""


def state_dir() -> Path:
    """Where interrupted uploads are remembered (``SKYLLAMA_UPLOAD_STATE`` overrides)."""
    if explicit := os.environ.get("SKYLLAMA_UPLOAD_STATE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "skyllama" / "uploads"


def error_text(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error") or r.text)
    except (ValueError, AttributeError):
        return r.text or f"HTTP {r.status_code}"


class _Resume:
    """The remembered upload of one digest to one server."""

    def __init__(self, folder: Path, server: str, digest: str, path: Path) -> None:
        self.file = folder / f"{digest.removeprefix('sha256:')}.json"
        stat = path.stat()
        self.key = {"server": server, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def load(self) -> dict[str, str] | None:
        try:
            saved = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(saved, dict) or any(saved.get(k) != v for k, v in self.key.items()):
            return None  # another server, or the file changed since: start over
        if not isinstance(saved.get("upload"), str) or not isinstance(saved.get("upload_id"), str):
            return None
        return {"upload": saved["upload"], "upload_id": saved["upload_id"]}

    def save(self, upload: str, upload_id: str) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.key, "upload": upload, "upload_id": upload_id}))
        tmp.replace(self.file)

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.file.unlink()


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def post_blob(client: httpx.Client, digest: str, path: Path) -> None:
    """The plain upload: the file streamed as the body of ``POST /api/blobs/<digest>``."""
    size = path.stat().st_size
    r = client.post(f"/api/blobs/{digest}", content=_file_chunks(path), headers={"Content-Length": str(size)})
    if r.status_code not in (200, 201):
        raise UploadError(error_text(r))


def _presign(client: httpx.Client, digest: str, size: int, resume: dict[str, str] | None) -> httpx.Response:
    params: dict[str, str | int] = {"presign": "1", "size": size, **(resume or {})}
    return client.post(f"/api/blobs/{digest}", params=params, content=b"")


def _put_part(s3: httpx.Client, path: Path, offset: int, part: dict[str, Any], advance: Callable[[int], None]) -> str:
    """PUT one part's bytes to its presigned URL, retrying; returns S3's ETag."""
    with path.open("rb") as f:
        data = os.pread(f.fileno(), int(part["size"]), offset)
    delay = RETRY_BACKOFF
    last = ""
    for attempt in range(PART_ATTEMPTS):
        try:
            r = s3.put(part["url"], content=data)
            if r.status_code == 200 and r.headers.get("etag"):
                advance(len(data))
                return r.headers["etag"]
            last = f"HTTP {r.status_code}: {r.text[:200]}"
            if r.status_code < 500 and r.status_code not in (408, 429):
                break  # refused (expired or bad signature): a retry gets the same answer
        except httpx.TransportError as e:
            last = f"{type(e).__name__}: {e}"
        if attempt + 1 < PART_ATTEMPTS:
            time.sleep(delay)
            delay *= 2
    raise UploadError(f"part {part['part_number']} failed: {last}")


def presigned_upload(client: httpx.Client, plan: dict[str, Any], path: Path, say: Say, *,
                     s3_transport: httpx.BaseTransport | None = None, parallel: int = PARALLEL_PARTS) -> None:
    """PUT the parts the plan still needs, then ask the server to verify and commit the blob."""
    etags = {int(p["part_number"]): str(p["etag"]) for p in plan.get("done", [])}
    size, part_size = int(plan["size"]), int(plan["part_size"])
    already = sum(int(p["size"]) for p in plan.get("done", []))
    if already:
        say(f"resuming upload: {len(etags)} part(s) already stored")
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, transient=False, console=Console(stderr=True)) as progress, \
            httpx.Client(timeout=httpx.Timeout(60.0), transport=s3_transport) as s3:
        task = progress.add_task(f"uploading {plan['digest'][7:19]}", total=size, completed=already)

        def advance(n: int) -> None:
            progress.update(task, advance=n)

        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="skyllama-upload") as pool:
            futures = {
                int(p["part_number"]): pool.submit(_put_part, s3, path, (int(p["part_number"]) - 1) * part_size, p,
                                                   advance)
                for p in plan["parts"]
            }
            errors = []
            for number, future in futures.items():
                try:
                    etags[number] = future.result()
                except UploadError as e:
                    errors.append(str(e))
            if errors:
                raise UploadError("; ".join(errors) + " (run the command again to resume the upload)")
    body = {"upload": plan["upload"], "upload_id": plan["upload_id"],
            "parts": [{"part_number": n, "etag": etags[n]} for n in sorted(etags)]}
    r = client.post(plan["complete"], json=body)
    if 400 <= r.status_code < 500:
        raise _Refused(error_text(r))
    if r.status_code != 201:
        raise UploadError(error_text(r))


def upload_blob(client: httpx.Client, digest: str, path: Path, say: Say, *,
                s3_transport: httpx.BaseTransport | None = None) -> None:
    """Make the server hold ``path`` under ``digest``, by the presigned flow when it offers one."""
    size = path.stat().st_size
    if size <= PRESIGN_FROM:
        post_blob(client, digest, path)
        return
    remembered = _Resume(state_dir(), str(client.base_url), digest, path)
    resume = remembered.load()
    r = _presign(client, digest, size, resume)
    if resume is not None and r.status_code == 404:  # finished or aborted meanwhile: start afresh
        remembered.forget()
        r = _presign(client, digest, size, None)
    if r.status_code == 200:
        return  # the server has it already
    if r.status_code != 202:
        post_blob(client, digest, path)  # no presigning on this server: the body goes through it
        return
    plan = r.json()["upload"]
    remembered.save(plan["upload"], plan["upload_id"])
    try:
        presigned_upload(client, plan, path, say, s3_transport=s3_transport)
    except _Refused:
        remembered.forget()  # the server ended the upload (e.g. a digest mismatch): nothing to resume
        raise
    remembered.forget()
